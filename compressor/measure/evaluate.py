"""Measurements of a codec as design.md defines them: file bytes, PSNR per image, and frames/s.

    bytes  the whole .bin file, header included; bpp = 8 * bytes / (H * W)
    PSNR   8-bit RGB, MSE over all pixels and channels of one image, then the mean over the set
    speed  batched encode (image -> bytes) and decode (bytes -> image), median of repeats after a warm-up
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from compressor.zoo import DEFAULT_MODEL
from compressor.errors import ImageError
from compressor.device import cpu_name
from compressor.images import IMAGE_SUFFIXES, to_rgb_array
from compressor.metrics import psnr


def expand_paths(paths) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise ImageError(f"not found: {p}")
    if not files:
        raise ImageError(f"no images in {', '.join(map(str, paths))}")
    return files


def round_trip(codec, originals: list[np.ndarray], **encode_args) -> tuple[list[bytes], list[np.ndarray]]:
    """Each image's .bin file and its decoding, batched: (files' bytes, uint8 (H, W, 3) arrays)."""
    datas = codec.encode_batch(originals, **encode_args)
    return datas, codec.decode_batch_arrays(datas)


def evaluate_paths(paths, model=DEFAULT_MODEL, *, refine: int = 0, flips: int = 0, tile: bool = True,
                   overlap: bool = True, device: str = "cpu", verbose: bool = False) -> dict:
    """Encode and decode every image; per-image and mean bytes, bpp and PSNR."""
    import compressor

    codec = model if hasattr(model, "encode_batch") else compressor.load(model, device=device)
    files = expand_paths(paths)
    originals = [to_rgb_array(f) for f in files]
    datas, decoded = round_trip(codec, originals, refine=refine, flips=flips, tile=tile, overlap=overlap)
    per_image = []
    for f, a, d, data in zip(files, originals, decoded, datas):
        rec = {"file": f.name, "size": f"{a.shape[0]}x{a.shape[1]}", "bytes": len(data),
               "bpp": 8 * len(data) / (a.shape[0] * a.shape[1]), "psnr": psnr(a, d)}
        per_image.append(rec)
        if verbose:
            print(f"{rec['file']:>32}  {rec['size']:>9}  {rec['bytes']:6d} B  {rec['bpp']:.4f} bpp  {rec['psnr']:6.2f} dB")
    summary = {
        "model": codec.name,
        "refine": refine,
        "flips": flips,
        # How images above a global-attention model's training frame were cut (Codec.encode_batch).
        "tiling": ("overlap" if overlap else "tiles") if tile else "whole",
        "images": len(files),
        "mean_bytes": float(np.mean([r["bytes"] for r in per_image])),
        "max_bytes": int(max(r["bytes"] for r in per_image)),
        "mean_bpp": float(np.mean([r["bpp"] for r in per_image])),
        "mean_psnr": float(np.mean([r["psnr"] for r in per_image])),
    }
    if verbose:
        print(f"{codec.name}: {summary['images']} images, mean {summary['mean_bytes']:.1f} bytes "
              f"(max {summary['max_bytes']}), {summary['mean_bpp']:.4f} bpp, mean PSNR {summary['mean_psnr']:.2f} dB")
    return {**summary, "per_image": per_image}


def record_results(model: str, set_name: str, result: dict) -> None:
    """Store a summary under card["results"][set_name] of a release checkpoint (weights untouched).

    This rewrites the checkpoint file in place, so only `compressor eval --record` calls it.
    """
    from compressor.checkpoint import read_card, update_card
    from compressor.zoo import resolve

    path = resolve(model)
    card = dict(read_card(path).card)
    summary = {k: v for k, v in result.items() if k != "per_image"}
    # Per image too (about 60 bytes each), so a test can check any single frame against the card.
    summary["per_image"] = [{"file": r["file"], "bytes": r["bytes"], "psnr": round(r["psnr"], 4)}
                            for r in result["per_image"]]
    card.setdefault("results", {})[set_name] = summary
    update_card(path, card)


def synthetic_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Smooth random frames (gradients plus a little noise); network speed does not depend on content."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    frames = []
    for _ in range(count):
        a = rng.uniform(-1, 1, (3, 3))
        base = 0.5 + 0.3 * np.sin(a[:, 0, None, None] * 6 * yy + a[:, 1, None, None] * 6 * xx + a[:, 2, None, None] * 3)
        noisy = base.transpose(1, 2, 0) + rng.normal(0, 0.03, (h, w, 3))
        frames.append(np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8))
    return frames


def measure_speed(model=DEFAULT_MODEL, *, batch: int = 32, frames: int = 256, threads: int | None = None,
                  size: tuple[int, int] = (128, 256), repeats: int = 5, refine: int = 0, flips: int = 0,
                  device: str = "cpu") -> dict:
    """Frames/s of encode_batch and decode_batch_arrays, `batch` frames per call; median of `repeats`."""
    import torch

    import compressor

    torch.set_num_threads(threads or os.cpu_count() or 1)
    codec = compressor.load(model, device=device)
    images = synthetic_frames(frames, size)
    chunks = [images[i : i + batch] for i in range(0, frames, batch)]
    codec.decode_batch_arrays(codec.encode_batch(chunks[0], refine=refine, flips=flips))  # warm-up
    enc, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        datas = [codec.encode_batch(c, refine=refine, flips=flips) for c in chunks]
        enc.append(frames / (time.perf_counter() - t))
        t = time.perf_counter()
        for d in datas:
            codec.decode_batch_arrays(d)
        dec.append(frames / (time.perf_counter() - t))
    return {
        "model": codec.name,
        "size": f"{size[0]}x{size[1]}",
        "batch": batch,
        "frames": frames,
        "threads": torch.get_num_threads(),
        "device": (f"cuda ({torch.cuda.get_device_name(codec.device)})" if codec.device.type == "cuda"
                   else f"cpu ({cpu_name()})"),
        "repeats": repeats,
        "refine": refine,
        "flips": flips,
        "encode_fps": statistics.median(enc),
        "decode_fps": statistics.median(dec),
    }
