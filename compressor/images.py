"""Image inputs and outputs: anything a user hands us -> an 8-bit RGB array, and back to PIL.

Accepted: a path, a PIL.Image, a numpy uint8 array (H, W, 3) or (H, W), a numpy float array in [0, 1]
(H, W, 3) or (H, W), or a torch tensor (3, H, W): float in [0, 1] or uint8. EXIF rotation is applied;
alpha is dropped (composited on nothing: the RGB channels are kept as they are); grayscale, palette,
CMYK and 16-bit images are converted to 8-bit RGB.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from compressor.bitstream import MAX_PIXELS as MAX_IMAGE_PIXELS  # the most a .bin header can hold; refused before decoding pixels
from compressor.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".avif", ".jxl"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
# Float inputs outside this range are refused rather than clipped to [0, 1].
FLOAT_RANGE = (-0.5, 1.5)


def _from_pil(im) -> np.ndarray:
    from PIL import ImageOps

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


def check_pixels(height: int, width: int, max_pixels: int, where: str = "") -> None:
    """Refuse an image of more than `max_pixels` pixels (`where` prefixes the message)."""
    if height * width > max_pixels:
        raise ImageError(f"{where}image of {height}x{width} pixels is above the limit of {max_pixels} pixels")


def to_rgb_array(image, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Any supported input -> contiguous uint8 array (H, W, 3), refused above `max_pixels` pixels (a file
    from its header, before its pixels are decoded)."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"{path} is a folder, not an image" if path.is_dir() else f"image not found: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked here, in one line
                with Image.open(path) as im:
                    check_pixels(im.height, im.width, max_pixels, f"{path}: ")
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
    check_pixels(arr.shape[0], arr.shape[1], max_pixels)
    return np.ascontiguousarray(arr)


def _array_from_numeric(image) -> np.ndarray:
    if hasattr(image, "detach") and hasattr(image, "numpy"):  # a torch tensor, without importing torch
        image = image.detach().cpu()
        # uint8 stays 0-255 (torchvision.io.read_image's (3, H, W) layout); other dtypes are floats in [0, 1]
        arr = image.numpy() if str(image.dtype) == "torch.uint8" else image.float().numpy()
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3:
            if arr.shape[0] not in (1, 3):
                raise ImageError(f"image tensor must be (3, H, W); got shape {tuple(arr.shape)}")
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
        # Clipping absorbs a network's small overshoot; values far outside [0, 1] are another scale
        # (0-255 floats, say), which clipping would turn into a white image without a word.
        if arr.size and (arr.min() < FLOAT_RANGE[0] or arr.max() > FLOAT_RANGE[1]):
            raise ImageError(f"float images must hold values in [0, 1]; got {arr.min():g} to {arr.max():g} "
                             "(divide 0-255 values by 255, or pass uint8)")
        return np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
    raise ImageError(f"unsupported image dtype {arr.dtype}: use uint8 in [0, 255] or float in [0, 1]")


def to_pil(arr: np.ndarray):
    from PIL import Image

    return Image.fromarray(arr)


def cover_frame(image, size: tuple[int, int]):
    """PIL image -> the 128x256 frame of the evaluation sets (their data README): Lanczos resize to
    cover `size` (H, W), then centre crop."""
    from PIL import Image, ImageOps

    h, w = size
    return ImageOps.fit(image, (w, h), method=Image.LANCZOS, centering=(0.5, 0.5))
