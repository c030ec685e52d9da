"""A run's pictures: curves.png (loss, PSNR, bpp against steps) and reconstructions.png of validation frames."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from compressor.metrics import psnr_batch


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_curves(run_dir: Path) -> None:
    """curves.png from the run's metrics.jsonl (nothing if it has no rows yet)."""
    plt = _pyplot()
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    if not rows:
        return
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    steps = [r["step"] for r in rows]
    axes[0].plot(steps, [r["psnr"] for r in rows], label="train")
    val = [r for r in rows if "val_psnr" in r]
    axes[0].plot([r["step"] for r in val], [r["val_psnr"] for r in val], "o-", label="validation")
    axes[0].set_ylabel("PSNR (dB)")
    axes[0].legend()
    axes[1].plot(steps, [r["bpp"] for r in rows])
    axes[1].set_ylabel("bits per pixel (estimated)")
    axes[2].semilogy(steps, [r["loss"] for r in rows])
    axes[2].set_ylabel("loss")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "curves.png", dpi=100)
    plt.close(fig)


def plot_reconstructions(run_dir: Path, model, val: torch.Tensor, device, step: int) -> None:
    """reconstructions.png: the first four validation frames (V, 3, H, W) beside the model's output."""
    plt = _pyplot()
    with torch.no_grad():
        model.eval()
        x = val[:4].to(device)
        rec = model(x)["reconstruction"].float().clamp(0, 1).cpu()
        model.train()
    fig, axes = plt.subplots(len(x), 2, figsize=(7, 1.9 * len(x)), squeeze=False)
    for i in range(len(x)):
        for j, img in enumerate((x[i].cpu(), rec[i])):
            axes[i][j].imshow(img.permute(1, 2, 0).numpy())
            axes[i][j].axis("off")
        axes[i][1].set_title(f"step {step}: {psnr_batch(rec[i:i + 1], x[i:i + 1].cpu()).item():.2f} dB", fontsize=8)
    fig.tight_layout()
    fig.savefig(run_dir / "reconstructions.png", dpi=100)
    plt.close(fig)
