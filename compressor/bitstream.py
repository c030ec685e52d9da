"""The .bin format: pure bytes in, bytes out, no torch.

    byte 0      magic 0xCF
    byte 1      high nibble: format version; low nibble: flags (versions 1-3) or coding (version 4)
                  version 1: payload coded with the per-channel table (`entropy_coder`) or raw bits
                  version 2: payload coded with the context table (`context_model`, spatial layout)
                  version 3: payload coded with the context net (`context_net`)
                  bit 0  payload is raw symbol bits (1) or entropy-coded (0); always 0 in versions 2 and 3
                  bit 1  long size: H and W as 2 x uint16 (1) or packed into 3 bytes (0)
                  bit 2  tiled: the latent was coded in tiles of the model's training frame
                  bit 3  overlap (only with bit 2): the tiles overlapped by half a tile and were blended
                version 4: the standard frame (128x256, the 14x128 latent) with no size field; the low
                  nibble says how the payload is coded: bits 0-1 = 0 raw bits, 1 per-channel table,
                  2 context table, 3 context net (as versions 1-3 code them); bits 2-3 a frame size
                  code, 0 = 128x256 (1-3 are reserved and refused)
    bytes 2-3   model id (uint16, big-endian): first 16 bits of the SHA-256 of the writer's weights
    size        versions 1-3 only. Short form (3 bytes): H-1 and W-1 as two 12-bit numbers, for sides
                up to 4096; long form (4 bytes): H-1 and W-1 as two uint16, for sides up to 65536
    check       1 byte: CRC-8 (polynomial 0x07) over everything else (header and payload)
    payload     the rest of the file

A writer keeps, frame by frame, the shortest of the context-net coding (or, for a checkpoint without a
net, the context table coding), the per-channel coding and the raw bits, so a 128x256 frame never
costs more than 224 bytes of payload. A 128x256 frame (untiled, as every model codes its own frame)
has a 5-byte version-4 header, so 229 B is its worst case; any other size has an 8-byte (or 9-byte)
header and versions 1-3. The check byte catches every single-bit error and burst of up to 8 bits, and
all but 1 in 256 other corruptions, which a raw bit payload could not otherwise reveal.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from compressor.errors import BitstreamError

MAGIC = 0xCF
VERSION = 1  # per-channel table or raw bits
VERSION_CONTEXT = 2  # context table
VERSION_NET = 3  # context net
VERSION_STANDARD = 4  # any of the codings above, at the standard frame: no size field
VERSIONS = (VERSION, VERSION_CONTEXT, VERSION_NET, VERSION_STANDARD)
STANDARD_FRAME = (128, 256)  # (H, W) a version-4 header stands for: every shipped model's frame
CODINGS = ("raw", "channel", "context", "net")  # a version-4 header's bits 0-1
FLAG_RAW = 0x1
FLAG_LONG_SIZE = 0x2
FLAG_TILED = 0x4
FLAG_OVERLAP = 0x8
SHORT_SIDE_LIMIT = 4096
MAX_SIDE = 65536
# Largest image a .bin may claim: sides up to 65536 but at most this many pixels (a 16384x16384
# image), so no header can ask the decoder for an absurd allocation.
MAX_PIXELS = 16384 * 16384


def _crc8_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS (polynomial x^8 + x^2 + x + 1, initial value 0)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


@dataclass(frozen=True)
class Header:
    model_id: int
    height: int
    width: int
    raw: bool
    tiled: bool = False  # encoder and decoder ran tile by tile (compressor.tiling)
    overlap: bool = False  # ... in overlapping, blended windows (only with tiled)
    context: bool = False  # payload coded with the context table (format version 2)
    net: bool = False  # payload coded with the context net (format version 3)
    standard: bool = False  # version-4 header: the standard frame, no size field (any of the codings)

    def __post_init__(self):
        if self.overlap and not self.tiled:
            raise ValueError("a header with overlapping tiles must be tiled")
        if (self.context or self.net) and self.raw:
            raise ValueError("a context-coded payload is not raw bits")
        if self.context and self.net:
            raise ValueError("a payload is coded with the context table or the context net, not both")
        if self.standard and ((self.height, self.width) != STANDARD_FRAME or self.tiled):
            raise ValueError(f"a version-4 header is for an untiled {STANDARD_FRAME[0]}x{STANDARD_FRAME[1]} frame")

    @property
    def version(self) -> int:
        return VERSION_STANDARD if self.standard else self.coding_version

    @property
    def coding_version(self) -> int:
        """The version that brought the payload's coding (1 per-channel or raw, 2 context table, 3 context
        net), whatever the header's form: which of a checkpoint's ids the header's model id may be (a file
        written before the checkpoint got its tables or net names the id it had then)."""
        return VERSION_NET if self.net else VERSION_CONTEXT if self.context else VERSION

    @property
    def coding(self) -> str:
        """How the payload is coded: one of CODINGS, whatever the header's form."""
        return "raw" if self.raw else "net" if self.net else "context" if self.context else "channel"

    def size_bytes(self) -> int:
        return 5 if self.standard else 5 + (4 if self.long_size else 3)

    @property
    def long_size(self) -> bool:
        return self.height > SHORT_SIDE_LIMIT or self.width > SHORT_SIDE_LIMIT


