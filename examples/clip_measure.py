"""Measure a clip archive's random access and the tokens -> frames -> tokens round trip of a video.

    python examples/driving_clip.py --frames 1200 --fps 20 --out /tmp/drive1200.mp4
    compress /tmp/drive1200.mp4 /tmp/drive1200.bin
    python examples/clip_measure.py --video /tmp/drive1200.mp4 --archive /tmp/drive1200.bin

Random access: open the archive, read its index, seek to one frame's keyframe, decode the records up to
the frame and the frame itself through the network; the median over random frames, model already loaded.
Token windows: random runs of 1, 16 and 64 frames' tokens read with `compressor.open_clip` (no network).
Round trip: the share of token bits that come back when decoded frames are encoded again.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import compressor
from compressor.clip import ClipReader
from compressor.archive import coding_for
from compressor.clip_coding import clip_symbols
from compressor.frames import expand_inputs, iter_frames


def access(codec, path: str, i: int) -> tuple[np.ndarray, float]:
    """Frame i of the archive, and the seconds spent before the network (opening, index, records)."""
    start = time.perf_counter()
    with open(path, "rb") as f:
        reader = ClipReader(f)
        h = reader.header
        shape = (codec.model.latent_channels, *codec.model.latent_grid(h.height, h.width))
        tables, net = coding_for(codec, h.model_id)  # the coding the archive's writer had, as decompress reads it
        [(_, symbols)] = clip_symbols(reader, codec._cdf, shape, tables, net, i, i + 1)  # as decompress reads
        if not isinstance(symbols, np.ndarray):
            raise symbols  # a damaged frame
    records = time.perf_counter() - start
    return codec.frames_from_symbols(symbols[None], (h.height, h.width))[0], records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", required=True)
    p.add_argument("--archive", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--roundtrip-frames", type=int, default=256)
    p.add_argument("--worst-repeats", type=int, default=50, help="runs of the slowest frame")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = compressor.load(args.model)
    with open(args.archive, "rb") as f:
        n = len(ClipReader(f))
    rng = np.random.default_rng(0)
    access(codec, args.archive, 0)  # warm-up
    times, record_times = [], []
    for i in rng.integers(0, n, args.samples):
        start = time.perf_counter()
        record_times.append(access(codec, args.archive, int(i))[1])
        times.append(time.perf_counter() - start)
    times_ms, records_ms = np.array(times) * 1000, np.array(record_times) * 1000
    print(f"random access, {n}-frame archive: median {np.median(times_ms):.1f} ms, max {times_ms.max():.1f} ms "
          f"(of which opening and records: median {np.median(records_ms):.1f}, max {records_ms.max():.1f} ms) "
          f"over {args.samples} random frames (model loaded, "
          f"decode_precision {codec.decode_precision}, {torch.get_num_threads()} thread(s))")
    # The slowest frame by construction: the one with the longest chain of records back to one coded
    # alone, timed again and again (a single random sample's max also catches the machine's hiccups).
    with open(args.archive, "rb") as f:
        reader = ClipReader(f)
        worst = max(range(n), key=lambda i: i - reader.keyframe_at_or_before(i))
        chain = worst - reader.keyframe_at_or_before(worst) + 1
    slow = []
    for _ in range(args.worst_repeats):
        start = time.perf_counter()
        access(codec, args.archive, worst)
        slow.append(time.perf_counter() - start)
    slow_ms = np.array(slow) * 1000
    print(f"slowest frame ({worst}, {chain} records to decode): median {np.median(slow_ms):.1f} ms, "
          f"90th percentile {np.percentile(slow_ms, 90):.1f} ms over {args.worst_repeats} runs")
    with compressor.open_clip(args.archive, model=args.model) as clip:  # tokens alone, as a data loader reads them
        for w in (1, 16, 64):
            took = []
            for a in rng.integers(0, len(clip) - w + 1, args.samples):
                start = time.perf_counter()
                clip[int(a) : int(a) + w]
                took.append(time.perf_counter() - start)
            took_ms = np.array(took) * 1000
            print(f"tokens of {w} frame(s) from a random place (compressor.open_clip, no network): median "
                  f"{np.median(took_ms):.1f} ms, max {took_ms.max():.1f} ms over {args.samples}")

    frames = []
    for _, frame in iter_frames(expand_inputs([args.video]), (128, 256)):
        frames.append(frame)
        if len(frames) == args.roundtrip_frames:
            break
    frames = np.stack(frames)
    tokens = codec.tokens(frames)
    again = codec.tokens(codec.from_tokens(tokens))
    bits = lambda t: np.unpackbits(np.ascontiguousarray(t, "<u2").view(np.uint8))  # noqa: E731
    same_bits = (bits(tokens) == bits(again)).mean()
    print(f"tokens -> frames -> tokens over {len(frames)} frames: {100 * same_bits:.2f}% of bits and "
          f"{100 * (tokens == again).mean():.1f}% of whole tokens come back")


if __name__ == "__main__":
    main()
