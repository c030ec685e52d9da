"""Probe: what a context net fitted on snapped codes would save on them, losslessly.

The default's net was fitted on its encoder's plain codes (the signs of the latent), before snapping;
the codec now codes snapped codes, which lean toward what that net predicts. A net fitted on the
snapped codes themselves should code them in fewer bytes. An A/B at equal fit: two nets fitted by the
shipped recipe's arithmetic (`context_net_fit.train`, the same steps and seed) on the same training
frames' codes (each file's cover frame and 3 random crops of `--train`), one on plain codes and one on
snapped codes, then quantised; both score the evaluation frames' snapped codes (out of sample) in ideal
bytes a frame, beside the shipped net. The rest of the question, re-snapping with the new net and a
decoder for those codes, is not measured here.

    python docs/scripts/net_refit_probe.py --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
"""
from __future__ import annotations

import time

import numpy as np
import torch

import compressor
from compressor import context_net, context_net_fit

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments
from net_size_probe import training_symbols  # this folder's sibling probe


def ideal_bytes(net, symbols: np.ndarray) -> float:
    """Mean ideal code length in bytes a frame of (N, C, h, w) symbols under a ContextNet."""
    return float(np.mean([context_net.code_bits(net, s) for s in symbols]) / 8)


def main() -> None:
    ap = data_parser()
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    codec = compressor.load(args.model)
    c = codec.snap
    if not c:
        ap.error(f"{args.model} does not snap")
    nets = {"shipped (plain codes, 5,000 steps)": codec._net}
    evals = [np.stack(codec.symbols_batch(list(eval_frames(d)))) for d in args.eval]
    for arm, snap in (("plain codes", 0.0), ("snapped codes", c)):
        start = time.perf_counter()
        codec.snap = snap
        train = training_symbols(codec, args.train)
        fitted = context_net_fit.train(train, steps=args.steps)
        nets[f"fitted on {arm}, {args.steps} steps"] = context_net.ContextNet(context_net_fit.quantise(fitted))
        print(f"{arm}: {len(train)} training frames, encoded and fitted in {time.perf_counter() - start:.0f} s",
              flush=True)
    codec.snap = c
    print("\nsnapped codes of the evaluation frames, ideal bytes a frame:")
    print("| net | " + " | ".join(args.eval) + " |\n|---|" + "---|" * len(args.eval))
    for arm, net in nets.items():
        print(f"| {arm} | " + " | ".join(f"{ideal_bytes(net, s):.2f}" for s in evals) + " |", flush=True)


if __name__ == "__main__":
    main()
