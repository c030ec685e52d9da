"""Entropy coder speed alone: encode and decode microseconds per 128x256 frame, per-channel vs context tables vs context net.

    python examples/coder_speed.py CHECKPOINT [FOLDER] [--repeats 5]

Codes the checkpoint's symbols of the folder's frames (default `../shared/data/eval/kodak-frames-128x256`)
one frame at a time in this process (numpy and constriction only; no network runs while timing) and
prints the median over repeats of the mean time per frame. The batch row decodes all frames in one
`decode_many` call, as `Codec.decode_batch` does; the temporal row codes each frame given the one
before it in the folder's order.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import compressor
from compressor import context_model, context_net, entropy_coder
from compressor.context_fit import load_frames
from compressor.training.data import find_images

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "eval" / "kodak-frames-128x256"


def per_frame_us(fn, items, repeats: int) -> float:
    fn(items[0])  # warm-up: caches, imports
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - t) / len(items) * 1e6)
    return statistics.median(runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    codec = compressor.load(args.checkpoint)
    tables, cdf = codec._tables, codec._cdf
    if tables is None:
        raise SystemExit(f"{args.checkpoint} has no context tables (run compressor fit-context)")
    symbols = [codec.encode_symbols(a) for a in load_frames(find_images([args.folder]))]
    shape = symbols[0].shape
    pairs = list(zip(symbols[:-1], symbols[1:]))
    rows = {
        "per-channel (v1)": (lambda s: entropy_coder.encode(s, cdf), lambda b: entropy_coder.decode(b, cdf, shape),
                             symbols),
        "context, spatial (v2)": (lambda s: context_model.encode(s, tables),
                                  lambda b: context_model.decode(b, tables, shape), symbols),
    }
    for name, (enc, dec, items) in rows.items():
        payloads = [enc(s) for s in items]
        print(f"{name:24} encode {per_frame_us(enc, items, args.repeats):7.0f} us/frame, "
              f"decode {per_frame_us(dec, payloads, args.repeats):7.0f} us/frame")
    spatial = [context_model.encode(s, tables) for s in symbols]
    many_us = per_frame_us(lambda _: context_model.decode_many(spatial, tables, shape), [None], args.repeats) / len(spatial)
    print(f"{'context, spatial, batch':24} decode {many_us:7.0f} us/frame ({len(spatial)} frames a call: decode_many)")
    net = codec._net
    if net is not None:
        enc = lambda s: context_net.encode(s, net)  # noqa: E731
        coded = [enc(s) for s in symbols]
        print(f"{'context net (v3)':24} encode {per_frame_us(enc, symbols, args.repeats):7.0f} us/frame, decode "
              f"{per_frame_us(lambda b: context_net.decode(b, net, shape), coded, args.repeats):7.0f} us/frame")
        many_us = per_frame_us(lambda _: context_net.decode_many(coded, net, shape), [None], args.repeats) / len(coded)
        print(f"{'context net, batch':24} decode {many_us:7.0f} us/frame ({len(coded)} frames a call: decode_many)")
    payloads = [(context_model.encode(cur, tables, prev=prev), prev) for prev, cur in pairs]
    enc_us = per_frame_us(lambda pc: context_model.encode(pc[1], tables, prev=pc[0]), pairs, args.repeats)
    dec_us = per_frame_us(lambda bp: context_model.decode(bp[0], tables, shape, prev=bp[1]), payloads, args.repeats)
    print(f"{'context, temporal':24} encode {enc_us:7.0f} us/frame, decode {dec_us:7.0f} us/frame")
    print(f"({len(symbols)} frames of {shape}, {args.repeats} repeats, one thread of this process)")


if __name__ == "__main__":
    main()
