"""`compressor bench`: every model and the classic codecs side by side, written as JSON, markdown and plots.

    OUT/results.json   one record per (model or codec, image set): bytes, bpp, PSNR, MS-SSIM, speed,
                       parameters and GFLOPs (models), and per-image bytes, PSNR and MS-SSIM
    OUT/results.md     the tables
    OUT/rd.png         mean PSNR against mean bytes, one panel per image set
    OUT/visual.png     the same frames decoded by each model and codec, labelled with bytes and PSNR
    OUT/scaling.*      with --scaling: encode/decode time and peak memory against pixel count (log-log)

Classic codecs get, image by image, at most the bytes of the first model's file for that image.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from compressor.checkpoint import warm_start_note
from compressor.evaluate import expand_paths, measure_speed
from compressor.images import to_rgb_array
from compressor.metrics import ms_ssim, psnr

SCALING_SIZES = ((128, 256), (256, 512), (512, 1024), (1024, 2048))


def gflops_per_frame(codec, size=(128, 256)) -> float:
    """Encoder + decoder GFLOPs for one frame, counted by PyTorch's FlopCounterMode (2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, *size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        y = codec.model.encoder(codec.model.pad(x))
        codec.model.decoder(torch.sign(y))
    return counter.get_total_flops() / 1e9


