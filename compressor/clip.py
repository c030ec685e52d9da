"""The clip archive: a whole video's frames in one file, written in one pass, read at any frame. Pure
bytes in, bytes out, no torch.

    header      24 bytes, big-endian
      0   4     magic b"CCLP" (a .bin starts with 0xCF, so the two never mix)
      4   1     format version (1)
      5   1     flags (none yet: 0)
      6   2     model id (as in a .bin: first 16 bits of the SHA-256 of the writer's weights)
      8   2     frame height H (1..65535)
      10  2     frame width W (1..65535)
      12  4     frames per second x 1000 (0: not known)
      16  4     frame count N (written last: the writer seeks back to fill it in)
      20  2     keyframe interval K: frames 0, K, 2K, ... are coded without the previous frame
      22  2     CRC-16/CCITT-FALSE of bytes 0..21
    records     N, one per frame, in order
      0   1     kind: 0 raw symbol bits, 1 per-channel table, 2 context table, 3 temporal table
                (2 and 3 are `compressor.context_model`'s; 3 also reads the previous frame's symbols)
      1   2     CRC-16/CCITT-FALSE of the frame number (4 bytes), the kind and the payload
      3   ...   payload
    index       N x 2 bytes: each record's length in bytes (3 + payload)
    trailer     12 bytes: N (4), CRC-32 of the index and N (4), magic b"CCLE" (4)

The index sits at the end so a writer never holds more than one frame; a reader takes the header, the
trailer and the index (2 bytes a frame), then seeks straight to a record. A record's check includes its
frame number, so a record that is damaged, or read at the wrong place, is named and skipped, and only
that frame (with temporal coding, also the frames after it up to the next keyframe) is lost.
"""
from __future__ import annotations

import binascii
import os
import struct
import zlib
from dataclasses import dataclass, replace

import numpy as np

from compressor.errors import BitstreamError

MAGIC = b"CCLP"
END_MAGIC = b"CCLE"
VERSION = 1
HEADER_SIZE = 24
RECORD_HEADER_SIZE = 3
TRAILER_SIZE = 12
MAX_RECORD = 0xFFFF  # a record's length is a uint16
MAX_FRAMES = 0xFFFFFFFF
_HEADER = struct.Struct(">4sBBHHHIIH")  # everything before the CRC
_TRAILER = struct.Struct(">II4s")

RAW, CHANNEL, CONTEXT, TEMPORAL, NET = 0, 1, 2, 3, 4
KIND_NAMES = {RAW: "raw", CHANNEL: "per-channel", CONTEXT: "context", TEMPORAL: "temporal", NET: "net"}


MAX_KEYFRAME_INTERVAL = 0xFFFF  # the header's 2-byte field


class ClipError(BitstreamError):
    """A clip archive whose header, index or trailer is damaged or impossible."""


