"""The CLI's commands for frame sequences: `compressor tokens` / `frames`, clip archives through
`compress` / `decompress` / `compressor info`, and `compressor export-onnx`.

Same rules as `compressor.cli`: one-line errors, outputs written beside the target and renamed into
place (a folder of frames too), inputs never overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compressor.atomic import write_atomic
from compressor.cli import UserError

PROGRESS_MIN_FRAMES = 256  # shorter inputs get no progress bar


def frame_size(codec) -> tuple[int, int]:
    """The frame a model was trained on (128x256 for every shipped model): what inputs are resized to."""
    return tuple(codec.training.get("crop", (128, 256)))


def _progress(total: int | None, quiet: bool, what: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=what, file=sys.stderr, dynamic_ncols=True,
                disable=quiet or (total is not None and total < PROGRESS_MIN_FRAMES))


def _check_not_input(dst: Path, inputs: list[Path]) -> None:
    for src in inputs:
        if dst.exists() and src.exists() and dst.resolve() == src.resolve():
            raise UserError(f"output {dst} is an input; refusing to overwrite it")


def _frames_of(codec, inputs, no_resize: bool, fps: float | None):
    """(sources, frame iterator, size or None, fps, total frames or None) for files and folders."""
    from compressor.frames import expand_inputs, frame_count_hint, iter_frames, prefetched, video_fps

    sources = expand_inputs(inputs)
    if fps is None:
        fps = next((video_fps(s.path) for s in sources if s.video), None)
    size = None if no_resize else frame_size(codec)
    return sources, prefetched(iter_frames(sources, size), 2 * codec.batch), fps, frame_count_hint(sources)


def _same_size_batches(frames, batch: int):
    """Batches of uint8 frames, refusing a frame whose size differs from the first's (--no-resize)."""
    from compressor.frames import batches

    first = None
    for chunk in batches(frames, batch):
        for src, f in chunk:
            if first is None:
                first = f.shape
            elif f.shape != first:
                raise UserError(f"frames differ in size ({first[0]}x{first[1]} and {f.shape[0]}x{f.shape[1]}); "
                                "drop --no-resize to resize them to the model's frame")
        yield [s for s, _ in chunk], np.stack([f for _, f in chunk])


# --- tokens / frames -------------------------------------------------------------------------------
def tokens_command(args) -> None:
    import compressor
    from compressor.tokens import TokenWriter, sidecar, sidecar_path

    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must name a .npy file, not {out}")
    _check_not_input(out, [Path(i) for i in args.inputs])
    _check_not_input(sidecar_path(out), [Path(i) for i in args.inputs])
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    codec = compressor.load(args.model)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sources, frames, fps, total = _frames_of(codec, args.inputs, args.no_resize, args.fps)
    counts = [0] * len(sources)
    started = time.perf_counter()
    fd, scratch = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    writer = None
    size = None
    try:
        with _progress(total, args.quiet, "tokens") as bar:
            for src_idx, batch in _same_size_batches(frames, codec.batch):
                tokens = codec.tokens(batch)  # (b, h, w)
                if writer is None:
                    writer, size = TokenWriter(Path(scratch), tokens.shape[1:]), batch.shape[1:3]
                writer.write(tokens)
                for i in src_idx:
                    counts[i] += 1
                bar.update(len(batch))
        if writer is None:
            raise UserError("the inputs hold no frames")
        meta = sidecar(model_id=codec.model_id, model=codec.name, frame_size=size, grid=writer.grid,
                       channels=codec.model.latent_channels, frames=writer.frames, fps=fps,
                       sources=_source_list(sources, counts))
        write_atomic(out, writer=writer.finish)
        write_atomic(sidecar_path(out), (json.dumps(meta, indent=1) + "\n").encode())
    finally:
        if writer is not None:
            writer.close()
        Path(scratch).unlink(missing_ok=True)
    if not args.quiet:
        seconds = time.perf_counter() - started  # reading and decoding the inputs included, loading the model not
        print(f"{len(sources)} input(s) -> {out}: {meta['frames']} frames of {writer.grid[0]}x{writer.grid[1]} "
              f"tokens, model {codec.name}, {seconds:.1f} s ({meta['frames'] / seconds:.0f} frames/s)")


