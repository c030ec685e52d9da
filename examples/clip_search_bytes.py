"""Bytes a frame and PSNR of clip archives written by `compress` plain and with its --flips search.

    python examples/clip_search_bytes.py INPUT... [--model M] [--keyframe-interval 10] \
        [--search "" "--flips 3" "--flips 3 --rate-weight 1.6e-5"]

Each INPUT (a video, or a folder of frames) is compressed once per search setting with the CLI itself,
decoded with `decompress`, and scored against its own frames as `compress` resized them (128x256).
Prints one row per setting: archive bytes a frame (headers, records and index counted), mean PSNR, and
the encoding time.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from compressor.cli import compress_main, decompress_main
from compressor.frames import expand_inputs, iter_frames
from compressor.metrics import psnr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+")
    p.add_argument("--model", default=None)
    p.add_argument("--keyframe-interval", default="10")
    p.add_argument("--search", nargs="+", default=["", "--flips 3", "--flips 3 --rate-weight 1.6e-5"])
    args = p.parse_args()
    model = ["--model", args.model] if args.model else []
    print("| search | bytes a frame | PSNR | encoding |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for search in args.search:
            total_bytes = total_frames = seconds = 0.0
            scores = []
            for k, src in enumerate(args.inputs):
                archive, out = Path(tmp) / f"{k}.bin", Path(tmp) / f"{k}-frames"
                start = time.perf_counter()
                argv = [src, str(archive), *model, "--keyframe-interval", args.keyframe_interval, "-q"]
                if compress_main(argv + shlex.split(search)) != 0:
                    raise SystemExit(f"compress failed on {src}")
                seconds += time.perf_counter() - start
                if decompress_main([str(archive), str(out), *model, "-q"]) != 0:
                    raise SystemExit(f"decompress failed on {archive}")
                originals = [f for _, f in iter_frames(expand_inputs([src]), (128, 256))]
                decoded = [f for _, f in iter_frames(expand_inputs([str(out)]), None)]
                scores += [psnr(a, b) for a, b in zip(originals, decoded, strict=True)]
                total_bytes += archive.stat().st_size
                total_frames += len(originals)
                archive.unlink()
                shutil.rmtree(out)
            print(f"| {search or 'plain'} | {total_bytes / total_frames:.1f} B | {np.mean(scores):.3f} dB | "
                  f"{total_frames / seconds:.1f} frames/s |", flush=True)


if __name__ == "__main__":
    main()
