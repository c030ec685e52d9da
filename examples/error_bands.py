"""In which spatial band a model's error lies, against a classic codec at the same bytes.

    python examples/error_bands.py ../shared/data/eval/kodak-frames-128x256 [--model vit.default]
                                   [--classic AVIF] [--file]

Each image is coded by the model, and by the classic codec at the most bytes that fit the model's file for
that image (bare bitstream unless --file, best of scales 1 to 1/8: `compressor bench`'s rule). Each
error image (decoded minus original, 8-bit RGB) is split into three parts that add up to it: its means
over 16x16 blocks (the latent's patches: what a patch's colour and brightness get wrong), the means over
4x4 blocks less those (coarse structure inside a patch) and the rest (fine detail); and, apart, its mean
over the whole image (a colour cast). Printed: each part's mean squared error over the images, the
parts' sum being the MSE, for the model and the classic codec.
"""
import argparse

import numpy as np

import compressor
from compressor.images import to_rgb_array
from compressor.measure.classic import available_codecs, fit
from compressor.measure.evaluate import expand_paths


def block_means(err: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) -> the same shape, each size x size block replaced by its mean (H, W multiples of size)."""
    h, w, c = err.shape
    means = err.reshape(h // size, size, w // size, size, c).mean(axis=(1, 3))  # (H/size, W/size, 3)
    return np.repeat(np.repeat(means, size, axis=0), size, axis=1)  # (H, W, 3)


def bands(err: np.ndarray) -> np.ndarray:
    """Mean squared error of (H, W, 3) float `err` in [patch 16x16, inside-patch 4x4, fine, colour cast]."""
    patch = block_means(err, 16)
    coarse = block_means(err, 4) - patch
    fine = err - patch - coarse
    cast = err.mean(axis=(0, 1))  # (3,)
    return np.array([(patch ** 2).mean(), (coarse ** 2).mean(), (fine ** 2).mean(), (cast ** 2).mean()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--model", default=None)
    ap.add_argument("--classic", default="AVIF")
    ap.add_argument("--file", action="store_true", help="fit the classic codec's whole file, not its bare stream")
    args = ap.parse_args()
    codec = compressor.load(args.model)
    classic = {c.fmt.upper(): c for c in available_codecs()}[args.classic.upper()]
    ours, theirs = [], []
    for path in expand_paths(args.images):
        image = to_rgb_array(path)
        if image.shape[0] % 16 or image.shape[1] % 16:
            continue  # the bands are the latent's patches: sizes that are multiples of 16 only
        data = codec.encode(image)
        ours.append(bands(np.asarray(codec.decode(data)).astype(np.float64) - image))
        fitted = fit(classic, image, len(data), bare=not args.file)
        if fitted is not None:
            theirs.append(bands(fitted.decoded.astype(np.float64) - image))
    names = "16x16 patch means, 4x4 inside patches, fine detail; colour cast"
    for label, rows in ((codec.name, ours), (f"{classic.fmt} ({'file' if args.file else 'bare'})", theirs)):
        if rows:
            m = np.mean(rows, axis=0)
            print(f"{label}: {len(rows)} images, MSE {m[:3].sum():.1f} = {m[0]:.1f} + {m[1]:.1f} + {m[2]:.1f} "
                  f"({names} {m[3]:.2f})")


if __name__ == "__main__":
    main()
