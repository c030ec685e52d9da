"""Training data: a pool of random 128x256 crops cut once from image folders, sampled into batches.

Decoding and rescaling the JPEGs dominates a CPU step, so crops are cut once into a uint8 array
(about 100 KB each) and batches are drawn from it. Each crop follows design.md: the image is
rescaled by a random factor between the one at which it just covers the crop and twice that
(Lanczos, the same filter that made the eval frames), then cropped at a random position.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def find_images(folders: list[str | Path]) -> list[Path]:
    """All Pillow-readable image files under the folders, recursively, sorted for reproducibility."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        files += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no images found in {', '.join(map(str, folders))}")
    return sorted(files)


def cover_frame(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The 128x256 frame of `../shared/data/README.md`: Lanczos resize to cover, centre crop."""
    h, w = size
    return ImageOps.fit(image, (w, h), method=Image.LANCZOS, centering=(0.5, 0.5))


def random_crops(path: Path, size: tuple[int, int], count: int, seed: int, max_zoom: float = 2.0) -> np.ndarray:
    """`count` crops (count, H, W, 3) uint8 from one image at random scales in [cover, max_zoom * cover]."""
    rng = np.random.default_rng(seed)
    h, w = size
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        cover = max(h / im.height, w / im.width)
        crops = np.empty((count, h, w, 3), np.uint8)
        for i in range(count):
            scale = cover * float(rng.uniform(1.0, max_zoom))
            new_w = max(w, round(im.width * scale))
            new_h = max(h, round(im.height * scale))
            scaled = im.resize((new_w, new_h), Image.LANCZOS)
            top = int(rng.integers(0, new_h - h + 1))
            left = int(rng.integers(0, new_w - w + 1))
            crops[i] = np.asarray(scaled.crop((left, top, left + w, top + h)))
    return crops


def _crops_job(args):
    return random_crops(*args)


def build_pool(files: list[Path], size: tuple[int, int], total: int, seed: int, workers: int | None = None) -> np.ndarray:
    """About `total` crops spread evenly over the files, cut in parallel processes."""
    per_image = max(1, round(total / len(files)))
    jobs = [(f, size, per_image, seed * 1_000_003 + i) for i, f in enumerate(files)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        parts = [_crops_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_crops_job, jobs, chunksize=16))
    return np.concatenate(parts)


def split_files(files: list[Path], every: int = 50) -> tuple[list[Path], list[Path]]:
    """Hold out every `every`-th file for validation: (train, validation)."""
    val = files[::every]
    held = set(val)
    return [f for f in files if f not in held], val


class CropSampler:
    """Random batches from a uint8 crop pool, with random horizontal flips, as float (B, 3, H, W)."""

    def __init__(self, pool: np.ndarray, batch_size: int, seed: int):
        self.pool = pool
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def next_batch(self):
        import torch

        idx = self.rng.integers(0, len(self.pool), self.batch_size)
        batch = self.pool[idx]  # (B, H, W, 3) uint8
        flip = self.rng.random(self.batch_size) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)  # (B, 3, H, W)
        return x.float().div_(255)
