"""Speed with attention through PyTorch's fused SDPA kernel against `layers.attend`'s CPU path.

The two are interleaved in one process, so the machine's drift between runs cancels out; 32 driving
frames, 2 threads. Prints, per model, the median and every round:
- `decode` (default): frames/s decoding, four rounds of 4 x 32 frames at batch 32;
- `search`: encode frames/s with `flips=2` and `refine=10`, three rounds;
- `train`: ms per training step of 16 frames, forward and backward under bf16 autocast, four rounds of
  three steps, the first round left out of the median as warm-up.

usage: python docs/scripts/attention_speed.py [--what decode|search|train] [MODEL ...]
       (models by default: vit.default cvit.equal-budget hybrid.equal-budget; `search`: vit.default)
"""
import argparse
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


def interleaved(rounds: int, measure) -> dict[str, list[float]]:
    """measure() under each attention, alternating, `rounds` times: {label: [value per round]}."""
    cpu_path = layers.attend
    values: dict[str, list[float]] = {"fused SDPA": [], "CPU path": []}
    try:
        for _ in range(rounds):
            for label, attend in (("fused SDPA", fused), ("CPU path", cpu_path)):
                layers.attend = attend
                values[label].append(measure())
    finally:
        layers.attend = cpu_path
    return values


def report(name: str, what: str, values: dict[str, list[float]], skip: int = 0) -> None:
    print(name, what + ":", ", ".join(
        f"{label} {np.median(v[skip:]):.1f} ({' '.join(f'{x:.1f}' for x in v)})" for label, v in values.items()))


def decode(name: str, frames) -> None:
    codec = compressor.load(name)
    datas = codec.encode_batch(frames)

    def measure():
        codec.decode_batch_arrays(datas)  # warm-up
        t = time.perf_counter()
        for _ in range(4):
            codec.decode_batch_arrays(datas)
        return 4 * len(datas) / (time.perf_counter() - t)
    report(name, "decode frames/s", interleaved(4, measure))


def search(name: str, frames) -> None:
    codec = compressor.load(name)
    codec.encode_batch(frames[:4], flips=1)  # warm-up
    for kind in ({"flips": 2}, {"refine": 10}):
        def measure():
            t = time.perf_counter()
            codec.encode_batch(frames, **kind)
            return len(frames) / (time.perf_counter() - t)
        report(name, f"encode frames/s with {kind}", interleaved(3, measure))


def train(name: str, frames) -> None:
    from compressor.model import load_model
    from compressor.zoo import resolve

    model, _ = load_model(resolve(name))
    model.train()
    x = torch.from_numpy(np.stack(frames[:16])).permute(0, 3, 1, 2).float() / 255  # (16, 3, 128, 256)

    def measure():
        t = time.perf_counter()
        for _ in range(3):
            with layers.cpu_attention_path(), torch.autocast("cpu", dtype=torch.bfloat16):
                out = model.decoder(model.encoder(x))
            (out.float() - x).pow(2).mean().backward()
        return (time.perf_counter() - t) / 3 * 1000
    report(name, "ms per training step of 16", interleaved(4, measure), skip=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--what", choices=["decode", "search", "train"], default="decode")
    p.add_argument("models", nargs="*")
    args = p.parse_args()
    models = args.models or (["vit.default"] if args.what == "search"
                             else ["vit.default", "cvit.equal-budget", "hybrid.equal-budget"])
    torch.set_num_threads(2)
    paths = sorted(glob.glob("../shared/data/eval/driving-frames-128x256/*.png"))[:32]
    if len(paths) < 32:
        sys.exit("needs ../shared/data/eval/driving-frames-128x256 beside the checkout")
    frames = [to_rgb_array(p) for p in paths]
    for name in models:
        {"decode": decode, "search": search, "train": train}[args.what](name, frames)


if __name__ == "__main__":
    main()
