"""Bytes per frame of clip archives of consecutive driving frames: temporal coding (keyframe every K)
against every frame coded alone, at a sequence's own frame rate and at half of it.

    compressor fit-context vit-distil2-ft --images ../shared/data/train/driving \\
        --exclude 'cityscapes_seq0002_*' --exclude 'cityscapes_seq0003_*' --exclude 'sullychen_03*' \\
        --out /tmp/vit-ctx.safetensors
    python examples/temporal_clip_bytes.py /tmp/vit-ctx.safetensors \\
        --only 'cityscapes_seq0002_*' --only 'cityscapes_seq0003_*' --only 'sullychen_03*'

Each sequence's frames are made as `../shared/data/README.md` says (128x256) and coded with the
checkpoint; archives are built in memory with `compressor.clip` (headers, records and index counted).
The symbols are the same either way, so the decoded frames and their PSNR are identical.
"""
from __future__ import annotations

import argparse
import fnmatch
import io
from pathlib import Path

import numpy as np

import compressor
from compressor.clip import KIND_NAMES, ClipHeader, ClipWriter
from compressor.clip_coding import encode_frame
from compressor.context_fit import load_frames, sequence_pairs

DRIVING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "driving"


def archive(codec, symbols: list[np.ndarray], interval: int, temporal: bool) -> tuple[int, dict]:
    """(archive bytes, record kinds) of these frames' symbols."""
    f = io.BytesIO()
    writer = ClipWriter(f, ClipHeader(codec.model_id, 128, 256, None, interval))
    kinds: dict[str, int] = {}
    prev = None
    for i, s in enumerate(symbols):
        keyframe = not temporal or i % interval == 0
        kind, payload = encode_frame(s, codec._cdf, codec._tables, None if keyframe else prev)
        writer.add(kind, payload)
        kinds[KIND_NAMES[kind]] = kinds.get(KIND_NAMES[kind], 0) + 1
        prev = s
    writer.close()
    return len(f.getvalue()), kinds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--only", action="append", required=True, metavar="GLOB", help="one sequence's file names (repeatable)")
    p.add_argument("--data", default=str(DRIVING))
    p.add_argument("--keyframe-interval", type=int, default=30)
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    if codec._tables is None:
        raise SystemExit(f"{args.checkpoint} has no context tables (compressor fit-context)")
    totals: dict = {}
    for glob in args.only:
        files = sorted(f for f in Path(args.data).iterdir() if fnmatch.fnmatch(f.name, glob))
        if len(sequence_pairs(files)) == 0:
            raise SystemExit(f"{glob}: not a sequence of consecutive frames")
        symbols = [codec.encode_symbols(a) for a in load_frames(files)]
        for step in (1, 2):
            seq = symbols[::step]
            alone, _ = archive(codec, seq, args.keyframe_interval, temporal=False)
            temporal, kinds = archive(codec, seq, args.keyframe_interval, temporal=True)
            per_channel = sum(len(encode_frame(s, codec._cdf)[1]) for s in seq) / len(seq)
            t = totals.setdefault(step, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + len(seq), t[1] + alone, t[2] + temporal
            print(f"{glob} step {step} ({len(seq)} frames): coded alone {alone / len(seq):.1f} B/frame, temporal K="
                  f"{args.keyframe_interval} {temporal / len(seq):.1f} ({100 * (temporal / alone - 1):+.1f}%); "
                  f"per-channel payload alone {per_channel:.1f}; records {kinds}")
    for step, (n, alone, temporal) in totals.items():
        print(f"all, step {step} ({n} frames): coded alone {alone / n:.1f} B/frame, temporal {temporal / n:.1f} "
              f"({100 * (temporal / alone - 1):+.1f}%)")


if __name__ == "__main__":
    main()