def check_size(height: int, width: int) -> None:
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise BitstreamError(f"image size {height}x{width} is outside 1..{MAX_SIDE} per side")
    if height * width > MAX_PIXELS:
        raise BitstreamError(f"image size {height}x{width} exceeds the limit of {MAX_PIXELS} pixels")


def pack(header: Header, payload: bytes) -> bytes:
    """Header + payload -> the bytes of a .bin file."""
    check_size(header.height, header.width)
    if not 0 <= header.model_id < 1 << 16:
        raise ValueError(f"model id {header.model_id} does not fit 16 bits")
    if header.standard:
        body = bytes([MAGIC, VERSION_STANDARD << 4 | CODINGS.index(header.coding)])
        body += header.model_id.to_bytes(2, "big")
        return body + bytes([crc8(body + payload)]) + payload
    flags = ((FLAG_RAW if header.raw else 0) | (FLAG_LONG_SIZE if header.long_size else 0)
             | (FLAG_TILED if header.tiled else 0) | (FLAG_OVERLAP if header.overlap else 0))
    h, w = header.height - 1, header.width - 1
    if header.long_size:
        size = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    else:
        size = ((h << 12) | w).to_bytes(3, "big")
    body = bytes([MAGIC, (header.version << 4) | flags]) + header.model_id.to_bytes(2, "big") + size
    check = crc8(body + payload)
    return body + bytes([check]) + payload


def unpack(data: bytes) -> tuple[Header, bytes]:
    """The bytes of a .bin file -> (header, payload); raises BitstreamError on any inconsistency."""
    data = bytes(data)
    if len(data) < 2 or data[0] != MAGIC:
        from compressor.clip import is_clip

        if is_clip(data):  # a whole video, not one frame
            raise BitstreamError("a clip archive, not one frame's .bin: decompress it (or read it with compressor.clip)")
        raise BitstreamError("not a compressor .bin file (bad magic byte)")
    version, flags = data[1] >> 4, data[1] & 0xF
    if version not in VERSIONS:
        raise BitstreamError(f"unsupported .bin format version {version} "
                             f"(this library reads versions {', '.join(map(str, VERSIONS))})")
    if version == VERSION_STANDARD:
        return _unpack_standard(data, flags)
    if version != VERSION and flags & FLAG_RAW:
        raise BitstreamError(f"damaged .bin header (raw flag set in a context-coded version-{version} file)")
    if flags & FLAG_OVERLAP and not flags & FLAG_TILED:
        raise BitstreamError("damaged .bin header (overlap flag set without the tiled flag)")
    long_size = bool(flags & FLAG_LONG_SIZE)
    header_len = 5 + (4 if long_size else 3)
    if len(data) < header_len:
        raise BitstreamError(f"truncated .bin file ({len(data)} bytes, header alone needs {header_len})")
    model_id = int.from_bytes(data[2:4], "big")
    if long_size:
        height = int.from_bytes(data[4:6], "big") + 1
        width = int.from_bytes(data[6:8], "big") + 1
    else:
        packed = int.from_bytes(data[4:7], "big")
        height, width = (packed >> 12) + 1, (packed & 0xFFF) + 1
    check_size(height, width)
    header = Header(model_id=model_id, height=height, width=width, raw=bool(flags & FLAG_RAW),
                    tiled=bool(flags & FLAG_TILED), overlap=bool(flags & FLAG_OVERLAP),
                    context=version == VERSION_CONTEXT, net=version == VERSION_NET)
    if long_size != header.long_size:
        raise BitstreamError("damaged .bin header (size form does not match the size)")
    body, check, payload = data[: header_len - 1], data[header_len - 1], data[header_len:]
    if crc8(body + payload) != check:
        raise BitstreamError("damaged or truncated .bin file (check byte does not match)")
    return header, payload


def _unpack_standard(data: bytes, flags: int) -> tuple[Header, bytes]:
    """A version-4 file (5-byte header) -> (header, payload)."""
    if flags >> 2:
        raise BitstreamError(f"unsupported frame size code {flags >> 2} in a version-4 .bin header "
                             f"(this library knows code 0, {STANDARD_FRAME[0]}x{STANDARD_FRAME[1]})")
    if len(data) < 5:
        raise BitstreamError(f"truncated .bin file ({len(data)} bytes, header alone needs 5)")
    coding = CODINGS[flags & 3]
    header = Header(model_id=int.from_bytes(data[2:4], "big"), height=STANDARD_FRAME[0], width=STANDARD_FRAME[1],
                    raw=coding == "raw", context=coding == "context", net=coding == "net", standard=True)
    if crc8(data[:4] + data[5:]) != data[4]:
        raise BitstreamError("damaged or truncated .bin file (check byte does not match)")
    return header, data[5:]


def bin_bytes(data) -> bytes:
    """A .bin's contents from bytes-like `data`, or from the file a path (str or PathLike) names."""
    if isinstance(data, (str, os.PathLike)):
        try:
            with open(data, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise BitstreamError(f".bin file not found: {data}") from None
        except OSError as e:
            raise BitstreamError(f"cannot read {data}: {e}") from None
    try:
        return bytes(memoryview(data))  # bytes(n) of an int would be n zero bytes
    except TypeError:
        raise TypeError(f"a .bin must be bytes or a path, not {type(data).__name__}") from None
