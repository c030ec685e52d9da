"""Which context terms to use: ideal payload bytes per frame under a few spatial and temporal layouts.

    python examples/context_layouts.py CHECKPOINT --fit DIR [DIR...] --eval DIR [DIR...] \
        [--held-out GLOB ...]

Spatial layouts are fitted on the --fit folders' frames (files matching --held-out left out) and
measured on each --eval folder; temporal layouts are fitted on the --fit sequences' pairs and
measured on the held-out sequences' pairs (one and two frames apart). Bytes are ideal code lengths
(sum of -log2 p / 8); the coder adds 2-4 bytes a frame (`compressor eval` gives real files).
Terms: L/L2 left and two-left, U/U2 up and two-up, UL up-left, c-1/c-2 earlier channels of the token;
temporal: P the previous frame at the same place, d(...) whether the symbol there changed since it.
"""
from __future__ import annotations

import argparse
import fnmatch

import numpy as np

import compressor
from compressor import context_model as cm
from compressor.context_fit import load_frames, sequence_pairs
from compressor.data import find_images

CUR = {"L": (0, 0, -1), "L2": (0, 0, -2), "U": (0, -1, 0), "U2": (0, -2, 0), "UL": (0, -1, -1),
       "c-1": (-1, 0, 0), "c-2": (-2, 0, 0), "c-1 L": (-1, 0, -1), "c-1 U": (-1, -1, 0)}


def spatial(*names) -> cm.Layout:
    return cm.Layout(" ".join(names), tuple(("cur", CUR[n]) for n in names))


SPATIAL = [
    spatial("L", "U", "UL", "c-1", "c-2"),
    cm.SPATIAL,
    spatial("L", "U", "UL", "c-1", "c-2", "c-1 L", "c-1 U"),
    spatial("L", "L2", "U", "U2", "UL", "c-1", "c-1 L", "c-1 U"),
]
TEMPORAL = [
    cm.TEMPORAL,
    cm.Layout("P d(c-1) d(c-2) d(L) d(U) L U", (("prev", (0, 0, 0)), ("diff", (-1, 0, 0)), ("diff", (-2, 0, 0)),
                                               ("diff", (0, 0, -1)), ("diff", (0, -1, 0)), ("cur", (0, 0, -1)),
                                               ("cur", (0, -1, 0)))),
    cm.Layout("P d(c-1) d(L) d(U) d(UL) c-1 L", (("prev", (0, 0, 0)), ("diff", (-1, 0, 0)), ("diff", (0, 0, -1)),
                                               ("diff", (0, -1, 0)), ("diff", (0, -1, -1)), ("cur", (-1, 0, 0)),
                                               ("cur", (0, 0, -1)))),
]


def ideal_bytes(layout: cm.Layout, table: np.ndarray, frames) -> float:
    """Mean ideal payload bytes of (symbols, prev) frames under `table`."""
    flat = table.reshape(-1).astype(np.float64) / cm.PROB_ONE
    total = 0.0
    for s, prev in frames:
        sym, p = cm._probabilities(s, layout, flat, None if prev is None else cm._padded(prev, s.shape))
        total += -np.log2(np.where(sym == 1, p, 1 - p)).sum() / 8
    return total / len(frames)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--fit", nargs="+", required=True)
    p.add_argument("--eval", nargs="+", required=True)
    p.add_argument("--held-out", action="append", default=[], metavar="GLOB")
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)

    def symbols_of(files):
        return [codec.encode_symbols(a) for a in load_frames(files)]

    files = find_images(args.fit)
    held = [any(fnmatch.fnmatch(f.name, g) for g in args.held_out) for f in files]
    fit_files = [f for f, h in zip(files, held) if not h]
    held_files = [f for f, h in zip(files, held) if h]
    fit_sym, held_sym = symbols_of(fit_files), symbols_of(held_files)
    evals = {folder: symbols_of(find_images([folder])) for folder in args.eval}
    cdf = codec._cdf
    p1 = 1 - cdf[:, 1] / 65536
    print(f"fitted on {len(fit_files)} frames; ideal payload bytes per frame")
    print("  per-channel table: " + ", ".join(
        f"{f.rstrip('/').split('/')[-1]} {np.mean([-np.log2(np.where(s == 1, p1[:, None, None], 1 - p1[:, None, None])).sum() / 8 for s in ss]):.1f}"
        for f, ss in evals.items()))
    for layout in SPATIAL:
        table = cm.quantise(cm._counts(layout, ((s, None) for s in fit_sym), cdf.shape[0]))
        print(f"  spatial {layout.name:32}: " + ", ".join(
            f"{f.rstrip('/').split('/')[-1]} {ideal_bytes(layout, table, [(s, None) for s in ss]):.1f}"
            for f, ss in evals.items()))
    if not held_files:
        return
    fit_pairs = [(fit_sym[j], fit_sym[i]) for i, j, _ in sequence_pairs(fit_files)]  # (cur, prev)
    held_pairs = sequence_pairs(held_files)
    print(f"temporal: fitted on {len(fit_pairs)} pairs, measured on {len(held_pairs)} held-out pairs")
    for layout in TEMPORAL:
        table = cm.quantise(cm._counts(layout, fit_pairs, cdf.shape[0]))
        cells = []
        for step in (1, 2):
            frames = [(held_sym[j], held_sym[i]) for i, j, k in held_pairs if k == step]
            cells.append(f"step {step} {ideal_bytes(layout, table, frames):.1f}")
        print(f"  temporal {layout.name:31}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