class DamagedRecord(ClipError):
    """One frame's record fails its check; the rest of the clip is fine."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def is_clip(prefix: bytes) -> bool:
    """Whether bytes start like a clip archive."""
    return bytes(prefix[:4]) == MAGIC


@dataclass(frozen=True)
class ClipHeader:
    model_id: int
    height: int
    width: int
    fps: float | None
    keyframe_interval: int
    frames: int = 0

    def pack(self) -> bytes:
        if not (1 <= self.height <= 0xFFFF and 1 <= self.width <= 0xFFFF):
            raise ValueError(f"frame size {self.height}x{self.width} does not fit a clip header")
        if not 1 <= self.keyframe_interval <= MAX_KEYFRAME_INTERVAL:
            raise ValueError(f"keyframe interval must be 1..{MAX_KEYFRAME_INTERVAL}, not {self.keyframe_interval}")
        if not 0 <= self.model_id <= 0xFFFF:
            raise ValueError(f"model id {self.model_id} does not fit 16 bits")
        fps_milli = round((self.fps or 0) * 1000)
        if not 0 <= fps_milli <= 0xFFFFFFFF:
            raise ValueError(f"fps {self.fps} does not fit a clip header")
        body = _HEADER.pack(MAGIC, VERSION, 0, self.model_id, self.height, self.width, fps_milli, self.frames,
                            self.keyframe_interval)
        return body + crc16(body).to_bytes(2, "big")

    @classmethod
    def unpack(cls, data: bytes) -> "ClipHeader":
        if not is_clip(data):
            raise ClipError("not a compressor clip archive (bad magic)")
        if len(data) < HEADER_SIZE:
            raise ClipError(f"truncated clip archive ({len(data)} bytes, shorter than its {HEADER_SIZE}-byte header)")
        body = bytes(data[: HEADER_SIZE - 2])
        magic, version, flags, model_id, height, width, fps_milli, frames, interval = _HEADER.unpack(body)
        if int.from_bytes(data[HEADER_SIZE - 2 : HEADER_SIZE], "big") != crc16(body):
            raise ClipError("damaged clip header (check does not match)")
        if version != VERSION:
            raise ClipError(f"unsupported clip format version {version} (this library reads version {VERSION})")
        if flags or not height or not width or not interval:
            raise ClipError("damaged clip header (impossible flags, size or keyframe interval)")
        return cls(model_id, height, width, fps_milli / 1000 if fps_milli else None, interval, frames)


def _record_check(index: int, kind: int, payload: bytes) -> int:
    return crc16(index.to_bytes(4, "big") + bytes([kind]) + payload)


class ClipWriter:
    """Writes a clip to a seekable binary file, one frame at a time: `add` each record, then `close`."""

    def __init__(self, f, header: ClipHeader):
        self.f = f
        self.header = header
        self.lengths: list[int] = []  # 2 bytes a frame: the index, kept until the end
        f.write(header.pack())

    def add(self, kind: int, payload: bytes) -> None:
        if kind not in KIND_NAMES:
            raise ValueError(f"unknown record kind {kind}")
        length = RECORD_HEADER_SIZE + len(payload)
        if length > MAX_RECORD:
            raise ValueError(f"a frame's record of {length} bytes is over the limit of {MAX_RECORD}")
        if len(self.lengths) >= MAX_FRAMES:
            raise ValueError("a clip holds at most 2**32 - 1 frames")
        check = _record_check(len(self.lengths), kind, payload)
        self.f.write(bytes([kind]) + check.to_bytes(2, "big") + payload)
        self.lengths.append(length)

    def close(self) -> None:
        """Write the index and trailer, and the frame count into the header."""
        count = len(self.lengths)
        if count == 0:
            raise ClipError("a clip needs at least one frame")
        index = np.asarray(self.lengths, dtype=">u2").tobytes()
        self.f.write(index)
        self.f.write(_TRAILER.pack(count, zlib.crc32(index + count.to_bytes(4, "big")), END_MAGIC))
        end = self.f.tell()
        self.f.seek(0)
        self.f.write(replace(self.header, frames=count).pack())
        self.f.seek(end)


class ClipReader:
    """A clip archive opened for random access: header, trailer and index are read and checked up front;
    `record(i)` then reads one frame's record with a single seek."""

    def __init__(self, f):
        self.f = f
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        self.header = ClipHeader.unpack(f.read(HEADER_SIZE))
        if size < HEADER_SIZE + TRAILER_SIZE:
            raise ClipError(f"truncated clip archive ({size} bytes)")
        f.seek(size - TRAILER_SIZE)
        count, index_crc, end_magic = _TRAILER.unpack(f.read(TRAILER_SIZE))
        if end_magic != END_MAGIC:
            raise ClipError("truncated or damaged clip archive (no index at the end)")
        if count != self.header.frames:
            raise ClipError(f"damaged clip archive (header says {self.header.frames} frames, index {count})")
        if count == 0:
            raise ClipError("clip archive holds no frames")
        index_start = size - TRAILER_SIZE - 2 * count
        if index_start < HEADER_SIZE:
            raise ClipError(f"damaged clip archive (an index of {count} frames does not fit {size} bytes)")
        f.seek(index_start)
        index = f.read(2 * count)
        if zlib.crc32(index + count.to_bytes(4, "big")) != index_crc:
            raise ClipError("damaged clip index (check does not match)")
        lengths = np.frombuffer(index, dtype=">u2").astype(np.int64)
        if lengths.min() < RECORD_HEADER_SIZE:
            raise ClipError("damaged clip index (a record shorter than its own header)")
        # offsets[i] is where record i starts; the records must fill the space between header and index.
        self.offsets = HEADER_SIZE + np.concatenate([[0], np.cumsum(lengths)])
        if self.offsets[-1] != index_start:
            raise ClipError("damaged clip index (records do not fill the file between header and index)")
        self.size = size

    def __len__(self) -> int:
        return self.header.frames

    def record_size(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def record(self, i: int) -> tuple[int, bytes]:
        """Frame i's (kind, payload); DamagedRecord if its check fails."""
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} is outside the clip's {len(self)} frames")
        self.f.seek(int(self.offsets[i]))
        data = self.f.read(self.record_size(i))
        if len(data) != self.record_size(i):  # the file shrank since it was opened
            raise DamagedRecord("truncated record")
        kind, check, payload = data[0], int.from_bytes(data[1:3], "big"), data[3:]
        if kind not in KIND_NAMES or check != _record_check(i, kind, payload):
            raise DamagedRecord("damaged record (check does not match)")
        return kind, payload

    def kind(self, i: int) -> int:
        """Frame i's record kind (one byte read, not checked: `record` checks it)."""
        self.f.seek(int(self.offsets[i]))
        return self.f.read(1)[0]

    def keyframe_at_or_before(self, i: int) -> int:
        """The frame decoding must start from to reach frame i: the last one at or before i coded without
        the previous frame. Frames K * n always are, so at most K - 1 kind bytes are read."""
        first = i - i % self.header.keyframe_interval
        while i > first and self.kind(i) == TEMPORAL:
            i -= 1
        return i
