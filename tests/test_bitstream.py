import pytest

from compressor import bitstream
from compressor.bitstream import BitstreamError, Header


def test_round_trip_short_header_is_8_bytes():
    h = Header(model_id=0xBEEF, height=128, width=256, raw=False)
    data = bitstream.pack(h, b"payload")
    assert len(data) == 8 + len(b"payload")
    assert bitstream.unpack(data) == (h, b"payload")


@pytest.mark.parametrize("size", [(1, 1), (4096, 4096), (4097, 16), (1, 65536), (16384, 16384)])
def test_round_trip_sizes(size):
    h = Header(model_id=1, height=size[0], width=size[1], raw=True)
    data = bitstream.pack(h, b"\x01\x02")
    assert bitstream.unpack(data)[0] == h
    assert len(data) - 2 == (8 if max(size) <= 4096 else 9)


def test_every_truncation_is_refused():
    data = bitstream.pack(Header(model_id=7, height=128, width=256, raw=False), bytes(range(50)))
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            bitstream.unpack(data[:n])


def test_every_header_bit_flip_is_refused():
    data = bitstream.pack(Header(model_id=7, height=128, width=256, raw=False), bytes(range(50)))
    for i in range(8):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                bitstream.unpack(bytes(damaged))


def test_every_payload_bit_flip_is_caught_by_check_byte():
    data = bitstream.pack(Header(model_id=7, height=128, width=256, raw=True), bytes(range(224)))
    for i in range(8, len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(BitstreamError, match="check byte"):
                bitstream.unpack(bytes(damaged))


def test_crc8_known_value():
    assert bitstream.crc8(b"123456789") == 0xF4  # the CRC-8/SMBUS check value


def _forge(first_bytes: bytes, payload: bytes = b"") -> bytes:
    """A file with a valid check byte around arbitrary header fields."""
    return first_bytes + bytes([bitstream.crc8(first_bytes + payload)]) + payload


def test_wrong_magic_and_version_and_impossible_flags():
    with pytest.raises(BitstreamError, match="magic"):
        bitstream.unpack(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(BitstreamError, match="version 5"):
        bitstream.unpack(_forge(bytes([0xCF, 0x50, 0, 0, 0, 0, 0])))
    for version in (0x21, 0x31):
        with pytest.raises(BitstreamError, match="raw flag set in a context-coded"):
            bitstream.unpack(_forge(bytes([0xCF, version, 0, 0, 0, 0, 0])))
    with pytest.raises(ValueError, match="not raw bits"):
        Header(model_id=7, height=128, width=256, raw=True, context=True)
    with pytest.raises(BitstreamError, match="overlap flag set without the tiled flag"):
        bitstream.unpack(_forge(bytes([0xCF, 0x18, 0, 0, 0, 0, 0])))
    with pytest.raises(ValueError, match="must be tiled"):
        Header(model_id=7, height=300, width=900, raw=False, tiled=False, overlap=True)


def test_tiling_flags_round_trip():
    for tiled, overlap in ((False, False), (True, False), (True, True)):
        header = Header(model_id=7, height=300, width=900, raw=False, tiled=tiled, overlap=overlap)
        back = bitstream.unpack(bitstream.pack(header, bytes(range(50))))[0]
        assert (back.tiled, back.overlap) == (tiled, overlap)


def test_absurd_size_is_refused_before_anything_else():
    # long form, 65536 x 65536: above the pixel limit
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        bitstream.unpack(_forge(bytes([0xCF, 0x12, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])))
    with pytest.raises(BitstreamError):
        bitstream.pack(Header(model_id=0, height=100000, width=100000, raw=True), b"")


def test_long_form_for_small_size_is_refused():
    with pytest.raises(BitstreamError, match="size form"):
        bitstream.unpack(_forge(bytes([0xCF, 0x12, 0, 0, 0, 127, 0, 255])))


def test_version_2_round_trip_and_version_1_unchanged():
    v1 = Header(model_id=0xEA0D, height=128, width=256, raw=False)
    v2 = Header(model_id=0xBE7B, height=128, width=256, raw=False, context=True)
    assert bitstream.pack(v1, b"ab")[1] >> 4 == 1 and bitstream.pack(v2, b"ab")[1] >> 4 == 2
    for header in (v1, v2):
        back, payload = bitstream.unpack(bitstream.pack(header, b"ab"))
        assert back == header and payload == b"ab" and back.version == (2 if header.context else 1)


# --- version 4: the standard 128x256 frame in a 5-byte header ----------------------------------------
@pytest.mark.parametrize("coding", bitstream.CODINGS)
def test_version_4_round_trips_every_coding_in_5_bytes(coding):
    h = Header(model_id=0xBEEF, height=128, width=256, standard=True, **{k: k == coding for k in ("raw", "context", "net")})
    data = bitstream.pack(h, b"payload")
    assert len(data) == 5 + len(b"payload") and data[1] == 0x40 | bitstream.CODINGS.index(coding)
    back, payload = bitstream.unpack(data)
    assert back == h and payload == b"payload" and back.version == 4 and back.coding == coding
    assert (back.height, back.width, back.tiled, back.overlap) == (128, 256, False, False)


def test_version_4_is_only_for_the_untiled_standard_frame():
    for size, tiled in (((128, 255), False), ((256, 128), False), ((128, 256), True)):
        with pytest.raises(ValueError, match="version-4 header is for an untiled 128x256"):
            Header(model_id=1, height=size[0], width=size[1], raw=False, tiled=tiled, standard=True)


def test_version_4_damage_is_refused():
    data = bitstream.pack(Header(model_id=7, height=128, width=256, raw=False, net=True, standard=True),
                          bytes(range(50)))
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            bitstream.unpack(data[:n])
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                bitstream.unpack(bytes(damaged))
    for code in (1, 2, 3):  # reserved frame size codes, even with a valid check byte
        with pytest.raises(BitstreamError, match=f"unsupported frame size code {code}"):
            bitstream.unpack(_forge(bytes([0xCF, 0x40 | code << 2, 0, 7]), b"abc"))


def test_a_clip_archive_is_named_as_one():
    from compressor import clip

    with pytest.raises(BitstreamError, match="a clip archive, not one frame"):
        bitstream.unpack(clip.MAGIC + bytes(40))
