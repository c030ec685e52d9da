"""Tokens: a frame's binary latent as one 14-bit integer per latent cell, and the .npy token files.

    symbols (N, C, h, w) in {0, 1}  ->  tokens (N, h, w) uint16,  token = sum over k of symbols[k] << k

Bit k of a token (value 2**k) is latent channel k, so a 128x256 frame is 8 x 16 tokens below 2**14,
in row-major order over the 16x16-pixel grid (token [i, j] covers rows 16i..16i+15, columns 16j..16j+15).
Pure numpy, no torch: a world model's data loader can read and unpack tokens without the codec.

A token file is a plain .npy array (N, h, w) uint16 (read with `np.load(path)`, never pickled) and a
JSON sidecar beside it (`tokens.npy` -> `tokens.json`) naming the model that made it, the frame size,
the fps and the sources.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from compressor.errors import TokenFileError

SIDECAR_FORMAT = "compressor-tokens"
SIDECAR_VERSION = 1
MAX_FPS = 1000.0  # a frame rate video writers and the clip header hold
MIN_FPS = 0.001  # the clip header counts thousandths of a frame a second: less would read back as no rate


def tokens_from_symbols(symbols: np.ndarray) -> np.ndarray:
    """uint8 symbols (N, C, h, w) in {0, 1} -> uint16 tokens (N, h, w), bit k = channel k (C <= 16)."""
    n, channels, h, w = symbols.shape
    if channels > 16:
        raise ValueError(f"{channels} channels do not fit a 16-bit token")
    weights = (np.uint16(1) << np.arange(channels, dtype=np.uint16))[None, :, None, None]  # (1, C, 1, 1)
    return (symbols.astype(np.uint16) * weights).sum(axis=1, dtype=np.uint16)  # (N, h, w)


def check_symbols(symbols, channels: int) -> np.ndarray:
    """Symbols as decoders take them: an array (N, channels, h, w) of 0s and 1s (any real dtype), else TokenFileError."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 4 or symbols.shape[1] != channels or 0 in symbols.shape[2:]:
        raise TokenFileError(f"symbols must be an array (N, {channels}, h, w); got shape {symbols.shape}")
    if symbols.dtype.kind not in "biuf" or not np.isin(symbols, (0, 1)).all():  # floats of exact 0s and 1s are fine
        raise TokenFileError(f"symbols must be 0 or 1 (an array of {symbols.dtype} with other values given)")
    return symbols


def symbols_from_tokens(tokens: np.ndarray, channels: int) -> np.ndarray:
    """uint16 tokens (N, h, w) -> uint8 symbols (N, C, h, w); refuses values of more than `channels` bits."""
    tokens = checked_tokens(tokens, channels)
    shifts = np.arange(channels, dtype=np.uint16)[None, :, None, None]  # (1, C, 1, 1)
    return ((tokens.astype(np.uint16)[:, None] >> shifts) & 1).astype(np.uint8)  # (N, C, h, w)


