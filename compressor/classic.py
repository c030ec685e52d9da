"""Classic codecs at a byte budget, through Pillow and its plugins: JPEG, WebP, AVIF, JPEG XL, JPEG 2000.

For each image and budget, `fit` finds the highest quality whose output fits, trying the image at
scale 1, 1/2, 1/4 and 1/8 (Lanczos down before encoding, Lanczos up after decoding) and keeping the
best PSNR, as design.md's "equal bytes" rule says. Two sizes are counted:
    file  what the codec writes, headers and container included: a storable file
    bare  the compressed stream alone (WebP's VP8 chunk, AVIF's mdat box, the JPEG XL and JPEG 2000
          codestreams): not a file, but the kindest view of the classic codec
JPEG has no separable bare stream (its tables are part of the stream), so it is fitted as files only.

Each codec runs at its PSNR-best settings that Pillow accepts, recorded beside its results
(`ClassicCodec.settings`): AVIF through libaom at speed 4 with `tune=psnr` (design.md's anchors),
falling back to Pillow's default AVIF encoder at speed 4 where libaom or the option is missing.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from compressor.metrics import psnr

SCALES = (1, 2, 4, 8)


@dataclass(frozen=True)
class ClassicCodec:
    name: str
    fmt: str
    qualities: tuple  # ascending: larger means more bytes
    has_bare: bool
    options: tuple = ()  # (name, value) pairs passed to Pillow's save besides the quality

    @property
    def settings(self) -> dict:
        """The encoder settings, as results record them (quality is searched per image)."""
        return {k: dict(v) if k == "advanced" else v for k, v in self.options}

    def encode(self, image: Image.Image, q) -> bytes:
        buf = io.BytesIO()
        options = {k: list(v) if k == "advanced" else v for k, v in self.options}
        if self.fmt == "JPEG2000":
            # OpenJPEG's rate is a compression ratio: smaller ratios give more bytes.
            image.save(buf, "JPEG2000", quality_layers=[float(q)], **options)
        else:
            image.save(buf, self.fmt, quality=int(q), **options)
        return buf.getvalue()


def _boxes(data: bytes):
    """Top-level ISOBMFF boxes: (type, payload start, payload end)."""
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        start = i + 8
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
            start = i + 16
        elif size == 0:
            size = len(data) - i
        if size < 8:
            return
        yield kind, start, i + size
        i += size


def bare_size(fmt: str, data: bytes) -> int | None:
    """Bytes of the compressed stream without container and headers, where the format has one."""
    if fmt == "WEBP" and data[12:16] in (b"VP8 ", b"VP8L"):
        return int.from_bytes(data[16:20], "little")
    if fmt == "AVIF":
        return sum(end - start for kind, start, end in _boxes(data) if kind == b"mdat")
    if fmt == "JXL":
        if data[:2] == b"\xff\x0a":
            return len(data)
        return sum(end - start for kind, start, end in _boxes(data) if kind in (b"jxlc", b"jxlp"))
    if fmt == "JPEG2000":
        return len(data)
    return None


def available_codecs() -> list[ClassicCodec]:
    from PIL import features

    codecs = [ClassicCodec("JPEG", "JPEG", tuple(range(1, 96)), False)]
    if features.check("webp"):
        codecs.append(ClassicCodec("WebP", "WEBP", tuple(range(0, 101)), True, (("method", 6),)))
    if features.check("avif"):
        codecs.append(_avif())
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL format with Pillow)

        codecs.append(ClassicCodec("JPEG XL", "JXL", tuple(range(1, 100)), True, (("effort", 7),)))  # 100: lossless
    except ImportError:
        pass
    if features.check("jpg_2000"):
        ratios = tuple(sorted({round(float(r), 1) for r in np.geomspace(2000, 8, 48)}, reverse=True))
        codecs.append(ClassicCodec("JPEG 2000", "JPEG2000", ratios, True, (("quality_mode", "rates"), ("no_jp2", True))))
    return codecs


AVIF_PSNR_BEST = (("speed", 4), ("codec", "aom"), ("advanced", (("tune", "psnr"),)))


def _avif() -> ClassicCodec:
    """AVIF at libaom speed 4, tune=psnr, if this Pillow's AVIF plugin takes them; else speed 4 alone."""
    for options in (AVIF_PSNR_BEST, (("speed", 4),)):
        codec = ClassicCodec("AVIF", "AVIF", tuple(range(0, 101)), True, options)
        try:
            codec.encode(Image.new("RGB", (16, 16)), 50)
            return codec
        except (ValueError, OSError, KeyError):  # Pillow: "Invalid codec-specific option", codec not built in
            continue
    return ClassicCodec("AVIF", "AVIF", tuple(range(0, 101)), True)


@dataclass
class Fit:
    bytes: int
    psnr: float
    scale: int
    quality: float
    decoded: np.ndarray


def fit(codec: ClassicCodec, image: np.ndarray, budget: int, *, bare: bool = False) -> Fit | None:
    """Best PSNR over the scales at the highest quality whose size (file or bare) fits `budget`."""
    return fit_modes(codec, image, budget, modes=("bare",) if bare else ("file",))[0]


def fit_modes(codec: ClassicCodec, image: np.ndarray, budget: int, modes=("file", "bare")) -> list[Fit | None]:
    """`fit` for several size modes at once; encodes are shared between the modes' searches."""
    pil = Image.fromarray(image)
    h, w = image.shape[:2]
    best: list[Fit | None] = [None] * len(modes)
    for s in SCALES:
        if min(h, w) // s < 8:
            break
        small = pil if s == 1 else pil.resize((max(1, w // s), max(1, h // s)), Image.LANCZOS)
        cache: dict = {}

        def encoded(i):
            if i not in cache:
                data = codec.encode(small, codec.qualities[i])
                cache[i] = {"file": len(data), "bare": bare_size(codec.fmt, data), "data": data}
            return cache[i]

        for m, mode in enumerate(modes):
            lo, hi = 0, len(codec.qualities) - 1
            if encoded(lo)[mode] > budget:
                continue
            while lo < hi:  # largest index whose size fits; sizes grow with the index
                mid = (lo + hi + 1) // 2
                if encoded(mid)[mode] <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            decoded = Image.open(io.BytesIO(encoded(lo)["data"])).convert("RGB")
            if s != 1:
                decoded = decoded.resize((w, h), Image.LANCZOS)
            arr = np.asarray(decoded)
            score = psnr(image, arr)
            if best[m] is None or score > best[m].psnr:
                best[m] = Fit(bytes=encoded(lo)[mode], psnr=score, scale=s, quality=codec.qualities[lo], decoded=arr)
    return best