def _model_record(codec, set_name, files, frames, speed, flops) -> dict:
    datas = codec.encode_batch(frames)
    decoded = codec.decode_batch_arrays(datas)
    per_image = [
        {"file": f.name, "bytes": len(d), "psnr": psnr(a, b), "ms_ssim": ms_ssim(a, b)}
        for f, d, a, b in zip(files, datas, frames, decoded)
    ]
    return {
        "name": codec.name, "kind": "model", "images": set_name, "count": len(files),
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
    from compressor.classic import fit_modes

    codec, image, budget, modes = args
    return fit_modes(codec, image, budget, modes)


def _classic_records(set_name, files, frames, budgets, reference, workers=None) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor

    from compressor.classic import available_codecs

    records = []
    workers = workers or os.cpu_count() or 1
    for codec in available_codecs():
        modes = ("file", "bare") if codec.has_bare else ("file",)
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
              threads: int | None = None, speed_frames: int = 128, log=print) -> list[dict]:
    import torch

    import compressor

    torch.set_num_threads(threads or os.cpu_count() or 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codecs = [compressor.load(m) for m in models]
    facts = {}
    for c in codecs:
        t = time.time()
        speed = measure_speed(c.card.path, frames=speed_frames, repeats=3, threads=threads)
        facts[c.name] = (speed, gflops_per_frame(c))
        log(f"{c.name}: {facts[c.name][1]:.2f} GFLOPs/frame, encode {speed['encode_fps']:.0f} frames/s, "
            f"decode {speed['decode_fps']:.0f} frames/s ({time.time() - t:.0f} s)")
    records = []
    visuals = {}
    for d in map(Path, image_dirs):
        files = expand_paths([d])
        frames = [to_rgb_array(f) for f in files]
        set_name = d.name
        set_records = [_model_record(c, set_name, files, frames, *facts[c.name]) for c in codecs]
        if classic:
            t = time.time()
            budgets = [r["bytes"] for r in set_records[0]["per_image"]]
            set_records += _classic_records(set_name, files, frames, budgets, codecs[0].name)
            log(f"{set_name}: classic codecs fitted in {time.time() - t:.0f} s")
        for r in set_records:
            if r["mean_psnr"] is not None:
                log(f"{set_name:>28} {r['name']:>20}: {r['mean_bytes']:7.1f} B  {r['mean_psnr']:6.2f} dB  "
                    f"MS-SSIM {r['mean_ms_ssim']:.4f}  ({r['fitted']}/{r['count']} fit)")
            else:
                log(f"{set_name:>28} {r['name']:>20}: cannot fit the budget on any image")
        visuals[set_name] = (files, frames, set_records)
        records += set_records
    scaling_result = run_scaling(models, out, threads=threads, log=log) if scaling else None
    _write(out, records, scaling_result, models, image_dirs)
    _plot_rd(out, records)
    _plot_visual(out, visuals)
    return records


def _fmt(v, spec: str) -> str:
    """A table cell: the value formatted, or a dash where there is none."""
    return "—" if v is None else format(v, spec)


def _write(out: Path, records, scaling_result, models, image_dirs) -> None:
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
    meta = {"command": "compressor bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "",
            "models": list(models), "images": [str(d) for d in image_dirs],
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "records": clean, "scaling": scaling_result},
                                                 indent=1, default=float))
    lines = [f"Produced by `{meta['command']}` on {meta['machine']}.", ""]
    lines += _summary_table(clean, scaling_result)
    for set_name in dict.fromkeys(r["images"] for r in clean):
        lines += [f"### {set_name}", "",
                  "| codec | mean bytes | bpp | PSNR (dB) | MS-SSIM | encode fps | decode fps | params | GFLOPs | fit |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in clean if r["images"] == set_name):
            params = f"{r['params'] / 1e6:.2f}M" if r.get("params") else ""
            gflops = _fmt(r.get("gflops"), ".2f") if r.get("gflops") else ""
            lines.append(f"| {r['name']} | {_fmt(r['mean_bytes'], '.1f')} | {_fmt(r['mean_bpp'], '.4f')} | "
                         f"{_fmt(r['mean_psnr'], '.2f')} | {_fmt(r['mean_ms_ssim'], '.4f')} | {_fmt(r['encode_fps'], '.0f')} | "
                         f"{_fmt(r['decode_fps'], '.0f')} | {params} | {gflops} | {r['fitted']}/{r['count']} |")
        lines.append("")
    if scaling_result:
        lines += ["### Resolution scaling (batch 1)", "", "| model | size | encode s | decode s | peak MB |",
                  "|---|---|---|---|---|"]
        for m, rows in scaling_result["models"].items():
            for row in rows:
                lines.append(f"| {m} | {row['size']} | {row['encode_s']:.3f} | {row['decode_s']:.3f} | "
                             f"{row['peak_mb']:.0f} |")
            e = scaling_result["exponents"][m]
            lines.append(f"| {m} | fitted exponent (time ~ pixels^k) | {e['encode']:.2f} | {e['decode']:.2f} | |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))


def _summary_table(records, scaling_result) -> list[str]:
    """One row per model: size, cost, quality on every set, speed, scaling and training; best in bold.

    Two reference rows give, per set, the best classic codec as a real file and as a bare bitstream
    at the same per-image budget, so "does it beat the classic codecs" reads off one table.
    """
    sets = list(dict.fromkeys(r["images"] for r in records))
    models = list(dict.fromkeys(r["name"] for r in records if r["kind"] == "model"))
    by = {(r["name"], r["images"]): r for r in records}
    exps = (scaling_result or {}).get("exponents", {})

    def best(values, highest=True):
        known = [v for v in values if v is not None]
        return (max if highest else min)(known) if known else None

    def cell(v, spec, top):
        return f"**{_fmt(v, spec)}**" if v is not None and len(models) > 1 and v == top else _fmt(v, spec)

    first = {m: next(r for r in records if r["name"] == m) for m in models}
    top_psnr = {s: best([by[m, s]["mean_psnr"] for m in models if (m, s) in by]) for s in sets}
    top_enc = best([first[m]["encode_fps"] for m in models])
    top_dec = best([first[m]["decode_fps"] for m in models])
    top_exp = {k: best([exps.get(m, {}).get(k) for m in models], highest=False) for k in ("encode", "decode")}
    head = ["model", "encoder / decoder", "params", "GFLOPs/frame"]
    head += [f"{s}: bytes, PSNR" for s in sets]
    head += ["encode fps", "decode fps", "time ~ pixels^k (enc / dec)", "training"]
    lines = ["### Architectures", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        r = first[m]
        arch = r.get("architecture") or {}
        row = [m, f"{arch.get('encoder', '?')} / {arch.get('decoder', '?')}", f"{r['params'] / 1e6:.2f}M",
               f"{r['gflops']:.2f}"]
        for s in sets:
            q = by.get((m, s))
            row.append("—" if q is None else f"{q['mean_bytes']:.1f} B, {cell(q['mean_psnr'], '.2f', top_psnr[s])} dB")
        row += [cell(r["encode_fps"], ".0f", top_enc), cell(r["decode_fps"], ".0f", top_dec)]
        e = exps.get(m)
        row.append(f"{cell(e['encode'], '.2f', top_exp['encode'])} / {cell(e['decode'], '.2f', top_exp['decode'])}"
                   if e else "—")
        t = r.get("training") or {}
        wall = t.get("wall_time_s") or 0
        wall_text = f"{wall / 3600:.1f} h" if wall >= 360 else f"{wall:.0f} s"  # a lent GPU's 80 s is not "0.0 h"
        row.append(f"{t['steps']} steps x {t['batch_size']}, {wall_text} ({t['hardware']}){warm_start_note(t)}"
                   if t.get("steps") and t.get("wall_time_s") else "—")
        lines.append("| " + " | ".join(row) + " |")
    for mode in ("file", "bare"):
        row = [f"best classic ({mode})", "", "", ""]
        for s in sets:
            cands = [r for r in records if r["kind"] == "classic" and r["images"] == s and r["name"].endswith(f"({mode})")
                     and r["mean_psnr"] is not None and r["fitted"] == r["count"]]
            top = max(cands, key=lambda r: r["mean_psnr"], default=None)
            row.append("—" if top is None else
                       f"{top['name'].split(' (')[0]}: {top['mean_bytes']:.1f} B, {top['mean_psnr']:.2f} dB")
        lines.append("| " + " | ".join(row + ["", "", "", ""]) + " |")
    settings = {r["name"].split(" (")[0]: r.get("settings") for r in records if r["kind"] == "classic"}
    settings_text = "; ".join(f"{name} {json.dumps(v, sort_keys=True)}" for name, v in settings.items() if v)
    return lines + ["", "Bold: best among the models. Classic rows: the best codec that fits every image's budget."
                    + (f" Classic settings: {settings_text}." if settings_text else ""), ""]


def _plot_rd(out: Path, records) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["images"] for r in records))
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for r in (r for r in records if r["images"] == s and r["mean_psnr"] is not None):
            marker = "o" if r["kind"] == "model" else ("s" if "file" in r["name"] else "^")
            ax.scatter(r["mean_bytes"], r["mean_psnr"], marker=marker, s=50)
            ax.annotate(r["name"], (r["mean_bytes"], r["mean_psnr"]), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
        ax.set_title(s)
        ax.set_xlabel("mean bytes per image")
        ax.set_ylabel("mean PSNR (dB)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "rd.png", dpi=120)
    plt.close(fig)


def _plot_visual(out: Path, visuals, per_set: int = 2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for set_name, (files, frames, recs) in visuals.items():
        for i in range(min(per_set, len(files))):
            rows.append((set_name, files[i], frames[i], recs, i))
    if not rows:
        return
    cols = 1 + max(len([r for r in recs if "bare" not in r["name"]]) for *_, recs, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 1.5 * len(rows) + 0.3), squeeze=False)
    for row, (set_name, f, frame, recs, i) in zip(axes, rows):
        row[0].imshow(frame)
        row[0].set_title(f"{f.name} original", fontsize=7)
        for ax, r in zip(row[1:], [r for r in recs if "bare" not in r["name"]]):
            img = r["_decoded"][i]
            p = r["per_image"][i]
            if img is None:
                ax.text(0.5, 0.5, f"{r['name']}\ncannot fit", ha="center", va="center", fontsize=7)
            else:
                ax.imshow(img)
                ax.set_title(f"{r['name']}: {p['bytes']} B, {p['psnr']:.2f} dB", fontsize=7)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "visual.png", dpi=110)
    plt.close(fig)


# Peak memory comes from Linux's VmHWM, reset after the model loads. getrusage's ru_maxrss survives
# exec, so a child of a big process (the bench itself) would report the parent's peak, and 0 MB here.
_SCALING_CHILD = """
import json, resource, sys, time, numpy as np, torch
import compressor

def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

torch.set_num_threads(int(sys.argv[4]))
codec = compressor.load(sys.argv[1])
h, w = int(sys.argv[2]), int(sys.argv[3])
frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak resident set := current resident set
    base, peak_kb = status_kb("VmRSS"), lambda: status_kb("VmHWM")
except OSError:  # not Linux: the process's own peak, which is right for a small parent
    base, peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
enc, dec = [], []
for _ in range(int(sys.argv[5])):
    t = time.perf_counter(); data = codec.encode(frame); enc.append(time.perf_counter() - t)
    t = time.perf_counter(); codec.decode_batch_arrays([data]); dec.append(time.perf_counter() - t)
print(json.dumps({"encode_s": sorted(enc)[len(enc) // 2], "decode_s": sorted(dec)[len(dec) // 2],
                  "peak_mb": (peak_kb() - base) / 1024}))
"""


def run_scaling(models, out: Path, *, threads=None, sizes=SCALING_SIZES, log=print) -> dict:
    """Encode/decode time (median of 3, batch 1) and peak memory per size, each in a fresh process."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"sizes": [f"{h}x{w}" for h, w in sizes], "models": {}, "exponents": {},
              "setting": f"batch 1, {threads or os.cpu_count()} threads, CPU; peak memory above the loaded model"}
    for m in models:
        rows = []
        for h, w in sizes:
            repeats = 3 if h * w <= 512 * 1024 else 1
            r = subprocess.run([sys.executable, "-c", _SCALING_CHILD, str(m), str(h), str(w),
                                str(threads or os.cpu_count()), str(repeats)], capture_output=True, text=True)
            if r.returncode != 0:
                log(f"scaling {m} {h}x{w}: failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
                continue
            row = {"size": f"{h}x{w}", "pixels": h * w, **json.loads(r.stdout)}
            rows.append(row)
            log(f"scaling {m} {h}x{w}: encode {row['encode_s']:.3f} s, decode {row['decode_s']:.3f} s, "
                f"peak {row['peak_mb']:.0f} MB")
        result["models"][str(m)] = rows
        if len(rows) >= 2:
            px = np.log([r["pixels"] for r in rows])
            result["exponents"][str(m)] = {k: float(np.polyfit(px, np.log([r[f"{k}_s"] for r in rows]), 1)[0])
                                           for k in ("encode", "decode")}
    _plot_scaling(out, result)
    (out / "scaling.json").write_text(json.dumps(result, indent=1))
    return result


def _plot_scaling(out: Path, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m, rows in result["models"].items():
        if not rows:
            continue
        px = [r["pixels"] for r in rows]
        for ax, k in zip(axes, ("encode", "decode")):
            e = result["exponents"].get(m, {}).get(k)
            ax.loglog(px, [r[f"{k}_s"] for r in rows], "o-", label=f"{m} (k={e:.2f})" if e else m)
    for ax, k in zip(axes, ("encode", "decode")):
        ax.set_title(f"{k} time vs pixels (batch 1)")
        ax.set_xlabel("pixels")
        ax.set_ylabel("seconds")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)
    plt.close(fig)
