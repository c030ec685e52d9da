"""Make a test clip of driving frames: consecutive frames of the project's driving sequences, resized to
the 128x256 frame (Lanczos cover, centre crop), H.264 at a given frame rate, looped to the length asked.

    python examples/driving_clip.py --frames 1200 --fps 20 --out /tmp/drive1200.mp4

The sequences (Sully Chen, CamVid, Cityscapes, Udacity under ../shared/data/train/driving) are taken in
name order, so the clip is a series of drives with cuts between them, as a dashcam archive would be.
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from compressor.images import cover_frame

DRIVING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "driving"
SEQUENCES = ("sullychen_", "camvid_0016E5", "camvid_0006R0", "cityscapes_seq", "udacity_")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=1200)
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=str(DRIVING))
    args = p.parse_args()
    files = [f for prefix in SEQUENCES for f in sorted(Path(args.data).glob(prefix + "*.jpg"))]
    if not files:
        raise SystemExit(f"no driving frames under {args.data}")
    cache: dict[Path, np.ndarray] = {}
    with av.open(args.out, "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(args.fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = 256, 128, "yuv420p"
        stream.options = {"crf": "16"}
        for i in range(args.frames):
            path = files[i % len(files)]
            if path not in cache:
                with Image.open(path) as im:
                    cache[path] = np.asarray(cover_frame(im.convert("RGB"), (128, 256)))
            frame = av.VideoFrame.from_ndarray(cache[path], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    print(f"wrote {args.out}: {args.frames} frames of 128x256 at {args.fps} fps from {len(files)} driving frames")


if __name__ == "__main__":
    main()
