"""Probe: how many bytes a temporal context net (the spatial net's inputs plus the previous frame's 3x3
window of tokens, `context_net_fit.FloatNet(temporal=True)`) saves on consecutive driving frames.

Fits the float net on the sequence pairs (1 and 2 frames apart) of a folder, minus held-out sequences,
then measures ideal bytes a frame on the held-out pairs: the model's shipped spatial context net
(integer, as `.bin` files code), the temporal table, and the temporal float net (the integer net it
quantises to codes within 1% of it).

    python docs/scripts/temporal_net_probe.py ../shared/data/train/driving \
        --held-out 'cityscapes_seq0002_*' --held-out 'cityscapes_seq0003_*' --held-out 'sullychen_03*'
"""
from __future__ import annotations

import argparse
import fnmatch
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import compressor
from compressor import context_model, context_net, context_net_fit
from compressor.context_fit import _encode_all, sequence_pairs
from compressor.training.data import find_images


def float_bytes(net, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Ideal bytes of each frame (N,) under a float temporal net."""
    with torch.no_grad():
        x, own = context_net_fit.token_data(cur, prev)
        bits = F.binary_cross_entropy_with_logits(net(x, own), (own > 0).float(), reduction="none") / math.log(2)
    return bits.view(len(cur), -1).sum(1).numpy() / 8


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--held-out", action="append", default=[])
    ap.add_argument("--model", default="vit.default")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--hidden", type=int, default=context_net_fit.HIDDEN)
    args = ap.parse_args()

    codec = compressor.load(args.model)
    files = find_images([args.folder])
    symbols = np.stack(_encode_all(codec, files, False, "frames"))
    held = [any(fnmatch.fnmatch(f.name, p) for p in args.held_out) for f in files]
    pairs = sequence_pairs(files)
    train = [(i, j) for i, j, _ in pairs if not held[i] and not held[j]]
    print(f"{len(files)} frames, {len(pairs)} pairs, {len(train)} to fit on", flush=True)
    start = time.perf_counter()
    net = context_net_fit.train(symbols[[j for _, j in train]], prev=symbols[[i for i, _ in train]],
                                steps=args.steps, log=print, hidden=args.hidden)
    print(f"fitted in {time.perf_counter() - start:.0f} s", flush=True)
    tables = codec._tables
    print("| pairs | n | spatial net | temporal table | best of both (clips today) | temporal net | best of three |")
    print("|---|---|---|---|---|---|---|")
    for step in (1, 2):
        for pattern in args.held_out:
            test = [(i, j) for i, j, s in pairs if s == step and held[j] and fnmatch.fnmatch(files[j].name, pattern)]
            if not test:
                continue
            cur, prev = symbols[[j for _, j in test]], symbols[[i for i, _ in test]]
            spatial = np.array([context_net.code_bits(codec._net, s) / 8 for s in cur])
            table = np.array([context_model.code_bits(s, tables, prev=p) / 8 for s, p in zip(cur, prev)])
            tnet = float_bytes(net, cur, prev)
            today, three = np.minimum(spatial, table), np.minimum(np.minimum(spatial, table), tnet)
            print(f"| {pattern}, step {step} | {len(test)} | {spatial.mean():.1f} | {table.mean():.1f} | "
                  f"{today.mean():.1f} | {tnet.mean():.1f} | {three.mean():.1f} ({100 * (three.mean() / today.mean() - 1):+.1f}%) |",
                  flush=True)


if __name__ == "__main__":
    main()
