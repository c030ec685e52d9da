"""Payload bytes per frame of consecutive video frames: temporal table vs spatial table vs per-channel table.

    python examples/temporal_bytes.py CHECKPOINT DIR --only 'cityscapes_seq0003_*' --only 'sullychen_03*' ...

Frames are made as `../shared/data/README.md` says (128x256), coded with the checkpoint's symbols;
each later frame of a sequence pair (one step apart, and two: half the frame rate) is coded with the
temporal table given the earlier one, with the spatial table alone, and with the per-channel table.
Pass the sequences the tables were not fitted on (`compressor fit-context --exclude`).
"""
from __future__ import annotations

import argparse
import fnmatch

import numpy as np

import compressor
from compressor import context_model, entropy_coder
from compressor.context_fit import PAIR_STEPS, load_frames, sequence_pairs
from compressor.data import find_images


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("folders", nargs="+")
    p.add_argument("--only", action="append", required=True, metavar="GLOB", help="file names to use (repeatable)")
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    if codec.card.context_tables is None:
        raise SystemExit(f"{args.checkpoint} has no context tables (run compressor fit-context)")
    tables = codec.card.context_tables
    files = [f for f in find_images(args.folders) if any(fnmatch.fnmatch(f.name, g) for g in args.only)]
    symbols = [codec.encode_symbols(a) for a in load_frames(files)]
    pairs = sequence_pairs(files)
    first = {f.name.split("_")[0] for f in files}
    print(f"{len(files)} frames of {', '.join(sorted(first))}; payload bytes per frame (mean over pairs)")
    for step in PAIR_STEPS:
        chosen = [(i, j) for i, j, k in pairs if k == step]
        rows = {"temporal": [], "spatial": [], "per-channel": [], "best of the three": []}
        for i, j in chosen:
            t = len(context_model.encode(symbols[j], tables, prev=symbols[i]))
            s = len(context_model.encode(symbols[j], tables))
            c = len(entropy_coder.encode(symbols[j], codec._cdf))
            for name, v in zip(rows, (t, s, c, min(t, s, c, entropy_coder.raw_size(symbols[j].size)))):
                rows[name].append(v)
        print(f"  step {step} ({len(chosen)} pairs): " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in rows.items()))


if __name__ == "__main__":
    main()
