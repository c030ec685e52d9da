"""`compressor bench`: every model and the classic codecs side by side, written as JSON, markdown and plots.

    OUT/results.json   one record per (model or codec, image set): bytes, bpp, PSNR, MS-SSIM, speed,
                       parameters and GFLOPs (models), and per-image bytes, PSNR and MS-SSIM
    OUT/results.md     the tables
    OUT/rd.png         mean PSNR against mean bytes, one panel per image set
    OUT/visual.png     the same frames decoded by each model and codec, labelled with bytes and PSNR
    OUT/scaling.*      with --scaling: encode/decode time and peak memory against pixel count (log-log)

The tables and plots are written by report.py, the scaling runs by scaling.py.

Classic codecs get, image by image, at most the bytes of the first model's file for that image. Every
model is also scored against bare AVIF given its own bytes (`avif_at_own_bytes`: the first model's
from the classic run, each other model's from an AVIF fit of its own), since models whose entropy
coders shrink their files by different amounts are compared fairly only with the bytes priced.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths, measure_speed, round_trip
from compressor.measure.report import plot_rd, plot_visual, write_tables
from compressor.measure.scaling import run_scaling
from compressor.metrics import ms_ssim, psnr


def gflops_per_frame(codec, size=(128, 256)) -> float:
    """Encoder + decoder GFLOPs for one frame, counted by PyTorch's FlopCounterMode (2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, *size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        y = codec.model.encoder(codec.model.pad(x))
        codec.model.decoder(torch.sign(y))
    return counter.get_total_flops() / 1e9


def search_name(refine: int = 0, flips: int = 0) -> str:
    """How a model's encoder searched, as its records and tables name it ("" for plain encoding)."""
    return f"refine {refine}" if refine else f"flips {flips}" if flips else ""


def _model_record(codec, set_name, files, frames, speed, flops, search: dict) -> dict:
    datas, decoded = round_trip(codec, frames, **search)
    per_image = [
        {"file": f.name, "bytes": len(d), "psnr": psnr(a, b), "ms_ssim": ms_ssim(a, b)}
        for f, d, a, b in zip(files, datas, frames, decoded)
    ]
    return {
        "name": " ".join(filter(None, (codec.name, search_name(**search)))), "kind": "model", "images": set_name,
        "count": len(files), "search": search_name(**search) or None,
        **_means(per_image, frames),
        "encode_fps": speed["encode_fps"], "decode_fps": speed["decode_fps"],
        "speed_setting": f"batch {speed['batch']}, {speed['threads']} threads, {speed['device']}, 128x256",
        "params": codec.parameters, "gflops": flops, "architecture": codec.architecture,
        "training": {k: codec.training.get(k)
                     for k in ("steps", "batch_size", "wall_time_s", "hardware", "warm_started_from")},
        "per_image": per_image, "_decoded": decoded,
    }


def _means(per_image, frames) -> dict:
    fits = [r for r in per_image if r["bytes"] is not None]
    pixels = [a.shape[0] * a.shape[1] for a, r in zip(frames, per_image) if r["bytes"] is not None]
    if not fits:
        return {"fitted": 0, "mean_bytes": None, "mean_bpp": None, "mean_psnr": None, "mean_ms_ssim": None}
    return {
        "fitted": len(fits),
        "mean_bytes": float(np.mean([r["bytes"] for r in fits])),
        "mean_bpp": float(np.mean([8 * r["bytes"] / p for r, p in zip(fits, pixels)])),
        "mean_psnr": float(np.mean([r["psnr"] for r in fits])),
        "mean_ms_ssim": float(np.nanmean([r["ms_ssim"] for r in fits])),
    }


def _fit_job(args):
    from compressor.measure.classic import fit_modes

    codec, image, budget, modes = args
    return fit_modes(codec, image, budget, modes)


def _classic_records(set_name, files, frames, budgets, reference, workers=None, codecs=None,
                     bare_only: bool = False) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor

    from compressor.measure.classic import available_codecs

    records = []
    workers = workers or os.cpu_count() or 1
    for codec in available_codecs() if codecs is None else codecs:
        modes = ("bare",) if bare_only else ("file", "bare") if codec.has_bare else ("file",)
        jobs = [(codec, a, budget, modes) for a, budget in zip(frames, budgets)]
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                fits = list(pool.map(_fit_job, jobs))
        else:
            fits = [_fit_job(j) for j in jobs]
        for m, mode in enumerate(modes):
            per_image, decoded, times = [], [], []
            for f, a, image_fits in zip(files, frames, fits):
                r = image_fits[m]
                if r is None:
                    per_image.append({"file": f.name, "bytes": None, "psnr": None, "ms_ssim": None})
                    decoded.append(None)
                    continue
                per_image.append({"file": f.name, "bytes": r.bytes, "psnr": r.psnr, "ms_ssim": ms_ssim(a, r.decoded),
                                  "scale": f"1/{r.scale}", "quality": r.quality})
                decoded.append(r.decoded)
                if len(times) < 8:
                    times.append(_time_classic(codec, a, r))
            means = _means(per_image, frames)
            records.append({
                "name": f"{codec.name} ({mode})", "kind": "classic", "images": set_name, "count": len(files), **means,
                "budget": f"per image, at most the bytes of {reference}'s file",
                "settings": codec.settings,
                "cannot_fit": len(files) - means["fitted"],
                "encode_fps": 1 / statistics.median([t[0] for t in times]) if times else None,
                "decode_fps": 1 / statistics.median([t[1] for t in times]) if times else None,
                "speed_setting": "one image at a time, 1 thread, at the fitted quality and scale",
                "per_image": per_image, "_decoded": decoded,
            })
    return records


