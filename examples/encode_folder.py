"""Compress every image in a folder into .bin files with the batched API, then check them.

    python examples/encode_folder.py IMAGES_DIR OUT_DIR [--model vit.default]

Prints the bytes per frame and the PSNR of the decoded frames: what a team storing camera frames for
world-model training would run on a sample of its own data before committing to a codec.
"""
import argparse
from pathlib import Path

import numpy as np

import compressor
from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths
from compressor.metrics import psnr


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("images")
    p.add_argument("out")
    p.add_argument("--model", default="vit.default")
    args = p.parse_args()

    codec = compressor.load(args.model)
    files = expand_paths([args.images])
    frames = [to_rgb_array(f) for f in files]
    datas = codec.encode_batch(frames)  # same-size frames share model passes of up to 32
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f, data in zip(files, datas):
        (out / f"{f.stem}.bin").write_bytes(data)

    decoded = codec.decode_batch_arrays([(out / f"{f.stem}.bin").read_bytes() for f in files])
    scores = [psnr(a, b) for a, b in zip(frames, decoded)]
    sizes = [len(d) for d in datas]
    print(f"{len(files)} frames -> {out}: mean {np.mean(sizes):.1f} bytes (max {max(sizes)}), "
          f"mean PSNR {np.mean(scores):.2f} dB with {codec.name} ({codec.parameters / 1e6:.1f}M parameters)")


if __name__ == "__main__":
    main()
