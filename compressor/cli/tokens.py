"""The CLI's token commands: `compressor tokens` / `frames`, and `compressor export-onnx`.

Same rules as the other commands (`compressor.cli.common`): one-line errors, outputs written beside
the target and renamed into place (a folder of frames too), inputs never overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from compressor.atomic import write_atomic
from compressor.cli.common import UserError, _check_not_input, _umask
from compressor.cli.sequences import _codec_for_id, _frames_of, _Output, _progress, _same_size_batches, frame_size


def tokens_command(args) -> None:
    import compressor
    from compressor.tokens import TokenWriter, sidecar, sidecar_path

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
        print(f"{len(args.inputs)} input(s) -> {out}: {meta['frames']} frames of {writer.grid[0]}x{writer.grid[1]} "
              f"tokens, model {codec.name}, {seconds:.1f} s ({meta['frames'] / seconds:.0f} frames/s)")


def _source_list(sources, counts) -> list[dict]:
    """The sidecar's sources: one entry a video, a folder's run of images as one entry with a count."""
    out: list[dict] = []
    folder = None  # the folder of the last entry of images: two folders of one name stay two entries
    for s, n in zip(sources, counts):
        if s.video:
            out.append({"file": s.path.name, "frames": n})
            folder = None
        elif folder == s.path.parent:
            out[-1]["images"].append(s.path.name)
            out[-1]["frames"] += n
        else:
            out.append({"folder": s.path.parent.name, "images": [s.path.name], "frames": n})
            folder = s.path.parent
    return out


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
