"""Where a model wins and loses against a classic codec, image by image, from a bench's results.json.

    python examples/per_image_gap.py [--results examples/bench/results.json] [--model vit-distil2-ft]
                                     [--classic "AVIF (bare)"] [--groups 3]

`compressor bench` keeps every image's bytes and PSNR for each model and each classic codec (the classic
codecs fitted, image by image, into the first model's bytes). This sorts each set's images by the classic
codec's PSNR (easy, smooth frames last) and prints the model's mean PSNR lead in each group, and the
correlation between the classic codec's PSNR and that lead. Nothing is re-encoded: it reads the file.
"""
import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="examples/bench/results.json")
    ap.add_argument("--model", default="vit-distil2-ft")
    ap.add_argument("--classic", default="AVIF (bare)")
    ap.add_argument("--groups", type=int, default=3)
    args = ap.parse_args()
    records = json.loads(Path(args.results).read_text())["records"]
    sets = dict.fromkeys(r["images"] for r in records)
    for images in sets:
        found = {r["name"]: r for r in records if r["images"] == images}
        if args.model not in found or args.classic not in found:
            continue
        ours = {p["file"]: p["psnr"] for p in found[args.model]["per_image"]}
        theirs = {p["file"]: p["psnr"] for p in found[args.classic]["per_image"] if p["psnr"] is not None}
        files = sorted(theirs, key=theirs.get)  # hardest for the classic codec first
        lead = np.array([ours[f] - theirs[f] for f in files])
        classic = np.array([theirs[f] for f in files])
        groups = np.array_split(np.arange(len(files)), args.groups)
        by_group = ", ".join(f"{lead[g].mean():+.2f}" for g in groups)
        print(f"{images}: {len(files)} images, {args.model} {np.mean([ours[f] for f in files]):.2f} dB, "
              f"{args.classic} {classic.mean():.2f} dB; lead by {args.classic} PSNR, low to high: {by_group} dB; "
              f"correlation {np.corrcoef(classic, lead)[0, 1]:+.2f}")


if __name__ == "__main__":
    main()