def checked_tokens(tokens, channels: int) -> np.ndarray:
    """Tokens (N, h, w) as an array, TokenFileError unless they are integers of at most `channels` bits."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 3:
        raise TokenFileError(f"tokens must be an array (N, h, w); got shape {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise TokenFileError(f"tokens must be integers; got {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 1 << channels):
        raise TokenFileError(f"token values must lie in 0..{(1 << channels) - 1} ({channels} bits); "
                             f"got {tokens.min()}..{tokens.max()}")
    return tokens


def check_token_range(tokens: np.ndarray, bits: int, what: str, first: int = 0, every: int = 1) -> None:
    """TokenFileError naming the frame when a uint16 token of (N, h, w) holds more than `bits` bits; frame
    i of the array is frame `first + i * every` of `what`."""
    over = (tokens >> bits).any(axis=(1, 2))  # (N,)
    if over.any():
        i = int(np.argmax(over))
        raise TokenFileError(f"{what}: frame {first + i * every} holds {int(tokens[i].max())}, more than {bits} bits")


def sidecar_path(tokens_path: str | Path) -> Path:
    """`tokens.npy` -> `tokens.json`."""
    return Path(tokens_path).with_suffix(".json")


def sidecar(*, model_id: int, model: str, frame_size: tuple[int, int], grid: tuple[int, int], channels: int,
            frames: int, fps: float | None, sources: list[dict]) -> dict:
    """The JSON sidecar of a token file."""
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "model_id": f"{model_id:04x}",
        "model": model,
        "frame_size": list(frame_size),
        "token_grid": list(grid),
        "bits": channels,
        "bit_order": "bit k (value 2**k) is latent channel k",
        "frames": frames,
        "fps": fps,
        "sources": sources,
    }


def read_token_file(path: str | Path) -> tuple[np.ndarray, dict]:
    """A token file and its sidecar -> (tokens (N, h, w) uint16, memory-mapped; sidecar dict), checked."""
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(f"token file not found: {path}")
    meta_path = sidecar_path(path)
    if not meta_path.is_file():
        raise TokenFileError(f"no sidecar {meta_path} beside {path} (it names the model that made the tokens)")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise TokenFileError(f"{meta_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        raise TokenFileError(f"{meta_path} is not a compressor token sidecar")
    if "model_id" not in meta or "frame_size" not in meta:
        raise TokenFileError(f"{meta_path} lacks a model_id or frame_size")
    model_id, size = meta["model_id"], meta["frame_size"]
    if not (isinstance(model_id, str) and re.fullmatch(r"[0-9a-fA-F]{1,4}", model_id)):
        raise TokenFileError(f"{meta_path} gives model_id {model_id!r}; it must be 1-4 hex digits, as written")
    meta["model_id_int"] = int(model_id, 16)
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise TokenFileError(f"{meta_path} gives frame_size {size!r}; it must be two whole numbers above 0")
    try:
        tokens = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise TokenFileError(f"cannot read {path} as a .npy array: {e}") from None
    if tokens.dtype != np.uint16 or tokens.ndim != 3:
        raise TokenFileError(f"{path} holds {tokens.dtype} {tokens.shape}, not uint16 tokens (N, h, w)")
    if meta.get("frames") is not None and (isinstance(meta["frames"], bool) or not isinstance(meta["frames"], int)):
        raise TokenFileError(f"{meta_path} gives frames {meta['frames']!r}; it must be a whole number")
    if meta.get("frames") not in (None, tokens.shape[0]):
        raise TokenFileError(f"{path} holds {tokens.shape[0]} frames but its sidecar says {meta['frames']}")
    fps = meta.get("fps")
    if fps is not None and (isinstance(fps, bool) or not (isinstance(fps, (int, float)) and MIN_FPS <= fps <= MAX_FPS)):
        raise TokenFileError(f"{meta_path} gives fps {fps!r}; it must be a number from {MIN_FPS:g} to {MAX_FPS:g}, or null")
    return tokens, meta


class TokenWriter:
    """Streams token batches into a .npy file with flat memory: the batches go to a scratch file beside
    the output, and `finish` writes the .npy header and copies them behind it."""

    def __init__(self, scratch: Path, grid: tuple[int, int]):
        self.scratch = Path(scratch)
        self.grid = tuple(grid)
        self.frames = 0
        self._f = open(self.scratch, "wb")

    def write(self, tokens: np.ndarray) -> None:
        if tokens.shape[1:] != self.grid:
            raise ValueError(f"token batch of grid {tokens.shape[1:]} in a file of grid {self.grid}")
        self._f.write(np.ascontiguousarray(tokens, dtype="<u2").tobytes())
        self.frames += len(tokens)

    def finish(self, out: str | Path) -> None:
        """Write the .npy (header + data) to the path `out`."""
        self._f.close()
        header = {"descr": "<u2", "fortran_order": False, "shape": (self.frames, *self.grid)}
        with open(out, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            with open(self.scratch, "rb") as src:
                while chunk := src.read(1 << 20):
                    f.write(chunk)

    def close(self) -> None:
        self._f.close()
        self.scratch.unlink(missing_ok=True)

