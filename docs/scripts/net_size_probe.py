"""Probe: what a larger context net buys in bytes, and what it costs in coding time, now that the net's
products no longer slow the codec (`context_net._one_blas_thread`).

Each arm fits a net of its size by the shipped recipe (`compressor fit-context --net`: the default's codes
of every cover frame and 3 random crops of each file of the training folders, 5,000 steps of 4,096
tokens, the same seed), quantises it, and is scored on the evaluation frames (out of sample) as payload
bytes a frame (constriction's ANS, the bytes a `.bin` file's payload has) and ideal bytes; then the coder
alone, 32 frames of one folder in one call, interleaved across arms (median of `--repeats`):
`encode_many` and `decode_many`, milliseconds. Arms: hidden width, chain width, channel groups (decoding
steps per token diagonal); the first is the shipped size.

    python docs/scripts/net_size_probe.py --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

import compressor
from compressor import context_net, context_net_fit
from compressor.context_fit import _encode_all, encode_crops, select_files
from compressor.training.data import find_images

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments

ARMS = ((64, 16, 7), (128, 16, 7), (128, 32, 7), (64, 16, 14), (128, 32, 14))


def training_symbols(codec, folders, crops: int = 3) -> np.ndarray:
    """The symbols `fit_context` fits a net on: every file's cover frame, then `crops` random crops of each."""
    files = select_files(find_images(folders), None, [])
    return np.stack(_encode_all(codec, files, False, "frames") + encode_crops(codec, files, crops))


def main() -> None:
    ap = data_parser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(2)
    codec = compressor.load(args.model)
    start = time.perf_counter()
    train = training_symbols(codec, args.train)
    print(f"{len(train)} training frames encoded in {time.perf_counter() - start:.0f} s", flush=True)
    sets = [np.stack(codec.symbols_batch(list(eval_frames(d)))) for d in args.eval]
    nets = {}
    print("| hidden, chain, groups | " + " | ".join(f"{d}: payload (ideal) B" for d in args.eval) + " | fit s |")
    print("|---|" + "---|" * (len(args.eval) + 1))
    for hidden, width, groups in ARMS:
        start = time.perf_counter()
        fitted = context_net_fit.train(train, steps=args.steps, hidden=hidden, width=width, groups=groups)
        net = nets[hidden, width, groups] = context_net.ContextNet(context_net_fit.quantise(fitted))
        cells = []
        for s in sets:
            payload = np.mean([len(p) for p in context_net.encode_many(list(s), net)])
            ideal = np.mean([context_net.code_bits(net, f) for f in s]) / 8
            cells.append(f"{payload:.2f} ({ideal:.2f})")
        print(f"| {hidden}, {width}, {groups} | " + " | ".join(cells) + f" | {time.perf_counter() - start:.0f} |",
              flush=True)
    frames = list(sets[-1][:32])
    times = {arm: ([], []) for arm in nets}
    for _ in range(args.repeats):
        for arm, net in nets.items():
            t = time.perf_counter()
            payloads = context_net.encode_many(frames, net)
            times[arm][0].append(time.perf_counter() - t)
            t = time.perf_counter()
            context_net.decode_many(payloads, net, frames[0].shape)
            times[arm][1].append(time.perf_counter() - t)
    print(f"\n| hidden, chain, groups | encode_many, {len(frames)} frames | decode_many |\n|---|---|---|")
    for arm, (enc, dec) in times.items():
        enc_ms, dec_ms = statistics.median(enc) * 1e3, statistics.median(dec) * 1e3
        print(f"| {', '.join(map(str, arm))} | {enc_ms:.1f} ms | {dec_ms:.1f} ms |")


if __name__ == "__main__":
    main()
