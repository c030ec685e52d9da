"""Image inputs and outputs: anything a user hands us -> an 8-bit RGB array, and back to PIL.

Accepted: a path, a PIL.Image, a numpy uint8 array (H, W, 3) or (H, W), or a float tensor/array in
[0, 1] shaped (3, H, W) or (H, W, 3). EXIF rotation is applied; alpha is dropped (composited on
nothing: the RGB channels are kept as they are); grayscale, palette, CMYK and 16-bit images are
converted to 8-bit RGB.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from compressor.errors import ImageError

# Pillow's own guard against decompression bombs; we refuse anything larger before decoding pixels.
MAX_IMAGE_PIXELS = 16384 * 16384


def _from_pil(im) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not make an image unreadable
        pass
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits rather than clip at 255.
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr / peak * 255), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def to_rgb_array(image) -> np.ndarray:
    """Any supported input -> contiguous uint8 array (H, W, 3)."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise ImageError(f"{path}: {im.width}x{im.height} pixels is above the limit of {MAX_IMAGE_PIXELS}")
                im.load()
                arr = _from_pil(im)
        except ImageError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ImageError(f"cannot read image {path}: {e}") from None
    elif isinstance(image, Image.Image):
        arr = _from_pil(image)
    else:
        arr = _array_from_numeric(image)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"empty image of size {arr.shape[0]}x{arr.shape[1]}")
    return np.ascontiguousarray(arr)


def _array_from_numeric(image) -> np.ndarray:
    if hasattr(image, "detach") and hasattr(image, "numpy"):  # a torch tensor, without importing torch
        arr = image.detach().cpu().float().numpy()
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3:
            if arr.shape[0] not in (1, 3):
                raise ImageError(f"image tensor must be (3, H, W) in [0, 1]; got shape {tuple(arr.shape)}")
            arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ImageError(f"unsupported image type {type(image).__name__}: pass a path, PIL image, numpy array or tensor")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"image array must be (H, W, 3); got shape {tuple(arr.shape)}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("image contains NaN or infinite values")
        return np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported image dtype {arr.dtype}: use uint8 in [0, 255] or float in [0, 1]")


def to_pil(arr: np.ndarray):
    from PIL import Image

    return Image.fromarray(arr)

