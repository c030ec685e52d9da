"""How encode and decode cost grows with resolution: time and peak memory per image size, per model.

Each (model, size) runs in a fresh process (`python -m compressor.measure.scaling MODEL H W THREADS
REPEATS`, which prints one JSON line), so its peak memory is its own: one process measuring every size
would report the largest size's peak for all of them, and the bench's own data would count too.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCALING_SIZES = ((128, 256), (256, 512), (512, 1024), (1024, 2048))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure_one(model: str, height: int, width: int, threads: int, repeats: int) -> dict:
    """This process's median encode and decode seconds (batch 1) and peak MB above the loaded model."""
    import torch

    import compressor

    torch.set_num_threads(threads)
    codec = compressor.load(model)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    # Peak memory comes from Linux's VmHWM, reset after the model loads. getrusage's ru_maxrss survives
    # exec, so a child of a big process (the bench itself) would report the parent's peak, and 0 MB here.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak resident set := current resident set
        base, peak_kb = _status_kb("VmRSS"), lambda: _status_kb("VmHWM")
    except OSError:  # not Linux: the process's own peak, which is right for a small parent
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_kb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
    enc, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        data = codec.encode(frame)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        codec.decode_batch_arrays([data])
        dec.append(time.perf_counter() - t)
    return {"encode_s": sorted(enc)[len(enc) // 2], "decode_s": sorted(dec)[len(dec) // 2],
            "peak_mb": (peak_kb() - base) / 1024}


def fitted_exponent(pixels, seconds) -> float:
    """k in seconds ~ pixels^k: the least-squares slope in log-log."""
    return float(np.polyfit(np.log(pixels), np.log(seconds), 1)[0])


def run_scaling(models, out: Path, *, threads=None, sizes=SCALING_SIZES, log=print) -> dict:
    """Encode/decode time (median of 3, batch 1) and peak memory per size, each in a fresh process."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"sizes": [f"{h}x{w}" for h, w in sizes], "models": {}, "exponents": {},
              "setting": f"batch 1, {threads or os.cpu_count()} threads, CPU; peak memory above the loaded model"}
    for m in models:
        rows = []
        for h, w in sizes:
            repeats = 3 if h * w <= 512 * 1024 else 1
            r = subprocess.run([sys.executable, "-m", "compressor.measure.scaling", str(m), str(h), str(w),
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
            px = [r["pixels"] for r in rows]
            result["exponents"][str(m)] = {k: fitted_exponent(px, [r[f"{k}_s"] for r in rows])
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


if __name__ == "__main__":  # one (model, size) in this fresh process: its JSON line on stdout
    model, h, w, threads, repeats = sys.argv[1], *map(int, sys.argv[2:6])
    print(json.dumps(measure_one(model, h, w, threads, repeats)))