def _source_list(sources, counts) -> list[dict]:
    """The sidecar's sources: one entry a video, a folder's run of images as one entry with a count."""
    out: list[dict] = []
    for s, n in zip(sources, counts):
        if s.video:
            out.append({"file": s.path.name, "frames": n})
        elif out and out[-1].get("folder") == s.path.parent.name and "images" in out[-1]:
            out[-1]["images"].append(s.path.name)
            out[-1]["frames"] += n
        else:
            out.append({"folder": s.path.parent.name, "images": [s.path.name], "frames": n})
    return out


def _codec_for_id(model_id: int, model, what: str):
    """The codec for a file made by `model_id`: `model` if given (refused when it is other weights), else
    the shipped model with that id. A checkpoint's legacy id (before context tables were added to it:
    the same network) is accepted; `_tables_for` then gives no tables."""
    import compressor
    from compressor.zoo import find_shipped
    from compressor.errors import ModelMismatchError

    if model is None:
        path = find_shipped(model_id)
        if path is None:
            raise ModelMismatchError(f"{what} was made by model {model_id:04x}, which is not a shipped model; "
                                     "pass --model with the checkpoint it was made with")
        model = path
    codec = compressor.load(model)
    if model_id not in (codec.model_id, codec.card.legacy_model_id):
        raise ModelMismatchError(f"{what} was made by model {model_id:04x}, not by '{codec.name}' ({codec.model_id:04x})")
    return codec


def _tables_for(codec, model_id: int):
    """The context tables a file of `model_id` was coded with: the codec's, or none under its legacy id."""
    return codec._tables if model_id == codec.model_id else None


