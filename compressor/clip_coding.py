"""A clip's frames as records: each frame's symbols coded the shortest way its kind allows. numpy only.

    keyframe (frame index a multiple of K):   raw bits | per-channel table        (kind 0 | 1)
    other frames:                             the same, decoded without the previous frame

Kinds 2 (context) and 3 (temporal) are reserved in `compressor.clip` for `compressor.context_model`.
"""
from __future__ import annotations

import numpy as np

from compressor import entropy_coder
from compressor.clip import CHANNEL, KIND_NAMES, RAW, ClipError


def encode_frame(symbols: np.ndarray, cdf: np.ndarray) -> tuple[int, bytes]:
    """uint8 symbols (C, h, w) -> (kind, payload): the per-channel code, or the raw bits where that is
    not shorter (so a frame never costs more than its raw bits)."""
    coded = entropy_coder.encode(symbols, cdf)
    if len(coded) < entropy_coder.raw_size(symbols.size):
        return CHANNEL, coded
    return RAW, entropy_coder.pack_raw(symbols)


def decode_frame(kind: int, payload: bytes, cdf: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(kind, payload) -> uint8 symbols (C, h, w); ClipError for a kind this library cannot decode."""
    if kind == RAW:
        return entropy_coder.unpack_raw(payload, shape)
    if kind == CHANNEL:
        return entropy_coder.decode(payload, cdf, shape)
    raise ClipError(f"record kind {KIND_NAMES.get(kind, kind)} is not supported by this version")
