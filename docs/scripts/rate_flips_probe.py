"""Rate-aware flips at encoding: what trading error for context-coded bytes does to a model's lead over AVIF.

`flip_symbols(..., rate=, rate_weight=)` minimises MSE + rate_weight * bits under the model's context
tables. For each weight this prints mean PSNR and mean file bytes over each folder, and the PSNR change
net of what the byte change would buy (or cost) bare AVIF at its local slope near 224 B (0.0135 dB a
byte, docs/anchors.md). A positive "net" means the rate-aware code gains on AVIF at equal bytes.

    python docs/scripts/rate_flips_probe.py ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 [--model vit.default] [--flips 3] [--weights 0 1e-6 2e-6 4e-6]
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import compressor

AVIF_DB_PER_BYTE = 0.0135


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / ((a.astype(np.float64) - b) ** 2).mean()))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--model", default="vit.default")
    p.add_argument("--flips", type=int, default=3)
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 1e-6, 2e-6, 4e-6])
    args = p.parse_args(argv)
    codec = compressor.load(args.model)
    for folder in args.folders:
        paths = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() == ".png")
        xs = [np.asarray(Image.open(f).convert("RGB")) for f in paths]

        def measure(**kw):
            files = codec.encode_batch(xs, **kw)
            ys = codec.decode_batch_arrays(files)
            return np.mean([psnr(y, x) for x, y in zip(xs, ys)]), np.mean([len(f) for f in files])

        base_db, base_b = measure()
        print(f"{Path(folder).name} ({len(xs)} frames), {codec.name}: plain {base_db:.3f} dB @ {base_b:.1f} B")
        for w in args.weights:
            db, b = measure(flips=args.flips, rate_weight=w)
            net = (db - base_db) - (b - base_b) * AVIF_DB_PER_BYTE
            print(f"  flips {args.flips}, rate_weight {w:g}: {db:.3f} dB @ {b:.1f} B "
                  f"({db - base_db:+.3f} dB, {b - base_b:+.1f} B, net of AVIF {net:+.3f} dB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
