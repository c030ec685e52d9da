"""Entropy coding of binary symbols with the frozen per-channel tables: numpy in, bytes out, no torch.

The coder is constriction's ANS (Rust, memory-safe: garbage input yields an error or garbage symbols,
never an out-of-bounds read or a hang). Each channel's probability comes from the checkpoint's
16-bit integer table, so encoder and decoder use bit-identical models on every machine.

Symbols of one image are coded channel after channel, each channel's cells in row-major order.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from compressor.errors import BitstreamError

CDF_TOTAL = 1 << 16


@lru_cache(maxsize=16)
def _models(cdf_bytes: bytes):
    import constriction

    cdf = np.frombuffer(cdf_bytes, dtype=np.int32).reshape(-1, 3)
    p_one = (CDF_TOTAL - cdf[:, 1]).astype(np.float64) / CDF_TOTAL
    return [constriction.stream.model.Bernoulli(float(p), perfect=False) for p in p_one]


def payload_of(coder) -> bytes:
    """An ANS coder's compressed words as a payload: little-endian uint32s, trailing zero bytes dropped
    (they carry no information: `coder_of` pads them back). Every ANS payload of every version has this form."""
    return coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def coder_of(payload: bytes):
    """A payload (`payload_of`) -> an ANS coder ready to decode it; constriction may refuse damaged data."""
    import constriction

    words = np.frombuffer(bytes(payload) + b"\0" * (-len(payload) % 4), dtype="<u4").astype(np.uint32)
    return constriction.stream.stack.AnsCoder(words)


def raw_size(num_symbols: int) -> int:
    """Bytes of the raw-bits payload: one bit per symbol."""
    return -(-num_symbols // 8)


def pack_raw(symbols: np.ndarray) -> bytes:
    """uint8 {0, 1} symbols (C, h, w) -> one bit per symbol, MSB first."""
    return np.packbits(symbols.reshape(-1)).tobytes()


def unpack_raw(payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if len(payload) != raw_size(n):
        raise BitstreamError(f"raw payload has {len(payload)} bytes, expected {raw_size(n)} (truncated file?)")
    return np.unpackbits(np.frombuffer(payload, np.uint8), count=n).reshape(shape)


def encode(symbols: np.ndarray, cdf: np.ndarray) -> bytes:
    """uint8 {0, 1} symbols (C, h, w) -> ANS-coded bytes under the per-channel tables `cdf` (C, 3)."""
    import constriction

    models = _models(np.ascontiguousarray(cdf, dtype=np.int32).tobytes())
    flat = symbols.reshape(symbols.shape[0], -1).astype(np.int32)  # (C, h*w)
    coder = constriction.stream.stack.AnsCoder()
    # ANS is a stack: push the last channel first so the decoder pops channel 0 first.
    for c in reversed(range(flat.shape[0])):
        coder.encode_reverse(flat[c], models[c])
    return payload_of(coder)


def decode(payload: bytes, cdf: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """ANS-coded bytes -> uint8 symbols (C, h, w); BitstreamError if the payload does not decode exactly."""
    models = _models(np.ascontiguousarray(cdf, dtype=np.int32).tobytes())
    channels, h, w = shape
    out = np.empty((channels, h * w), np.uint8)
    try:
        coder = coder_of(payload)
        for c in range(channels):
            out[c] = coder.decode(models[c], h * w)
        exact = coder.is_empty()
    except Exception as e:  # constriction reports invalid data as ValueError/AssertionError/etc.
        raise BitstreamError(f"damaged payload: the entropy decoder failed ({e})") from None
    if not exact:
        raise BitstreamError("damaged payload: data left over after the last symbol")
    return out.reshape(channels, h, w)
