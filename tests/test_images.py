"""Odd inputs: each is coded correctly or refused with a clear ImageError."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from compressor.errors import ImageError
from compressor.images import to_rgb_array


def _save(tmp_path, image, name, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_palette_grayscale_and_la(tmp_path, frame):
    rgb = Image.fromarray(frame)
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=32)
    np.testing.assert_array_equal(to_rgb_array(_save(tmp_path, pal, "p.png")), np.asarray(pal.convert("RGB")))
    gray = rgb.convert("L")
    out = to_rgb_array(_save(tmp_path, gray, "l.png"))
    assert out.shape == (128, 256, 3) and (out[:, :, 0] == out[:, :, 2]).all()
    la = rgb.convert("LA")
    assert to_rgb_array(_save(tmp_path, la, "la.png")).shape == (128, 256, 3)


def test_rgba_drops_alpha(tmp_path, frame):
    rgba = np.concatenate([frame, np.zeros((128, 256, 1), np.uint8)], axis=2)  # fully transparent
    out = to_rgb_array(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
    np.testing.assert_array_equal(out, frame)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(256 * 16, dtype=np.uint32).reshape(16, 256) * 16).astype(np.uint16)
    out = to_rgb_array(_save(tmp_path, Image.fromarray(ramp), "g16.png"))
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0
    np.testing.assert_array_equal(out[:, :, 0], np.round(ramp / 65535 * 255).astype(np.uint8))


def test_cmyk_jpeg(tmp_path, frame):
    cmyk = Image.fromarray(frame).convert("CMYK")
    out = to_rgb_array(_save(tmp_path, cmyk, "c.jpg", quality=95))
    assert out.shape == (128, 256, 3)
    assert np.abs(out.astype(int) - frame.astype(int)).mean() < 12


def test_exif_rotation_is_applied(tmp_path, frame):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = _save(tmp_path, Image.fromarray(frame), "r.jpg", exif=exif, quality=95)
    out = to_rgb_array(path)
    assert out.shape == (256, 128, 3)


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1), (17, 33)])
def test_tiny_and_thin_images_round_trip(tiny, size):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    out = tiny.decode(tiny.encode(img))
    assert out.size == (size[1], size[0])


def test_huge_image_is_refused_before_decoding_pixels(tmp_path, tiny):
    # A 100000x100000 PNG header with a tiny body: refused from its header, without allocating.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    path = tmp_path / "bomb.png"
    path.write_bytes(png)
    with pytest.raises(ImageError, match="limit"):
        tiny.encode(path)


def test_an_image_above_the_codecs_limit_is_refused_from_its_header(tmp_path, tiny, monkeypatch):
    from compressor import images

    path = tmp_path / "wide.png"
    Image.new("RGB", (3000, 2000)).save(path)  # 6M pixels: under Pillow's and the reader's limits, above the codec's
    loaded = []
    monkeypatch.setattr(images, "_from_pil", lambda im: loaded.append(im) or np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageError, match="2000x3000 pixels is above the limit of 4194304"):
        tiny.encode(path)
    assert loaded == []  # refused before its pixels were decoded


def test_non_image_files_are_refused(tmp_path, tiny):
    for name, content in [("a.png", b""), ("b.jpg", b"\xff\xd8\xff garbage"), ("c.txt", b"hello")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError, match="cannot read"):
            tiny.encode(tmp_path / name)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageError):
        tiny.encode(tmp_path / "folder.png")


def test_truncated_jpeg_is_refused_or_read_fully(tmp_path, frame):
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=90)
    path = tmp_path / "t.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="cannot read"):
        to_rgb_array(path)
