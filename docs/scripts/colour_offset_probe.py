"""How much a per-image colour offset, sent beside the latent, would add: PSNR gain against its bytes.

The decoder's output has a per-image, per-channel mean error (a colour cast). Sending that mean,
quantised with step `s`, costs about H(q) bits per channel (the ideal code length over the set) and
removes the cast. The last column prices those bytes at bare AVIF's local slope at 224 B (about 0.0135
dB a byte on kodak-frames: 22.80 dB at 224 B, 24.9 at 448 B, docs/anchors.md), which is what the same
bytes would buy the classic codec in a bench that gives it our file sizes.

    python docs/scripts/colour_offset_probe.py ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 [--model vit.default]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import compressor

AVIF_DB_PER_BYTE = 0.0135


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / ((a - b) ** 2).mean()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--model", default="vit.default")
    args = p.parse_args(argv)
    codec = compressor.load(args.model)
    for folder in args.folders:
        paths = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() == ".png")
        xs = [np.asarray(Image.open(f).convert("RGB")) for f in paths]
        ys = [y.astype(np.float64) for y in codec.decode_batch_arrays(codec.encode_batch(xs))]
        xs = [x.astype(np.float64) for x in xs]
        base = np.mean([psnr(x, y) for x, y in zip(xs, ys)])
        for step in (1, 2, 4):
            q = [np.round((x - y).mean(axis=(0, 1)) / step) for x, y in zip(xs, ys)]  # (3,) per image
            fixed = [np.clip(np.round(y + qq * step), 0, 255) for y, qq in zip(ys, q)]
            gain = np.mean([psnr(x, f) for x, f in zip(xs, fixed)]) - base
            _, counts = np.unique(np.concatenate(q), return_counts=True)
            freq = counts / counts.sum()
            nbytes = -(freq * np.log2(freq)).sum() * 3 / 8
            print(f"{Path(folder).name}: step {step}: +{gain:.3f} dB for {nbytes:.2f} B "
                  f"(the same bytes buy AVIF about {AVIF_DB_PER_BYTE * nbytes:.3f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
