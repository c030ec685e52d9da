"""Training data: a pool of random 128x256 crops cut once from image and video folders, sampled into batches.

Decoding and rescaling the JPEGs dominates a CPU step, so crops are cut once into a uint8 array
(about 100 KB each) and batches are drawn from it. Each crop follows design.md: the image is
rescaled by a random factor between the one at which it just covers the crop and twice that
(Lanczos, the same filter that made the eval frames), then cropped at a random position.
"""
from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from compressor.errors import TrainingError
from compressor.folders import files_under
from compressor.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, cover_frame


def find_images(folders: list[str | Path]) -> list[Path]:
    """All image and video files under the folders, at any depth (linked folders too), sorted for reproducibility."""
    files = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        files += files_under(folder, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images or videos found in {', '.join(map(str, folders))}")
    return sorted(files)


def video_frames(path: Path, count: int) -> list[Image.Image]:
    """Up to `count` frames spread evenly over a video, decoded with PyAV (FFmpeg)."""
    from compressor.extras import need

    av = need("av", f"reading video ({path.name})")

    # Count the packets first (no decoding), then keep only the chosen frames: memory stays that of
    # `count` frames however long the video (holding every frame of 1,200 at 128x256 took 270 MB).
    with av.open(str(path)) as container:
        total = sum(1 for packet in container.demux(video=0) if packet.size)
    want = set(np.linspace(0, max(total - 1, 0), min(count, total)).round().astype(int).tolist())
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in want:
                frames.append(frame.to_image())
            if len(frames) == len(want):
                break
    if not frames:
        raise ValueError(f"{path} has no video frames")
    return frames


def first_frame(path: Path) -> Image.Image:
    """An image file, or the middle frame of a video, as RGB."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames = video_frames(path, 3)
        return frames[len(frames) // 2].convert("RGB")
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def random_crops(path: Path, size: tuple[int, int], count: int, seed: int, max_zoom: float = 2.0) -> np.ndarray:
    """`count` crops (count, H, W, 3) uint8 at random scales in [cover, max_zoom * cover].

    An image gives all its crops; a video gives one crop from each of `count` frames spread over it.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    if path.suffix.lower() in VIDEO_SUFFIXES:
        sources = [f.convert("RGB") for f in video_frames(path, count)]
    else:
        sources = [first_frame(path)]
    crops = np.empty((count, h, w, 3), np.uint8)
    for i in range(count):
        im = sources[i % len(sources)]
        cover = max(h / im.height, w / im.width)
        scale = cover * float(rng.uniform(1.0, max_zoom))
        new_w = max(w, round(im.width * scale))
        new_h = max(h, round(im.height * scale))
        scaled = im.resize((new_w, new_h), Image.LANCZOS)
        top = int(rng.integers(0, new_h - h + 1))
        left = int(rng.integers(0, new_w - w + 1))
        crops[i] = np.asarray(scaled.crop((left, top, left + w, top + h)))
    return crops


def _crops_job(args):
    """Crops of one file, or an empty array and the reason if the file cannot be read."""
    path, size = args[0], args[1]
    try:
        return random_crops(*args), None
    except Exception as e:  # a corrupt file must not end a run that has thousands of good ones
        return np.empty((0, *size, 3), np.uint8), f"{path}: {e}"


# Crops cut from one file at most: past a few dozen random scales and positions of one picture, more
# crops add disk and preparation time, not variety (24 images with the default pool of 16,000 cut 667
# each: 1.57 GB and 34 s). The shared training set (2,551 files) never reaches it below a 160k pool.
MAX_CROPS_PER_FILE = 64


def build_pool(files: list[Path], size: tuple[int, int], total: int, seed: int, workers: int | None = None) -> np.ndarray:
    """About `total` crops spread evenly over the files (at most MAX_CROPS_PER_FILE each), cut in parallel.

    Unreadable files are skipped with a warning; if none can be read, that is an error.
    """
    per_image = max(1, min(MAX_CROPS_PER_FILE, round(total / len(files))))
    jobs = [(f, size, per_image, seed * 1_000_003 + i) for i, f in enumerate(files)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        results = [_crops_job(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_crops_job, jobs, chunksize=16))
    failures = [err for _, err in results if err]
    for err in failures[:5]:
        print(f"warning: skipped unreadable file {err}", flush=True)
    if len(failures) > 5:
        print(f"warning: skipped {len(failures) - 5} more unreadable files", flush=True)
    if len(failures) == len(files):
        raise ValueError(f"none of the {len(files)} training files could be read (first: {failures[0]})")
    return np.concatenate([crops for crops, _ in results])


def cached_pool(train_files: list[Path], crop: tuple[int, int], pool_size: int, seed: int, folder: Path,
                verbose: bool = True) -> np.ndarray:
    """`build_pool`'s crops, cut once and kept as a .npy file in `folder` (a run's own folder by default).

    The cache is keyed by the file list (paths, sizes, times) and the crop recipe, so other data or
    settings never reuse a stale pool. The run says what it read or wrote, and where.
    """
    listing = "\n".join(f"{f}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in train_files)
    digest = hashlib.sha1(listing.encode()).hexdigest()[:12]
    key = f"{digest}-{crop[0]}x{crop[1]}-{pool_size}-{seed}"
    cache = Path(folder) / f"crops-{key}.npy"
    if cache.exists():
        pool = np.load(cache)
        if verbose:
            print(f"read {len(pool):,} crops from {cache}", flush=True)
        return pool
    t = time.time()
    pool = build_pool(train_files, crop, pool_size, seed)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npy")  # np.save adds .npy to a name without it
    np.save(tmp, pool)
    os.replace(tmp, cache)
    if verbose:
        print(f"cut {len(pool):,} crops from {len(train_files):,} files in {time.time() - t:.0f} s; "
              f"wrote {cache} ({cache.stat().st_size / 1e6:.0f} MB; delete it after training to free the space)",
              flush=True)
    return pool


def validation_frames(files: list[Path], crop: tuple[int, int]):
    """The validation files as 128x256 frames (`cover_frame`), float (V, 3, H, W) in [0, 1]; unreadable ones skipped."""
    import torch

    frames = []
    for f in files:
        try:
            frames.append(np.asarray(cover_frame(first_frame(f), crop)))
        except Exception as e:
            print(f"warning: skipped unreadable validation file {f}: {e}", flush=True)
    if not frames:
        raise ValueError("no readable validation images")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255  # (V, 3, H, W)


def split_files(files: list[Path], every: int = 50) -> tuple[list[Path], list[Path]]:
    """Hold out every `every`-th file for validation: (train, validation); TrainingError where that leaves
    nothing to train on (one file, a single video say: give it a validation set of its own)."""
    if len(files) < 2:
        raise TrainingError(f"{len(files)} training file: holding out every {every}th for validation leaves none "
                            "to train on; add files, or name a validation folder (--set val_data=DIR)")
    val = files[::every]
    held = set(val)
    return [f for f in files if f not in held], val


class CropSampler:
    """Random batches from a uint8 crop pool, with random horizontal flips, as float (B, 3, H, W).

    On a GPU the pool itself moves to the device when it takes under half the free memory (48k crops
    are 4.7 GB), so a batch is gathered and flipped there: drawing it on one CPU thread took 39% of
    an H200 step. Indices and flips come from the same generator either way, so the batches are the
    same wherever the pool lives.
    """

    def __init__(self, pool: np.ndarray, batch_size: int, seed: int, device=None, pool_on_device: bool | None = None):
        import torch

        self.pool = pool
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if pool_on_device is None:  # auto: only a GPU with room to spare
            pool_on_device = (self.device.type == "cuda"
                              and pool.nbytes < torch.cuda.mem_get_info(self.device)[0] // 2)
        self.device_pool = torch.from_numpy(pool).to(self.device) if pool_on_device else None

    def next_batch(self, rank: int = 0, world: int = 1):
        """The next global batch, or process `rank`'s slice of it when `world` processes share it.

        From a pool on the host, the bytes travel as uint8 and become floats on the device: a quarter
        of the host-to-GPU traffic and no float conversion on the CPU.
        """
        import torch

        idx = self.rng.integers(0, len(self.pool), self.batch_size)
        flip = self.rng.random(self.batch_size) < 0.5
        part = slice(rank * self.batch_size // world, (rank + 1) * self.batch_size // world)
        idx, flip = idx[part], flip[part]
        if self.device_pool is not None:
            x = self.device_pool[torch.from_numpy(idx).to(self.device)]  # (b, H, W, 3) uint8
            mirror = torch.from_numpy(flip).to(self.device)[:, None, None, None]
            x = torch.where(mirror, x.flip(2), x)
        else:
            batch = self.pool[idx]  # (b, H, W, 3) uint8
            batch[flip] = batch[flip, :, ::-1]
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)  # contiguous: one copy to a GPU
        return x.permute(0, 3, 1, 2).float().div_(255)  # (B, 3, H, W)
