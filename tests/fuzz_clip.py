"""Long fuzz run of clip archive decoding against mutated archives (as `fuzz_decode.py` fuzzes .bin files).

    python tests/fuzz_clip.py --iterations 20000 [--memory-mb 4096] [--seed 0]

Runs under a hard address-space limit (RLIMIT_AS). Every mutated archive must either be refused with a
CompressorError when opened, or open and give, frame by frame, symbols of the header's shape or a
CompressorError for that frame, and `clip_coding.clip_symbols` (what `decompress` and `compressor tokens`
read, records coded alone decoded together) must give the same frames and the same failures; anything
else is a crash, and a file taking over a second a hang. Half
the inputs are damaged at the byte level (header, records, index, trailer alike); the other half are
rebuilt with valid checks around damaged record kinds and payloads, so the damage reaches the entropy
decoders (per-channel, context and temporal) instead of stopping at a CRC. The network is left out:
`fuzz_decode.py` covers it, and a clip hands it only symbols of the checked shape.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compressor import clip, context_net  # noqa: E402
from compressor.clip_coding import clip_symbols, decode_frame, encode_frame  # noqa: E402
from compressor.errors import CompressorError  # noqa: E402
from tests.fuzz_decode import mutate, tally  # noqa: E402

SHAPE = (14, 8, 16)
MAX_FRAMES_READ = 64


def build(records, interval: int = 4) -> bytes:
    f = io.BytesIO()
    w = clip.ClipWriter(f, clip.ClipHeader(0x1234, 128, 256, 20.0, interval))
    for kind, payload in records:
        w.add(kind, payload)
    w.close()
    return f.getvalue()


def seed_records(cdf, tables, frames: int = 12, net=None) -> list[tuple[int, bytes]]:
    """Records of a short clip of slowly changing symbols: raw, per-channel, context and temporal kinds,
    and with a context net, a net record of every frame too."""
    rng = np.random.default_rng(0)
    s = (rng.random(SHAPE) < 0.3).astype(np.uint8)
    records, prev = [], None
    for i in range(frames):
        s = s ^ (rng.random(SHAPE) < 0.05).astype(np.uint8)
        records.append(encode_frame(s, cdf, tables, None if i % 4 == 0 else prev))
        if net is not None:
            records.append((clip.NET, context_net.encode(s, net)))  # s again: the next temporal record still follows s
        prev = s
    records.append((clip.RAW, np.packbits(s.reshape(-1)).tobytes()))
    return records


def one_input(data: bytes, cdf, tables, net=None) -> str:
    try:
        reader = clip.ClipReader(io.BytesIO(data))
    except CompressorError:
        return "rejected"
    prev, one_by_one = None, []
    stop = min(len(reader), MAX_FRAMES_READ)
    for i in range(stop):
        try:
            prev = decode_frame(*reader.record(i), cdf, SHAPE, tables, prev, net)
        except CompressorError:
            prev = None
        one_by_one.append(prev)
        if prev is not None and (prev.shape != SHAPE or prev.dtype != np.uint8 or prev.max() > 1):
            raise AssertionError(f"frame {i} decoded to {prev.dtype} {prev.shape}")
    # what decompress and tokens read: records coded alone decoded together, then the temporal ones
    for i, s in clip_symbols(reader, cdf, SHAPE, tables, net, 0, stop):
        want = one_by_one[i]
        if isinstance(s, np.ndarray) != (want is not None) or (want is not None and not np.array_equal(s, want)):
            raise AssertionError(f"frame {i}: clip_symbols disagrees with decoding frame by frame")
    return "opened"


def mutate_records(records, rng) -> list[tuple[int, bytes]]:
    out = list(records)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, len(out)))
        kind, payload = out[i]
        if rng.random() < 0.2:
            kind = int(rng.integers(0, 5)) % 4
        out[i] = (kind, mutate(payload, rng)[: clip.MAX_RECORD - clip.RECORD_HEADER_SIZE])
    return out


def run(cdf, tables, iterations: int, seed: int, hang_s: float = 1.0, net=None) -> dict:
    rng = np.random.default_rng(seed)
    records = seed_records(cdf, tables, net=net)
    original = build(records)
    counts = {"opened": 0, "rejected": 0, "crashes": 0, "hangs": 0}
    examples, slowest = [], 0.0
    for _ in range(iterations):
        data = mutate(original, rng) if rng.random() < 0.5 else build(mutate_records(records, rng))
        slowest = max(slowest, tally(counts, examples, lambda d: one_input(d, cdf, tables, net), data, hang_s))
    return {**counts, "iterations": iterations, "slowest_s": round(slowest, 4), "crash_examples": examples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=20_000)
    p.add_argument("--memory-mb", type=int, default=4096, help="hard address-space limit")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    from tests.conftest import fitted_net, fitted_tables

    from compressor.context_model import Tables
    from compressor.context_net import ContextNet

    cdf = np.array([[0, 30000, 65536]] * 14, np.int32)
    tables = Tables(fitted_tables())  # converted once, as a Codec holds them
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t = time.time()
    result = run(cdf, tables, args.iterations, args.seed, net=ContextNet(fitted_net()))
    result.update(memory_limit_mb=args.memory_mb, wall_s=round(time.time() - t, 1))
    print(json.dumps(result, indent=1))
    sys.exit(1 if result["crashes"] or result["hangs"] else 0)


if __name__ == "__main__":
    main()
