"""Clip archives through `compress` / `decompress` / `compressor info`: a video or a folder of frames
in one file, with random access from its keyframes.

Same rules as the other commands (`compressor.cli.common`): one-line errors, outputs written beside
the target and renamed into place (a folder of frames too), inputs never overwritten.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from compressor.cli.common import UserError, _check_compressed_output, _check_not_input
from compressor.cli.sequences import _frames_of, _Output, _progress, _same_size_batches


# --- clip archives ---------------------------------------------------------------------------------
def is_clip_input(path: Path) -> bool:
    """Whether `compress` should write a clip archive: a video file or a folder of frames."""
    from compressor.frames import is_video_path

    return path.is_dir() or is_video_path(path)


def compress_clip(args) -> None:
    import compressor
    from compressor.archive_writer import ArchiveWriter
    from compressor.clip import KIND_NAMES

    src, dst = Path(args.input), Path(args.output)
    _check_not_input(dst, [src])
    if dst.is_dir():
        raise UserError(f"output {dst} is a folder; give a file name")
    _check_compressed_output(dst)
    if args.refine:
        raise UserError("--refine is for single images; clips take --flips")
    if args.no_tile or args.no_overlap:  # clip frames are coded whole or in the codec's own windows
        raise UserError("--no-tile and --no-overlap are for single images, not clips")
    if args.rate_weight and not args.flips:
        raise UserError("--rate-weight weights the --flips search: give --flips ROUNDS too")
    codec = compressor.load(args.model, device=args.device)
    if args.rate_weight and codec._tables is None:
        raise UserError(f"'{codec.name}' has no context tables: --rate-weight needs them (compressor fit-context)")
    sources, frames, fps, total = _frames_of(codec, [src], args.no_resize, args.fps)  # resized as they are read
    with ArchiveWriter(dst, codec, fps=fps, keyframe_interval=args.keyframe_interval, resize=False) as clip, \
            _progress(total, args.quiet, "compress") as bar:
        plain_last = None
        for _, batch in _same_size_batches(frames, codec.batch):
            if args.flips:
                symbols, plain_last = _searched(codec, batch, args, len(clip), plain_last)
            else:
                symbols = codec.symbols_batch(batch)  # (N, C, h, w)
            clip.add_symbols(symbols, batch.shape[1:3])
            bar.update(len(batch))
        if not len(clip):
            raise UserError(f"{src} holds no frames")
    if not args.quiet:
        n = len(clip)
        size = dst.stat().st_size if dst.is_file() else 0
        mix = ", ".join(f"{KIND_NAMES[k]} {v}" for k, v in sorted(clip.kinds.items()))
        print(f"{src} -> {dst}: {n} frames, {size} bytes ({size / n:.1f} per frame; {mix}), model {codec.name}")


def compress_tokens(args) -> None:
    """A token file (`compressor tokens`, with its sidecar) -> one clip archive of those tokens exactly, by
    entropy coding alone: the model the sidecar names (or --model) codes them; no network runs."""
    from compressor.archive import read_tokens_for
    from compressor.archive_writer import ArchiveWriter
    from compressor.clip import KIND_NAMES
    from compressor.tokens import check_token_range, sidecar_path

    src, dst = Path(args.input), Path(args.output)
    _check_not_input(dst, [src, sidecar_path(src)])
    if dst.is_dir():
        raise UserError(f"output {dst} is a folder; give a file name")
    _check_compressed_output(dst)
    if args.refine or args.flips or args.rate_weight or args.no_tile or args.no_overlap or args.no_resize:
        raise UserError("a token file is coded as it is: --refine, --flips, --rate-weight, --no-tile, --no-overlap "
                        "and --no-resize are for frames")
    tokens, meta, codec, size = read_tokens_for(src, args.model)  # its grid checked against its frame size
    if not len(tokens):
        raise UserError(f"token file {src} holds 0 frames of {tokens.shape[1]}x{tokens.shape[2]} tokens; its "
                        f"{size[0]}x{size[1]} frames need at least one")
    bits = codec.model.latent_channels
    for a in range(0, len(tokens), 4096):  # every value checked, naming the frame, before anything is written
        check_token_range(np.asarray(tokens[a : a + 4096]), bits, f"token file {src}", a)
    with ArchiveWriter(dst, codec, fps=args.fps or meta.get("fps"), keyframe_interval=args.keyframe_interval) as clip, \
            _progress(len(tokens), args.quiet, "compress") as bar:
        for start in range(0, len(tokens), codec.batch):
            clip.add_tokens(tokens[start : start + codec.batch], size)
            bar.update(min(codec.batch, len(tokens) - start))
    if not args.quiet:
        n, nbytes = len(clip), dst.stat().st_size
        mix = ", ".join(f"{KIND_NAMES[k]} {v}" for k, v in sorted(clip.kinds.items()))
        print(f"{src} -> {dst}: {n} frames, {nbytes} bytes ({nbytes / n:.1f} per frame; {mix}), model {codec.name}")


def _searched(codec, batch: np.ndarray, args, start: int, prev):
    """Consecutive uint8 frames (N, H, W, 3), the first being frame `start` -> their codes under the --flips
    search (`search.flip_clip_symbols`: with --rate-weight, the temporal table's bits off keyframes), and
    the last frame's plain code; `prev` is the plain code of the frame before, None at the start."""
    import torch

    from compressor.bottleneck import symbols_from_latent
    from compressor.search import flip_clip_symbols

    tiling = codec._tiling_for(*batch.shape[1:3])
    keyframe = (start + torch.arange(len(batch), device=codec.device)) % args.keyframe_interval == 0
    tables = codec._tables.arrays if args.rate_weight else None
    with torch.inference_mode():
        x = torch.from_numpy(batch).to(codec.device).permute(0, 3, 1, 2).float().div_(255)  # (N, 3, H, W)
        latent = codec._encode_latent(x, tiling)  # (N, C, h, w), as the codec encodes
        codes = flip_clip_symbols(codec.model, x, rounds=args.flips, latent=latent, keyframe=keyframe, prev=prev,
                                  tables=tables, rate_weight=args.rate_weight, tiling=tiling,
                                  bf16=codec.decode_precision == "bf16")  # the decoder as decode will run it
    return list(codes.cpu().numpy()), symbols_from_latent(latent[-1])


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
    from compressor.archive import ClipTokens

    src = Path(args.input)
    # header, index, size and model checked before any allocation
    with ClipTokens(src, args.model, device=args.device) as clip:
        h, codec = clip.reader.header, clip.codec
        start, stop = parse_range(args.frames, len(clip))
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
                for i, symbols in clip.symbols(start, stop):
                    if not isinstance(symbols, np.ndarray):
                        damaged.append(i)
                        print(f"decompress: warning: frame {i}: {symbols}", file=sys.stderr)
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
        print(f"{src} -> {args.output}: frames {start}:{stop} of {len(clip)}, {h.height}x{h.width}"
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
    from compressor.zoo import find_shipped, name_of
    from compressor.clip import KIND_NAMES, ClipError, ClipReader

    with open(path, "rb") as f:
        try:
            reader = ClipReader(f)
        except ClipError as e:
            raise ClipError(f"{path}: {e}") from None
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
        "model": name_of(shipped) if shipped else "not a shipped model",
    }