class _Output:
    """A video file or a folder of PNG frames, written beside the target and moved into place by `commit`."""

    def __init__(self, target: Path, fps: float | None, inputs: list[Path]):
        from compressor.frames import FrameWriter, is_video_path

        self.target = target
        _check_not_input(target, inputs)
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"output folder does not exist: {parent}")
        self.video = is_video_path(target)
        if self.video:
            if target.suffix.lower() not in (".mp4", ".mkv", ".mov"):
                raise UserError(f"cannot write {target.suffix} video; use .mp4 (H.264) or .mkv (lossless FFV1)")
            if target.is_dir():
                raise UserError(f"output {target} is a folder")
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=parent)
            os.close(fd)
        else:
            from compressor.images import IMAGE_SUFFIXES

            if target.suffix.lower() in IMAGE_SUFFIXES | {".bin", ".npy"}:
                raise UserError(f"frames go to a video (.mp4, .mkv) or a new folder, not {target}")
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise UserError(f"output {target} exists and is not an empty folder; give a new folder or a .mp4")
            tmp = tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent)
        self.tmp = Path(tmp)
        self.writer = FrameWriter(self.tmp, fps, video=self.video, container=target.suffix)

    def commit(self) -> None:
        self.writer.close()
        if self.video:
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.target)
        else:
            if self.target.is_dir():
                self.target.rmdir()  # empty, checked above
            os.rename(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def frames_command(args) -> None:
    from compressor.tokens import read_token_file

    src = Path(args.tokens)
    tokens, meta = read_token_file(src)
    codec = _codec_for_id(meta["model_id_int"], args.model, f"token file {src}")
    size = tuple(int(v) for v in meta["frame_size"])
    out = _Output(Path(args.out), meta.get("fps"), [src])
    try:
        with _progress(len(tokens), args.quiet, "frames") as bar:
            for start in range(0, len(tokens), codec.batch):
                for f in codec.from_tokens(np.asarray(tokens[start : start + codec.batch]), size):
                    out.writer.write(f)
                bar.update(min(codec.batch, len(tokens) - start))
        out.commit()
    except BaseException:
        out.abort()
        raise
    if not args.quiet:
        print(f"{src} -> {args.out}: {len(tokens)} frames of {size[0]}x{size[1]}")


# --- clip archives ---------------------------------------------------------------------------------
def is_clip_input(path: Path) -> bool:
    """Whether `compress` should write a clip archive: a video file or a folder of frames."""
    from compressor.frames import is_video_path

    return path.is_dir() or is_video_path(path)


def compress_clip(args) -> None:
    import compressor
    from compressor.clip import KIND_NAMES, ClipHeader, ClipWriter
    from compressor.clip_coding import encode_frame

    src, dst = Path(args.input), Path(args.output)
    _check_not_input(dst, [src])
    if dst.is_dir():
        raise UserError(f"output {dst} is a folder; give a file name")
    if args.refine or args.flips:
        raise UserError("--refine and --flips are for single images, not clips")
    codec = compressor.load(args.model)
    sources, frames, fps, total = _frames_of(codec, [src], args.no_resize, args.fps)
    kinds: dict[int, int] = {}

    def write(tmp: str) -> None:
        with open(tmp, "r+b") as f, _progress(total, args.quiet, "compress") as bar:
            writer = prev = None
            for _, batch in _same_size_batches(frames, codec.batch):
                if writer is None:
                    header = ClipHeader(codec.model_id, batch.shape[1], batch.shape[2], fps, args.keyframe_interval)
                    writer = ClipWriter(f, header)
                for symbols in codec.symbols_batch(batch):  # (C, h, w) each
                    keyframe = len(writer.lengths) % args.keyframe_interval == 0
                    kind, payload = encode_frame(symbols, codec._cdf, codec._tables, None if keyframe else prev)
                    writer.add(kind, payload)
                    kinds[kind] = kinds.get(kind, 0) + 1
                    prev = symbols
                bar.update(len(batch))
            if writer is None:
                raise UserError(f"{src} holds no frames")
            writer.close()

    write_atomic(dst, writer=write)
    if not args.quiet:
        n = sum(kinds.values())
        size = dst.stat().st_size if dst.is_file() else 0
        mix = ", ".join(f"{KIND_NAMES[k]} {v}" for k, v in sorted(kinds.items()))
        print(f"{src} -> {dst}: {n} frames, {size} bytes ({size / n:.1f} per frame; {mix}), model {codec.name}")


def parse_range(text: str | None, count: int) -> tuple[int, int]:
    """"A:B" (either end may be left out; B excluded, like a Python slice) -> (A, B) within 0..count."""
    if text is None:
        return 0, count
    try:
        a, b = text.split(":")
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else count
    except ValueError:
        raise UserError(f"--frames takes A:B (frame numbers, B excluded), not {text!r}") from None
    if not 0 <= start < stop <= count:
        raise UserError(f"--frames {text} is not a non-empty range within the clip's {count} frames (0:{count})")
    return start, stop


def decompress_clip(args) -> int:
    """Decode a clip (or frames A:B of it) to a video or a folder; damaged frames are named on stderr,
    left out of a folder and grey in a video, and the status is 1 if there were any."""
    from compressor.clip import ClipReader
    from compressor.clip_coding import decode_frame
    from compressor.errors import BitstreamError

    src = Path(args.input)
    with open(src, "rb") as f:
        reader = ClipReader(f)
        h = reader.header
        codec = _codec_for_id(h.model_id, args.model, f"clip {src}")
        from compressor.codec import MAX_CODEC_PIXELS
        from compressor.images import check_pixels

        check_pixels(h.height, h.width, MAX_CODEC_PIXELS, f"clip {src}: ")  # before any allocation for it
        tables = _tables_for(codec, h.model_id)
        start, stop = parse_range(args.frames, len(reader))
        shape = (codec.model.latent_channels, *codec.model.latent_grid(h.height, h.width))
        out = _Output(Path(args.output), h.fps, [src])
        damaged = []
        try:
            pending_idx, pending_sym = [], []

            def flush():
                if pending_sym:
                    for i, frame in zip(pending_idx, codec.frames_from_symbols(np.stack(pending_sym), (h.height, h.width))):
                        out.writer.write(frame, index=i)
                    pending_idx.clear()
                    pending_sym.clear()

            with _progress(stop - start, args.quiet, "decompress") as bar:
                prev = None
                for i in range(reader.keyframe_at_or_before(start), stop):
                    try:
                        kind, payload = reader.record(i)
                        symbols = decode_frame(kind, payload, codec._cdf, shape, tables, prev)
                    except BitstreamError as e:
                        symbols = None
                        if i >= start:
                            damaged.append(i)
                            print(f"decompress: warning: frame {i}: {e}", file=sys.stderr)
                    prev = symbols
                    if i < start:
                        continue
                    if symbols is None:
                        flush()
                        if out.video:
                            out.writer.write(np.full((h.height, h.width, 3), 128, np.uint8), index=i)
                    else:
                        pending_idx.append(i)
                        pending_sym.append(symbols)
                        if len(pending_sym) == codec.batch:
                            flush()
                    bar.update(1)
                flush()
            out.commit()
        except BaseException:
            out.abort()
            raise
    if not args.quiet:
        print(f"{src} -> {args.output}: frames {start}:{stop} of {len(reader)}, {h.height}x{h.width}"
              + (f", {len(damaged)} damaged" if damaged else ""))
    if damaged:
        where = "grey in the video" if out.video else "left out of the folder"
        print(f"decompress: {len(damaged)} damaged frame(s) ({where}): {_ranges(damaged)}", file=sys.stderr)
        return 1
    return 0


def _ranges(idx: list[int]) -> str:
    parts, run = [], [idx[0], idx[0]]
    for i in idx[1:]:
        if i == run[1] + 1:
            run[1] = i
        else:
            parts.append(run)
            run = [i, i]
    parts.append(run)
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def clip_info(path: Path) -> dict:
    from compressor.zoo import find_shipped
    from compressor.clip import KIND_NAMES, ClipReader

    with open(path, "rb") as f:
        reader = ClipReader(f)
        h = reader.header
        kinds: dict[str, int] = {}
        for i in range(len(reader)):
            f.seek(int(reader.offsets[i]))
            name = KIND_NAMES.get(f.read(1)[0], "unknown")
            kinds[name] = kinds.get(name, 0) + 1
    sizes = np.diff(reader.offsets)
    shipped = find_shipped(h.model_id)
    return {
        "file": str(path),
        "kind": "clip archive",
        "bytes": reader.size,
        "frames": len(reader),
        "fps": h.fps,
        "size": f"{h.height}x{h.width}",
        "keyframe_interval": h.keyframe_interval,
        "bytes_per_frame": round(reader.size / len(reader), 2),
        "record_bytes_mean": round(float(sizes.mean()), 2),
        "record_bytes_min_max": [int(sizes.min()), int(sizes.max())],
        "records": kinds,
        "model_id": f"{h.model_id:04x}",
        "model": shipped.stem if shipped else "not a shipped model",
    }


# --- ONNX ------------------------------------------------------------------------------------------
def export_onnx_command(args) -> None:
    import warnings

    import compressor
    from compressor.codec import Codec

    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    codec = compressor.load(args.model)
    codec = Codec(codec.model, codec.card, decode_precision="fp32", encode_precision="fp32")
    size = frame_size(codec)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    out.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".onnx.", dir=out))
    try:
        from compressor.onnx_export import export_onnx

        with warnings.catch_warnings():  # the TorchScript exporter's tracer warnings say nothing to a user
            warnings.simplefilter("ignore")
            try:
                files = export_onnx(codec, scratch, size)
            except ModuleNotFoundError as e:
                raise UserError(f"export-onnx needs {e.name}: pip install 'compressor[onnx]'") from None
        meta = {"model_id": f"{codec.model_id:04x}", "model": codec.name, "frame_size": list(size),
                "token_grid": list(codec.model.latent_grid(*size)), "bits": codec.model.latent_channels,
                "bit_order": "bit k (value 2**k) is latent channel k",
                "encoder": "frames uint8 (N, H, W, 3) -> tokens int32 (N, h, w), latent float32 (N, C, h, w)",
                "decoder": "tokens int32 (N, h, w) -> frames uint8 (N, H, W, 3)"}
        (scratch / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
        for f in [*files, scratch / "model.json"]:
            os.chmod(f, 0o666 & ~_umask())
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {out}/encoder.onnx, decoder.onnx and model.json ({codec.name}, {size[0]}x{size[1]} frames)")
