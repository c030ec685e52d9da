"""The CLI's token commands: `compressor tokens` / `frames`, and `compressor export-onnx`.

Same rules as the other commands (`compressor.cli.common`): one-line errors, outputs written beside
the target and renamed into place (a folder of frames too), inputs never overwritten.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from compressor.archive import read_tokens_for
from compressor.atomic import write_atomic
from compressor.cli.clips import parse_range
from compressor.cli.common import UserError, _check_not_input, _umask
from compressor.cli.sequences import _frames_of, _Output, _progress, _same_size_batches
from compressor.frames import Source, frame_size


def tokens_command(args) -> None:
    import compressor
    from compressor.tokens import sidecar_path
    from compressor.zoo import DEFAULT_MODEL

    out = Path(args.out)
    if out.suffix != ".npy":
        raise UserError(f"--out must name a .npy file, not {out}")
    _check_not_input(out, [Path(i) for i in args.inputs])
    _check_not_input(sidecar_path(out), [Path(i) for i in args.inputs])
    for path in (out, sidecar_path(out)):
        if path.is_dir():
            raise UserError(f"{path} is a folder; the tokens go to {out} and their sidecar to {sidecar_path(out)}")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise UserError(f"output folder does not exist: {out.parent}")
    compressed = _compressed_inputs(args.inputs)
    if compressed and args.no_resize:
        raise UserError("--no-resize is for frames; .bin files hold their tokens at the size they were coded")
    if not compressed and args.frames is not None:
        raise UserError("--frames picks frames of one clip archive; give that archive alone")
    if compressed:
        codec, fps, batches, sources = _tokens_of_files(compressed, args)
        started = time.perf_counter()  # the files' headers read and the model loaded
    else:
        codec = compressor.load(args.model or DEFAULT_MODEL, device=args.device)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        started = time.perf_counter()
        fps, batches, sources = _tokens_of_frames(codec, args)
    meta = _write_tokens(out, codec, fps, batches, sources)
    if not args.quiet:
        seconds = time.perf_counter() - started  # reading and decoding the inputs included, loading the model not
        grid = meta["token_grid"]
        print(f"{len(args.inputs)} input(s) -> {out}: {meta['frames']} frames of {grid[0]}x{grid[1]} tokens, "
              f"model {codec.name}, {seconds:.1f} s ({meta['frames'] / seconds:.0f} frames/s)")


def _write_tokens(out: Path, codec, fps, batches, sources) -> dict:
    """Token batches ((b, h, w) uint16, their frames' size (H, W)) -> `out` and its sidecar, each written
    whole or not at all; `sources()` gives the sidecar's sources once the batches are spent. The sidecar."""
    from compressor.tokens import TokenWriter, sidecar, sidecar_path

    fd, scratch = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    writer = size = None
    try:
        for tokens, frame in batches:
            frame = tuple(int(v) for v in frame)
            if writer is None:
                writer, size = TokenWriter(Path(scratch), tokens.shape[1:]), frame
            elif frame != size:
                raise UserError(f"the inputs' frames differ in size ({size[0]}x{size[1]} and {frame[0]}x{frame[1]}); "
                                "a token file holds frames of one size")
            writer.write(tokens)
        if writer is None:
            raise UserError("the inputs hold no frames")
        meta = sidecar(model_id=codec.model_id, model=codec.name, frame_size=size, grid=writer.grid,
                       channels=codec.model.latent_channels, frames=writer.frames, fps=fps, sources=sources())
        write_atomic(out, writer=writer.finish)
        write_atomic(sidecar_path(out), (json.dumps(meta, indent=1) + "\n").encode())
    finally:
        if writer is not None:
            writer.close()
        Path(scratch).unlink(missing_ok=True)
    return meta


def _check_recordable(fps: float | None, source) -> None:
    """A frame rate taken from a video or clip archive (`source()` names it) that a sidecar cannot hold (a
    high-speed camera's, over `tokens.MAX_FPS`) is refused before anything is written: --fps gives one."""
    from compressor.tokens import MAX_FPS, MIN_FPS

    if fps is not None and not MIN_FPS <= fps <= MAX_FPS:
        raise UserError(f"{source()} plays at {fps:g} frames a second, outside the {MIN_FPS:g} to {MAX_FPS:g} a "
                        "token file records: give --fps")


def _tokens_of_frames(codec, args):
    """Images, folders and videos -> (fps, token batches, sources): the encoder runs on every frame."""
    frame_sources, frames, fps, total = _frames_of(codec, args.inputs, args.no_resize, args.fps)
    _check_recordable(fps, lambda: next(s.path for s in frame_sources if s.video))
    counts = [0] * len(frame_sources)

    def batches():
        with _progress(total, args.quiet, "tokens") as bar:
            for src_idx, batch in _same_size_batches(frames, codec.batch):
                yield codec.tokens(batch), batch.shape[1:3]  # (b, h, w)
                for i in src_idx:
                    counts[i] += 1
                bar.update(len(batch))

    return fps, batches(), lambda: _source_list(frame_sources, counts)


def _compressed_inputs(inputs) -> list[Path]:
    """The inputs if they are compressed files (`.bin` frames or clip archives, told by their first bytes),
    [] if none is; a mix of the two is refused."""
    from compressor.bitstream import MAGIC
    from compressor.clip import is_clip

    kinds = []
    for item in map(Path, inputs):
        prefix = b""
        if item.is_file():
            with open(item, "rb") as f:
                prefix = f.read(4)
            if item.suffix.lower() == ".bin" and not (prefix[:1] == bytes([MAGIC]) or is_clip(prefix)):
                raise UserError(f"{item} is {'empty' if not prefix else 'not a compressor .bin file or clip archive'}")
        kinds.append(bool(prefix) and (prefix[0] == MAGIC or is_clip(prefix)))
    if any(kinds) and not all(kinds):
        other = next(Path(i) for i, k in zip(inputs, kinds) if not k)
        if not other.exists():
            raise UserError(f"input not found: {other}")
        what = "a folder (list its .bin files one by one)" if other.is_dir() else "not a .bin file"
        raise UserError(f"{other} is {what}: a token file comes from frames or from .bin files, not both")
    return [Path(i) for i in inputs] if any(kinds) else []


def _tokens_of_files(files: list[Path], args):
    """`.bin` frames and clip archives -> (codec, fps, token batches, sources): the symbols exactly as they
    were coded, by entropy decoding alone (no network runs). The files must name one model. A damaged
    clip frame stops the command: a token file has no place for a missing frame."""
    from compressor.archive import ClipTokens
    from compressor.clip import is_clip
    from compressor.codec import codec_for
    from compressor.errors import CompressorError

    stack = contextlib.ExitStack()
    items: list = []  # (path, ClipTokens) for a clip, (path, bytes) for a .bin frame
    codec = first = None
    try:
        for path in files:
            with open(path, "rb") as f:
                data = f.read(4)
                if not is_clip(data):
                    data += f.read()
            if is_clip(data):
                clip = stack.enter_context(ClipTokens(path, args.model))
                mine = clip.codec
                items.append((path, clip))
            else:
                try:
                    mine = codec_for(data, args.model)
                    h = mine._check(data)[0]  # header, model and sizes, before any entropy decoding
                except CompressorError as e:
                    raise UserError(f"{path}: {e}") from None
                default = mine._tiling_for(h.height, h.width)  # what `compressor frames` will decode with
                if bool(h.tiled) != (default is not None) or (default is not None and bool(h.overlap) != default.overlap):
                    raise UserError(f"{path} was coded with --no-tile or --no-overlap, which a token file does not "
                                    "record: compressor frames would decode its tokens otherwise")
                items.append((path, data))
            if codec is None:
                codec, first = mine, path
            elif mine.model_id != codec.model_id:
                raise UserError(f"{path} was written by {mine.name}, {first} by {codec.name}: "
                                "a token file holds one model's tokens")
        # clip index -> (start, stop): the whole clip unless --frames picks a part of the one clip
        ranges = {k: (0, len(r)) for k, (_, r) in enumerate(items) if isinstance(r, ClipTokens)}
        if args.frames is not None:
            if len(items) != 1 or 0 not in ranges:
                raise UserError("--frames picks frames of one clip archive; give that archive alone")
            ranges[0] = parse_range(args.frames, len(items[0][1]))
    except BaseException:
        stack.close()
        raise
    fps = args.fps or next((r.fps for _, r in items if isinstance(r, ClipTokens)), None)
    _check_recordable(fps, lambda: next(p for p, r in items if isinstance(r, ClipTokens)))
    counts = [0] * len(items)

    def batches():
        total = sum(b - a for a, b in ranges.values()) + len(items) - len(ranges)
        with stack, _progress(total, args.quiet, "tokens") as bar:
            for k, chunk in _file_chunks(items):
                for tokens, size in (_clip_tokens(*chunk[0], *ranges[k]) if k in ranges
                                     else _frame_file_tokens(codec, chunk)):
                    yield tokens, size
                    bar.update(len(tokens))
                for j in range(k, k + len(chunk)):
                    counts[j] = ranges[j][1] - ranges[j][0] if j in ranges else 1

    def sources():
        out = _source_list([Source(p, isinstance(r, ClipTokens)) for p, r in items], counts, files=True)
        if args.frames is not None:
            out[0]["start"] = ranges[0][0]  # the archive's frame that became the token file's first
        return out

    return codec, fps, batches(), sources


FILE_RUN = 256  # .bin frames decoded together (`clip_coding.decode_frames`: one numpy step for all)


def _file_chunks(items):
    """(first index, [(path, clip)]) for each clip, (first index, [(path, bytes)...]) for runs of .bin frames."""
    k = 0
    while k < len(items):
        if not isinstance(items[k][1], bytes):
            yield k, [items[k]]
            k += 1
            continue
        run = []
        while k + len(run) < len(items) and isinstance(items[k + len(run)][1], bytes) and len(run) < FILE_RUN:
            run.append(items[k + len(run)])
        yield k, run
        k += len(run)


def _frame_file_tokens(codec, files: list[tuple[Path, bytes]]):
    """.bin frames (path, bytes) -> (tokens (1, h, w), (H, W)) for each, entropy decoded together; a file
    that fails is found alone and named."""
    from compressor.errors import CompressorError
    from compressor.tokens import tokens_from_symbols

    try:
        parsed = codec._parse_many([data for _, data in files])
    except CompressorError:
        for path, data in files:
            try:
                codec._parse(data)
            except CompressorError as e:
                raise UserError(f"{path}: {e}") from None
        raise
    for symbols, size, _ in parsed:
        yield tokens_from_symbols(symbols[None]), size


def _clip_tokens(path: Path, clip, start: int, stop: int):
    """Frames start..stop-1 of a clip archive (`archive.ClipTokens`) -> (tokens (b, h, w), (H, W)) batches;
    UserError at a damaged frame."""
    from compressor.errors import BitstreamError

    try:
        for tokens in clip.token_runs(start, stop):
            yield tokens, clip.frame_size
    except BitstreamError as e:  # the frame named by token_runs
        raise UserError(f"{e}; a token file cannot leave it out (decompress writes the other frames)") from None


def token_file_info(path: Path) -> dict:
    """`compressor info` of a token file: its sidecar's facts, checked against the array (`read_token_file`)."""
    from compressor.tokens import read_token_file
    from compressor.zoo import find_shipped, name_of

    tokens, meta = read_token_file(path)
    shipped = find_shipped(meta["model_id_int"])
    return {
        "file": str(path),
        "kind": "token file",
        "bytes": path.stat().st_size,
        "frames": int(tokens.shape[0]),
        "fps": meta.get("fps"),
        "size": "x".join(str(v) for v in meta["frame_size"]),
        "token_grid": "x".join(str(v) for v in tokens.shape[1:]),
        "bits": meta.get("bits"),
        "sources": len(meta.get("sources") or []),
        "model_id": meta["model_id"],
        "model": name_of(shipped) if shipped else f"{meta.get('model')} (not a shipped model)",
    }


def _source_list(sources, counts, files: bool = False) -> list[dict]:
    """The sidecar's sources: one entry a video (or clip archive), a folder's run of images (or, with
    `files`, of .bin frames) as one entry with a count."""
    key = "files" if files else "images"
    out: list[dict] = []
    folder = None  # the folder of the last entry of images: two folders of one name stay two entries
    for s, n in zip(sources, counts):
        if s.video:
            out.append({"file": s.path.name, "frames": n})
            folder = None
        elif folder == s.path.parent:
            out[-1][key].append(s.path.name)
            out[-1]["frames"] += n
        else:
            out.append({"folder": s.path.parent.name, key: [s.path.name], "frames": n})
            folder = s.path.parent
    return out


def frames_command(args) -> None:
    src = Path(args.tokens)
    tokens, meta, codec, size = read_tokens_for(src, args.model, args.device)
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


# --- ONNX ------------------------------------------------------------------------------------------
def export_onnx_command(args) -> None:
    import warnings

    import compressor
    from compressor.codec import Codec
    from compressor.extras import need

    out = Path(args.outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    need("onnx", "compressor export-onnx")  # before any folder is made (torch wraps its absence in its own error)
    codec = compressor.load(args.model)
    codec = Codec(codec.model, codec.card, decode_precision="fp32", encode_precision="fp32")
    size = frame_size(codec)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    made = not out.exists()
    out.mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".onnx.", dir=out))
    try:
        from compressor.onnx_export import export_onnx

        with warnings.catch_warnings():  # the TorchScript exporter's tracer warnings say nothing to a user
            warnings.simplefilter("ignore")
            try:
                files = list(export_onnx(codec, scratch, size))
            except ModuleNotFoundError as e:
                raise UserError(f"export-onnx needs {e.name}: pip install 'compressor[onnx]'") from None
        meta = {"model_id": f"{codec.model_id:04x}", "model": codec.name, "frame_size": list(size),
                "token_grid": list(codec.model.latent_grid(*size)), "bits": codec.model.latent_channels,
                "bit_order": "bit k (value 2**k) is latent channel k",
                "encoder": "frames uint8 (N, H, W, 3) -> tokens int32 (N, h, w), latent float32 (N, C, h, w)",
                "decoder": "tokens int32 (N, h, w) -> frames uint8 (N, H, W, 3)"}
        if codec.snap:  # the codec's tokens are the latent's signs snapped by its context net (numpy only)
            np.savez(scratch / "context_net.npz", **codec.card.context_net)
            files.append(scratch / "context_net.npz")
            meta["snap"] = codec.snap
            meta["snapped_tokens"] = ("tokens_from_symbols(context_net.snap(ContextNet(dict(np.load('context_net.npz'))), "
                                      "latent, snap)); encoder.onnx's tokens are the plain signs")
        (scratch / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
        for f in [*files, scratch / "model.json"]:
            os.chmod(f, 0o666 & ~_umask())
            os.replace(f, out / f.name)
    except BaseException:
        if made:  # a folder this command made holds nothing of a failed export
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    extra = ", context_net.npz" if codec.snap else ""
    print(f"wrote {out}/encoder.onnx, decoder.onnx{extra} and model.json ({codec.name}, {size[0]}x{size[1]} frames)")
