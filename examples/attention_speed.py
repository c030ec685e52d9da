"""Decode speed with attention through PyTorch's fused SDPA kernel against `layers.attend`'s CPU path.

The two are interleaved in one process (four rounds, 4 x 32 driving frames each, batch 32), so the
machine's drift between runs cancels out. Prints frames/s per model: the median and every round.

usage: python examples/attention_speed.py [MODEL ...]   (default: vit-distil2-ft cvit-1m-distil-ft hybrid-1m-distil-ft)
"""
import glob
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import compressor
import compressor.layers as layers
from compressor.images import to_rgb_array


def fused(q, k, v, bias=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def main(models: list[str]) -> None:
    torch.set_num_threads(2)
    paths = sorted(glob.glob("../shared/data/eval/driving-frames-128x256/*.png"))[:32]
    if len(paths) < 32:
        sys.exit("needs ../shared/data/eval/driving-frames-128x256 beside the checkout")
    frames = [to_rgb_array(p) for p in paths]
    cpu_path = layers.attend
    for name in models:
        codec = compressor.load(name)
        datas = codec.encode_batch(frames)
        rates: dict[str, list[float]] = {"fused SDPA": [], "CPU path": []}
        for _ in range(4):
            for label, attend in (("fused SDPA", fused), ("CPU path", cpu_path)):
                layers.attend = attend
                codec.decode_batch_arrays(datas)  # warm-up
                t = time.perf_counter()
                for _ in range(4):
                    codec.decode_batch_arrays(datas)
                rates[label].append(4 * len(datas) / (time.perf_counter() - t))
        layers.attend = cpu_path
        print(name, "decode frames/s:", ", ".join(
            f"{label} {np.median(r):.0f} ({' '.join(f'{x:.0f}' for x in r)})" for label, r in rates.items()))


if __name__ == "__main__":
    main(sys.argv[1:] or ["vit-distil2-ft", "cvit-1m-distil-ft", "hybrid-1m-distil-ft"])
