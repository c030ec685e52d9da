"""Long fuzz run of `decode` against mutated .bin files and random bytes (design.md: fuzzing).

    python tests/fuzz_decode.py --iterations 100000 [--model vit] [--memory-mb 4096] [--seed 0]

Runs under a hard address-space limit (RLIMIT_AS), since Python's allocation tracer cannot see native
allocations. Every input must either decode to an image of the size its header claims or raise a
CompressorError; anything else is a crash. Inputs taking over a second count as hangs (the CI test
allows more: a busy machine can slow an honest decode of a large claimed size past one second). Half
the mutated files get their check byte recomputed, so the damage reaches the entropy decoder and the
network instead of stopping at the CRC.
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compressor import bitstream  # noqa: E402
from compressor.errors import CompressorError  # noqa: E402


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits: bit flips, byte sets, truncation, extension, deletion, duplication."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        if op == 0 and buf:
            buf[int(rng.integers(0, len(buf)))] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and buf:
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
        elif op == 2:
            del buf[int(rng.integers(0, len(buf) + 1)):]
        elif op == 3:
            buf += rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
        elif op == 4 and buf:
            i = int(rng.integers(0, len(buf)))
            del buf[i : i + int(rng.integers(1, 16))]
        elif op == 5 and buf:
            i = int(rng.integers(0, len(buf)))
            buf[i:i] = buf[i : i + int(rng.integers(1, 16))]
    return bytes(buf)


def fix_check(data: bytes) -> bytes:
    """Recompute the CRC-8 byte of a (possibly damaged) file so the payload decoder sees the damage."""
    if len(data) < 2 or data[0] != bitstream.MAGIC:
        return data
    header_len = (5 if data[1] >> 4 == bitstream.VERSION_STANDARD
                  else 5 + (4 if data[1] & bitstream.FLAG_LONG_SIZE else 3))
    if len(data) < header_len:
        return data
    body, payload = data[: header_len - 1], data[header_len:]
    return body + bytes([bitstream.crc8(body + payload)]) + payload


def one_input(codec, data: bytes) -> str:
    try:
        header, _ = bitstream.unpack(data)
        image = codec.decode(data)
    except CompressorError:
        return "rejected"
    if image.size != (header.width, header.height):
        raise AssertionError(f"decoded {image.size}, header says {header.width}x{header.height}")
    return "decoded"


def tally(counts: dict, examples: list, decode, data: bytes, hang_s: float) -> float:
    """Count `decode(data)`'s outcome in `counts` (its return value, a crash: any exception that is not a
    CompressorError reaching here, kept in `examples`, or a hang: slower than `hang_s`); returns seconds."""
    t = time.perf_counter()
    try:
        counts[decode(data)] += 1
    except Exception as e:  # anything that is not a CompressorError is a crash
        counts["crashes"] += 1
        if len(examples) < 5:
            examples.append({"input": data.hex(), "error": repr(e)})
    dt = time.perf_counter() - t
    counts["hangs"] += int(dt > hang_s)
    return dt


def run(codec, seeds: list[bytes], iterations: int, seed: int, hang_s: float = 1.0) -> dict:
    """Decode `iterations` random and mutated inputs; an input slower than `hang_s` counts as a hang."""
    rng = np.random.default_rng(seed)
    counts = {"decoded": 0, "rejected": 0, "crashes": 0, "hangs": 0}
    slowest = 0.0
    examples = []
    for i in range(iterations):
        kind = int(rng.integers(0, 4))
        if kind == 0:
            data = rng.integers(0, 256, int(rng.integers(0, 400))).astype(np.uint8).tobytes()
        else:
            data = mutate(seeds[int(rng.integers(0, len(seeds)))], rng)
            if kind >= 2:
                data = fix_check(data)
        slowest = max(slowest, tally(counts, examples, lambda d: one_input(codec, d), data, hang_s))
    return {**counts, "iterations": iterations, "slowest_s": round(slowest, 4), "crash_examples": examples}


def seed_files(codec) -> list[bytes]:
    """Valid files to mutate: random images of several sizes and, where the checkpoint has context
    tables (and a context net), context-table (and context-net) files of structured latents, 128x256 ones
    in both header forms (versions 2-3 and 4), each coded both ways whichever is shorter (random images
    rarely win with the context coders)."""
    from compressor import bitstream, context_model, context_net

    rng = np.random.default_rng(0)
    sizes = [(128, 256), (16, 16), (1, 1), (37, 300), (5000, 2)]
    files = [codec.encode(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in sizes]
    if codec.card.context_tables is not None:
        from tests.conftest import structured_symbols

        for seed, size in enumerate([(128, 256), (64, 64), (512, 768)]):
            grid = codec.model.latent_grid(*size)
            symbols = structured_symbols(seed, (codec.model.latent_channels, *grid))
            tiling = codec._tiling_for(*size)
            coders = [("context", lambda s: context_model.encode(s, codec._tables))]
            if codec._net is not None:
                coders.append(("net", lambda s: context_net.encode(s, codec._net)))
            forms = [False, True] if size == bitstream.STANDARD_FRAME and tiling is None else [False]
            for (kind, encode), standard in itertools.product(coders, forms):  # 128x256: versions 2-3 and 4
                header = bitstream.Header(codec.model_id, *size, raw=False, tiled=tiling is not None,
                                          overlap=tiling is not None and tiling.overlap, standard=standard,
                                          **{kind: True})
                files.append(bitstream.pack(header, encode(symbols)))
    return files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=100_000)
    p.add_argument("--model", default=None, help="checkpoint to fuzz with (default: a tiny untrained model with "
                                                 "context tables and a context net: versions 1 to 4)")
    p.add_argument("--memory-mb", type=int, default=4096, help="hard address-space limit")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    import compressor

    torch.set_num_threads(1)
    if args.model:
        codec = compressor.load(args.model)
    else:
        import tempfile

        from tests.conftest import make_net_release

        codec = compressor.load(make_net_release(Path(tempfile.mkdtemp()) / "fuzz.safetensors"))
    seeds = seed_files(codec)
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t = time.time()
    result = run(codec, seeds, args.iterations, args.seed)
    result.update(model=codec.name, memory_limit_mb=args.memory_mb, wall_s=round(time.time() - t, 1))
    print(json.dumps(result, indent=1))
    sys.exit(1 if result["crashes"] or result["hangs"] else 0)


if __name__ == "__main__":
    main()
