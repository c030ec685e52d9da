"""Probe: does snapping gain from pricing a flip's error per channel? The codec's rule
(`context_net.snap`) flips a cell where the net says the flip saves bits and |y| < c x bits saved, so
|y| stands in for the flip's error with one constant for all 14 channels. Channels differ in what a
flip costs the decoder, so this probe measures each channel's cost per unit of margin and snaps with

    flip where saved > 0 and w_c |y| < c x saved,    w_c = E[MSE change of a flip] / E[|y| of the flip]

(w normalised to mean 1), on the training frames: for each channel, its cells with |y| under that
channel's `--quantile` are flipped, the frames decoded, and the MSE change divided by the flipped
margins. Both rules are then swept over c on the evaluation frames with one decoder, and scored as the
codec's `.bin` files and their PSNR; "net" prices the byte change at bare AVIF's trade, about 2 dB per
doubling of bytes. The decoder should be one not fine-tuned on either rule's codes: by default the
former default, whose decoder read plain codes (`git show 1726f52:checkpoints/vit-distil2-ft.safetensors`).

    python docs/scripts/snap_weight_probe.py --model vit-distil2-ft.safetensors \
        --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
"""
from __future__ import annotations


import numpy as np
import torch

import compressor
from compressor import context_net
from compressor.context_fit import load_frames, select_files
from compressor.training.data import find_images

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments
from snap_probe import AVIF_DB_PER_DOUBLING, latent, score  # this folder's sibling probe


def channel_costs(codec, frames: np.ndarray, y: np.ndarray, quantile: float) -> np.ndarray:
    """(C,) MSE change per unit of |y| when a channel's least sure cells flip, measured on `frames`."""
    plain = (y >= 0).astype(np.uint8)
    base = codec.frames_from_symbols(plain).astype(np.float64) / 255
    x = frames.astype(np.float64) / 255
    mse0 = ((base - x) ** 2).mean(axis=(1, 2, 3))
    costs = []
    for c in range(y.shape[1]):
        margin = np.abs(y[:, c])
        pick = margin < np.quantile(margin, quantile)  # (N, h, w)
        flipped = plain.copy()
        flipped[:, c][pick] ^= 1
        out = codec.frames_from_symbols(flipped).astype(np.float64) / 255
        mse = ((out - x) ** 2).mean(axis=(1, 2, 3))
        costs.append((mse - mse0).sum() / margin[pick].sum())
    costs = np.array(costs)
    return costs / costs.mean()


def snap_weighted(net, y: np.ndarray, c: float, weights: np.ndarray) -> np.ndarray:
    """The codec's one-pass rule with the margin of channel k scaled by weights[k]."""
    plain = (y >= 0).astype(np.uint8)
    saved = context_net.flip_savings(net, plain)
    margin = np.abs(y) * weights[None, :, None, None]
    return np.where((saved > 0) & (margin < c * saved), 1 - plain, plain).astype(np.uint8)


def main() -> None:
    ap = data_parser()
    ap.add_argument("--frames", type=int, default=512)
    ap.add_argument("--quantile", type=float, default=0.03)
    ap.add_argument("--c", nargs="+", type=float, default=[0.4, 0.8, 1.6, 3.2])
    args = ap.parse_args()
    codec = compressor.load(args.model)
    train = load_frames(select_files(find_images(args.train), args.frames, []))
    with torch.inference_mode():
        weights = channel_costs(codec, train, latent(codec, train), args.quantile)
    print(f"{len(train)} training frames; channel weights: " + " ".join(f"{w:.2f}" for w in weights))
    for folder in args.eval:
        frames = eval_frames(folder)
        y = latent(codec, frames)
        p0, b0 = score(codec, frames, (y >= 0).astype(np.uint8))
        print(f"\n{folder}: plain {p0:.3f} dB @ {b0:.1f} B")
        print("| c | rule | PSNR @ bytes | net |\n|---|---|---|---|")
        for c in args.c:
            for rule, w in (("one constant", np.ones(len(weights))), ("per channel", weights)):
                p, b = score(codec, frames, snap_weighted(codec._net, y, c, w))
                print(f"| {c} | {rule} | {p:.3f} dB @ {b:.1f} B | "
                      f"{p - p0 - AVIF_DB_PER_DOUBLING * np.log2(b / b0):+.3f} |", flush=True)


if __name__ == "__main__":
    main()