def _avif_at_own_bytes(model_records, classic_records, set_name, files, frames) -> None:
    """Each model record gets `avif_at_own_bytes`: bare AVIF given that model's bytes image by image (mean
    bytes and PSNR) and the model's lead in dB; None where this Pillow has no AVIF."""
    from compressor.measure.classic import available_codecs

    avif = next((c for c in available_codecs() if c.fmt == "AVIF"), None)
    for i, m in enumerate(model_records):
        if avif is None:
            m["avif_at_own_bytes"] = None
            continue
        if i == 0:  # the classic run already gave AVIF the first model's bytes
            r = next(r for r in classic_records if r["name"] == f"{avif.name} (bare)")
        else:
            budgets = [p["bytes"] for p in m["per_image"]]
            r = _classic_records(set_name, files, frames, budgets, m["name"], codecs=[avif], bare_only=True)[0]
        lead = None if r["mean_psnr"] is None or r["fitted"] < r["count"] else m["mean_psnr"] - r["mean_psnr"]
        m["avif_at_own_bytes"] = {"mean_bytes": r["mean_bytes"], "mean_psnr": r["mean_psnr"], "fitted": r["fitted"],
                                  "lead_db": lead, "settings": avif.settings}


def _time_classic(codec, image, r) -> tuple[float, float]:
    import io

    from PIL import Image

    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    small = pil if r.scale == 1 else pil.resize((max(1, w // r.scale), max(1, h // r.scale)), Image.LANCZOS)
    t = time.perf_counter()
    for _ in range(3):
        data = codec.encode(small, r.quality)
    enc = (time.perf_counter() - t) / 3
    t = time.perf_counter()
    for _ in range(3):
        Image.open(io.BytesIO(data)).convert("RGB").load()
    return enc, (time.perf_counter() - t) / 3


def run_bench(image_dirs, models, out_dir, *, classic: bool = True, scaling: bool = False,
              threads: int | None = None, speed_frames: int = 128, refine: int = 0, flips: int = 0,
              device: str = "cpu", log=print) -> list[dict]:
    """Every model, then the classic codecs given the first model's bytes image by image; `refine` /
    `flips` encode every model with that search (its speed too), `device` runs the networks there."""
    import torch

    import compressor

    torch.set_num_threads(threads or os.cpu_count() or 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codecs = [compressor.load(m, device=device) for m in models]
    search = {"refine": refine, "flips": flips}
    facts = {}
    for c in codecs:
        t = time.time()
        speed = measure_speed(c.card.path, frames=speed_frames, repeats=3, threads=threads, device=device, **search)
        facts[c.name] = (speed, gflops_per_frame(c))
        log(f"{c.name}: {facts[c.name][1]:.2f} GFLOPs/frame, encode {speed['encode_fps']:.0f} frames/s, "
            f"decode {speed['decode_fps']:.0f} frames/s ({time.time() - t:.0f} s)")
    records = []
    visuals = {}
    for d in map(Path, image_dirs):
        files = expand_paths([d])
        frames = [to_rgb_array(f) for f in files]
        set_name = d.name
        set_records = [_model_record(c, set_name, files, frames, *facts[c.name], search) for c in codecs]
        if classic:
            t = time.time()
            budgets = [r["bytes"] for r in set_records[0]["per_image"]]
            classic_records = _classic_records(set_name, files, frames, budgets, set_records[0]["name"])
            _avif_at_own_bytes(set_records, classic_records, set_name, files, frames)
            set_records += classic_records
            log(f"{set_name}: classic codecs fitted in {time.time() - t:.0f} s")
        for r in set_records:
            if r["mean_psnr"] is not None:
                lead = (r.get("avif_at_own_bytes") or {}).get("lead_db")
                log(f"{set_name:>28} {r['name']:>20}: {r['mean_bytes']:7.1f} B  {r['mean_psnr']:6.2f} dB  "
                    f"MS-SSIM {r['mean_ms_ssim']:.4f}  ({r['fitted']}/{r['count']} fit)"
                    + ("" if lead is None else f"  {lead:+.2f} dB over bare AVIF at its bytes"))
            else:
                log(f"{set_name:>28} {r['name']:>20}: cannot fit the budget on any image")
        visuals[set_name] = (files, frames, set_records)
        records += set_records
    scaling_result = run_scaling(models, out, threads=threads, log=log) if scaling else None
    write_tables(out, records, scaling_result, models, image_dirs)
    plot_rd(out, records)
    plot_visual(out, visuals)
    return records
