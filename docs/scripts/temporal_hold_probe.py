"""Probe: temporally held bits in clips. Off a keyframe, every bit the encoder is least sure of (|y| below
the frame's q-quantile of |y|) keeps the previous frame's value, so more bits repeat and the temporal
table codes them cheaply, at some cost in PSNR. Bytes a frame of clip archives (keyframe every K,
headers, records and index counted; each record the shortest kind, as `compress` writes clips) and
mean PSNR, against the same frames coded alone, at the sequences' frame rate and at half of it.

    compressor fit-context vit.default --images ../shared/data/train/driving ../shared/data/train/photos \
        --exclude 'cityscapes_seq0002_*' --exclude 'cityscapes_seq0003_*' --exclude 'sullychen_03*' \
        --net --crops 1 --net-steps 3000 --out /tmp/heldout.safetensors
    python docs/scripts/temporal_hold_probe.py /tmp/heldout.safetensors \
        --only 'cityscapes_seq0002_*' --only 'cityscapes_seq0003_*'
"""
from __future__ import annotations

import argparse
import fnmatch
import io
from pathlib import Path

import numpy as np
import torch

import compressor
from compressor.bottleneck import symbols_from_latent
from compressor.clip import ClipHeader, ClipWriter
from compressor.clip_coding import encode_frames
from compressor.context_fit import load_frames
from compressor.metrics import psnr

DRIVING = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train" / "driving"


def held_codes(latent: torch.Tensor, share: float, interval: int) -> list[np.ndarray]:
    """(N, C, h, w) latents of consecutive frames -> uint8 codes, off keyframes the `share` least sure
    bits of each frame held at the previous frame's value."""
    codes = []
    for t, y in enumerate(latent):
        code = symbols_from_latent(y)  # (C, h, w), the codec's rule
        if t % interval and share > 0:
            unsure = y.abs() < torch.quantile(y.abs().flatten(), share)
            code = torch.where(unsure, codes[-1], code)
        codes.append(code)
    return [c.numpy() for c in codes]


def archive_bytes(codec, symbols: list[np.ndarray], interval: int, temporal: bool) -> int:
    f = io.BytesIO()
    writer = ClipWriter(f, ClipHeader(codec.model_id, 128, 256, None, interval))
    prevs = [None if not temporal or t % interval == 0 else symbols[t - 1] for t in range(len(symbols))]
    for kind, payload in encode_frames(symbols, codec._cdf, codec._tables, prevs, codec._net):
        writer.add(kind, payload)
    writer.close()
    return len(f.getvalue())


def score(codec, frames: np.ndarray, symbols: list[np.ndarray], interval: int) -> tuple[int, int, float]:
    """One sequence's frames (T, H, W, 3) and codes -> (archive bytes coded alone, as a clip, PSNR summed
    over its frames)."""
    decoded = codec.frames_from_symbols(np.stack(symbols), (128, 256))
    return (archive_bytes(codec, symbols, interval, temporal=False), archive_bytes(codec, symbols, interval, temporal=True),
            sum(psnr(a, d) for a, d in zip(frames, decoded)))


def sequence_parser(description: str, keyframe_interval: int) -> argparse.ArgumentParser:
    """The arguments both temporal probes take: a checkpoint, held-out sequences, K."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("checkpoint")
    p.add_argument("--only", action="append", required=True, metavar="GLOB", help="one sequence's file names")
    p.add_argument("--data", default=str(DRIVING))
    p.add_argument("--keyframe-interval", type=int, default=keyframe_interval)
    return p


def sequence_files(args, step: int) -> list[list[Path]]:
    """Each --only sequence's files in order, every `step`th."""
    return [sorted(f for f in Path(args.data).iterdir() if fnmatch.fnmatch(f.name, g))[::step] for g in args.only]


def sweep(codec, args, values, codes_of, k: int) -> None:
    """Table rows for each frame rate (every frame, every 2nd) and each value: bytes a frame coded alone and
    as a clip archive, and mean PSNR, over the --only sequences; `codes_of(latent, value)` makes a sequence's
    codes from its latent (T, C, h, w) as the codec encodes it."""
    for step in (1, 2):
        totals: dict[float, list] = {}
        for files in sequence_files(args, step):
            frames = load_frames(files)  # (T, 128, 256, 3) uint8
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                latent = codec._encode_latent(x, None)  # (T, C, h, w), as the codec encodes
            for value in values:
                codes = codes_of(latent, value)
                t = totals.setdefault(value, [0, 0, 0.0, 0])
                for j, v in enumerate((*score(codec, frames, codes, k), len(codes))):
                    t[j] += v
        for value, (alone, clip, total_psnr, n) in totals.items():
            print(f"| {n}, every {step} | {value:g} | {alone / n:.1f} B | {clip / n:.1f} B | {total_psnr / n:.3f} dB |",
                  flush=True)


def main() -> None:
    p = sequence_parser(__doc__.splitlines()[0], keyframe_interval=30)
    p.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    k = args.keyframe_interval
    print("| frames | held share | coded alone | temporal archive | PSNR |")
    print("|---|---|---|---|---|")
    sweep(codec, args, args.shares, lambda latent, share: held_codes(latent, share, k), k)


if __name__ == "__main__":
    main()
