"""Probe: snapping in time. The codec snaps each frame's unsure bits to its context net's prediction where
that saves bits (`context_net.snap`); in a clip, off a keyframe, the same rule can snap them to what the
temporal table predicts given the previous frame's final code: a cell flips where the flip saves bits
under that table (every cell given the others as they are, one pass) and the encoder's margin |y| is
below c x the bits saved. No search and no decoder pass: plain-mode speed. Bytes a frame of clip archives
(every record the shortest kind, as `compress` writes clips) and mean PSNR, at the sequences' frame rate
and at half of it, for each c (0: clips today).

    compressor fit-context vit.default --images ../shared/data/train/driving ../shared/data/train/photos \
        --exclude 'cityscapes_seq0002_*' --exclude 'cityscapes_seq0003_*' --exclude 'sullychen_03*' \
        --net --crops 1 --net-steps 3000 --out /tmp/heldout.safetensors
    python docs/scripts/temporal_snap_probe.py /tmp/heldout.safetensors \
        --only 'cityscapes_seq0002_*' --only 'cityscapes_seq0003_*' [--c 0 0.4 0.8 1.6 3.2]
"""
from __future__ import annotations

import numpy as np
import torch

import compressor
from compressor import context_model, context_net
from compressor.context_fit import load_frames
from temporal_hold_probe import score, sequence_files, sequence_parser  # this folder's sibling probe


def time_snapped(codec, latent: np.ndarray, c: float, interval: int) -> list[np.ndarray]:
    """(T, C, h, w) latents of consecutive frames -> their codes: the codec's own (snapped by its net), and
    off keyframes each then snapped toward the temporal table's prediction given the previous final code."""
    own = context_net.snap(codec._net, latent, codec.snap) if codec._net is not None else (latent >= 0).astype(np.uint8)
    table = context_model.Tables.of(codec.card.context_tables).probabilities(context_model.TEMPORAL, latent.shape[1])
    codes = []
    for t, code in enumerate(own):
        if t % interval and c > 0:
            rows = context_model._table_rows(code, context_model.TEMPORAL, codes[-1])  # (C, h, w)
            saved = context_net.saved_bits(table[rows], code)
            code = np.where((saved > 0) & (np.abs(latent[t]) < c * saved), 1 - code, code).astype(np.uint8)
        codes.append(code)
    return codes


def main() -> None:
    p = sequence_parser(__doc__.splitlines()[0], keyframe_interval=10)
    p.add_argument("--c", type=float, nargs="+", default=[0.0, 0.4, 0.8, 1.6, 3.2])
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    k = args.keyframe_interval
    print(f"{codec.name}: snap {codec.snap}, K = {k}")
    print("| frames | c | coded alone | clip archive | PSNR |")
    print("|---|---|---|---|---|")
    for step in (1, 2):
        totals: dict[float, list] = {}
        for files in sequence_files(args, step):
            frames = load_frames(files)  # (T, 128, 256, 3) uint8
            x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                latent = codec._encode_latent(x, None).float().numpy()  # (T, C, h, w), as the codec encodes
            for c in args.c:
                codes = time_snapped(codec, latent, c, k)
                t = totals.setdefault(c, [0, 0, 0.0, 0])
                for j, value in enumerate((*score(codec, frames, codes, k), len(codes))):
                    t[j] += value
        for c, (alone, clip, total_psnr, n) in totals.items():
            print(f"| {n}, every {step} | {c:g} | {alone / n:.1f} B | {clip / n:.1f} B | {total_psnr / n:.3f} dB |",
                  flush=True)


if __name__ == "__main__":
    main()
