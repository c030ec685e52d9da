"""The bench's outputs: results.json and results.md (tables), rd.png and visual.png (plots)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from compressor.checkpoint import warm_start_note
from compressor.device import cpu_name


def _fmt(v, spec: str) -> str:
    """A table cell: the value formatted, or a dash where there is none."""
    return "—" if v is None else format(v, spec)


def write_tables(out: Path, records, scaling_result, models, image_dirs) -> None:
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
    meta = {"command": "compressor bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "",
            "models": list(models), "images": [str(d) for d in image_dirs],
            "machine": f"{cpu_name()}, {os.cpu_count()} cores"}
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
    top_lead = {s: best([(by[m, s].get("avif_at_own_bytes") or {}).get("lead_db") for m in models if (m, s) in by])
                for s in sets}
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
            lead = None if q is None else (q.get("avif_at_own_bytes") or {}).get("lead_db")
            row.append("—" if q is None else f"{q['mean_bytes']:.1f} B, {cell(q['mean_psnr'], '.2f', top_psnr[s])} dB"
                       + ("" if lead is None else f", {cell(lead, '+.2f', top_lead[s])} vs AVIF"))
        row += [cell(r["encode_fps"], ".0f", top_enc), cell(r["decode_fps"], ".0f", top_dec)]
        e = exps.get(m)
        row.append(f"{cell(e['encode'], '.2f', top_exp['encode'])} / {cell(e['decode'], '.2f', top_exp['decode'])}"
                   if e else "—")
        t = r.get("training") or {}
        wall = t.get("wall_time_s") or 0
        wall_text = f"{wall / 3600:.1f} h" if wall >= 360 else f"{wall:.0f} s"  # a GPU run's 80 s is not "0.0 h"
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
    return lines + ["", "Bold: best among the models. \"vs AVIF\": dB over bare AVIF given the model's own bytes, "
                    "image by image (models whose coders shrink their files differently compare fairly only so). "
                    "Classic rows: the best codec that fits every image's budget (the first model's bytes)."
                    + (f" Classic settings: {settings_text}." if settings_text else ""), ""]


def plot_rd(out: Path, records) -> None:
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


def plot_visual(out: Path, visuals, per_set: int = 2) -> None:
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
