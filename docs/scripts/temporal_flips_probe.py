"""Probe: a rate-aware flip search for clips, under the temporal table given the previous frame's final
code. Frame by frame (sequences side by side as a batch), `search.flip_symbols` minimises MSE +
w x bits, the bits those of the table the record will likely use: the temporal table off a keyframe,
the spatial one on it (`context_rate.ContextRate`). Bytes a frame of clip archives (keyframe every K,
headers, records and index counted; each record the shortest kind, as `compress` writes clips) and
mean PSNR, against plain encoding coded alone (independent coding) and as clips write it today.

    python docs/scripts/temporal_flips_probe.py /tmp/heldout.safetensors \
        --only 'cityscapes_seq0002_*' --only 'cityscapes_seq0003_*'

(checkpoint: see docs/scripts/temporal_hold_probe.py; its tables and net never saw these sequences)
"""
from __future__ import annotations

import numpy as np
import torch

import compressor
from compressor.bottleneck import symbols_from_latent
from compressor.context_fit import load_frames
from compressor.context_model import TEMPORAL
from compressor.context_rate import ContextRate
from compressor.search import flip_symbols

from temporal_hold_probe import score, sequence_files, sequence_parser  # this folder's sibling probe


def searched_codes(codec, frames: np.ndarray, rounds: int, weight: float, interval: int) -> np.ndarray:
    """frames (S, T, H, W, 3) uint8, S sequences of T frames -> codes (S, T, C, h, w), searched frame by frame."""
    tables = codec._tables.arrays
    bf16 = codec.decode_precision == "bf16"
    codes = []
    for t in range(frames.shape[1]):
        x = torch.from_numpy(frames[:, t]).permute(0, 3, 1, 2).float() / 255  # (S, 3, H, W)
        latent = codec._encode_latent(x, None)
        if not weight:
            rate = None
        elif t % interval == 0:
            rate = ContextRate(tables["spatial"])
        else:
            rate = ContextRate(tables["temporal"], layout=TEMPORAL, prev=torch.from_numpy(codes[-1]))
        code = symbols_from_latent(latent) if not rounds else flip_symbols(
            codec.model, x, rounds=rounds, bf16=bf16, latent=latent, rate=rate, rate_weight=weight)
        codes.append(code.numpy())
    return np.stack(codes, axis=1)


def main() -> None:
    p = sequence_parser(__doc__.splitlines()[0], keyframe_interval=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 2e-6, 4e-6, 8e-6])
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    k = args.keyframe_interval
    print("| frames | search | coded alone | clip archive | PSNR |")
    print("|---|---|---|---|---|")
    for step in (1, 2):
        seqs = sequence_files(args, step)
        length = min(len(s) for s in seqs)
        frames = np.stack([load_frames(s[:length]) for s in seqs])  # (S, T, H, W, 3)
        for rounds, weight in [(0, 0.0)] + [(args.rounds, w) for w in args.weights]:
            codes = searched_codes(codec, frames, rounds, weight, k)
            alone, clip, total_psnr = (sum(v) for v in zip(*(score(codec, f, list(c), k) for f, c in zip(frames, codes))))
            n = codes.shape[0] * codes.shape[1]
            search = "plain" if not rounds else f"flips {rounds}, w = {weight:g}"
            print(f"| {n}, every {step} | {search} | {alone / n:.1f} B | {clip / n:.1f} B | {total_psnr / n:.3f} dB |",
                  flush=True)


if __name__ == "__main__":
    main()
