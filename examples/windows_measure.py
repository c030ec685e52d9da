"""Measure how fast `compressor.token_windows` feeds a world model: random windows through a DataLoader.

    python examples/driving_clip.py --frames 1200 --fps 20 --out /tmp/drive1200.mp4
    compress /tmp/drive1200.mp4 /tmp/d1200.bin
    python examples/windows_measure.py /tmp/d1200.bin --length 16 --workers 0 2

Each run draws `--batches` batches of `--batch` windows at random places (after one warm-up batch) and
prints windows and frames a second, with the peak resident memory of this process. Sources are clip
archives, token files or folders of them, as `compressor.token_windows` takes them.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

import compressor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="+")
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--workers", type=int, nargs="+", default=[0])
    p.add_argument("--model", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)  # the windows need no network; a trainer's threads are its own
    windows = compressor.token_windows(args.sources, args.length, stride=args.stride, every=args.every, model=args.model)
    print(windows)
    for workers in args.workers:
        draws = torch.utils.data.RandomSampler(windows, replacement=True, num_samples=(args.batches + 1) * args.batch,
                                               generator=torch.Generator().manual_seed(0))  # random places, any count
        loader = torch.utils.data.DataLoader(windows, batch_size=args.batch, sampler=draws, num_workers=workers)
        batches = iter(loader)
        next(batches)  # warm-up: workers started, first archives opened
        start, n = time.perf_counter(), 0
        for _ in range(args.batches):
            n += len(next(batches))
        seconds = time.perf_counter() - start
        del batches
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process (importing torch forks one too)
        print(f"{workers} worker(s): {n / seconds:.0f} windows/s ({n * args.length / seconds:.0f} frames/s), "
              f"{n} windows of {args.length} in {seconds:.2f} s; peak RSS of this process {rss:.0f} MB")


if __name__ == "__main__":
    main()
