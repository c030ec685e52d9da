"""Probe: do equally good encoder-side searches find the same code? And the distillation A/B it led to.

    python docs/scripts/search_ties_probe.py ties [--model vit.default]
        `--refine 30` (refine_symbols) four times on the same frames (the 24 kodak-frames and the first 24
        driving-frames): from the model's latent at start scales 0.25 (the card's), 0.20 and 0.30, and
        at 0.25 from the latent plus N(0, 0.5^2). Prints each search's PSNR and the bits it flips, how
        far each pair agrees, and the PSNR of the code that flips the bits at least k of the 4 flipped.
    python docs/scripts/search_ties_probe.py graft RELEASE... [--model vit.default]
        Scores releases whose encoder was distilled against this model's frozen decoder (`compressor
        train --set freeze_decoder=true --set distill_refine=...`, whose export drops the context coding)
        as the model codes: each release's encoder in the model's codec, with its context net and snap,
        plain encoding, bytes and PSNR on both evaluation frame sets.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import compressor
from compressor.context_fit import load_frames
from compressor.metrics import psnr
from compressor.search import refine_symbols
from compressor.training.data import find_images

EVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval"
SETS = (EVAL / "kodak-frames-128x256", EVAL / "driving-frames-128x256")


def mean_psnr(codec, frames: np.ndarray, symbols: np.ndarray) -> float:
    decoded = codec.frames_from_symbols(symbols.astype(np.uint8), frames.shape[1:3])
    return float(np.mean([psnr(a, b) for a, b in zip(frames, decoded)]))


def ties(codec) -> None:
    m = codec.model
    frames = np.concatenate([load_frames(find_images([str(SETS[0])])), load_frames(find_images([str(SETS[1])]))[:24]])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (48, 3, 128, 256)
    with torch.no_grad():
        z = m.encode_latent(m.pad(x)).float()  # (48, 14, 8, 16)
    plain = (z > 0).numpy().astype(np.uint8)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0)) * 0.5
    runs = {}
    for name, start, scale in (("0.25", z, 0.25), ("0.20", z, 0.20), ("0.30", z, 0.30), ("0.25 + noise", z + noise, 0.25)):
        code = refine_symbols(m, x, steps=30, start=start, start_scale=scale).numpy()
        runs[name] = code
        print(f"start {name}: {mean_psnr(codec, frames, code):.3f} dB, {np.mean(code != plain):.4f} of the bits flipped",
              flush=True)
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            fa, fb = runs[a] != plain, runs[b] != plain
            print(f"{a} and {b}: {np.mean(runs[a] == runs[b]):.4f} of the bits agree; of the bits either flips, "
                  f"both flip {np.sum(fa & fb) / np.sum(fa | fb):.3f}")
    count = np.stack([c != plain for c in runs.values()]).sum(0)
    print(f"plain: {mean_psnr(codec, frames, plain):.3f} dB")
    for k in (1, 2, 3, 4):
        code = np.where(count >= k, 1 - plain, plain)
        print(f"flipped where at least {k} of 4 searches flip: {mean_psnr(codec, frames, code):.3f} dB, "
              f"{np.mean(count >= k):.4f} of the bits")


def graft(codec, releases) -> None:
    from compressor.checkpoint import read_tensors

    seed = {k: v.clone() for k, v in codec.model.encoder.state_dict().items()}
    for name in ["(the model itself)", *releases]:
        if name != "(the model itself)":
            tensors, _ = read_tensors(name)
            codec.model.encoder.load_state_dict({k[len("encoder."):]: v.float() for k, v in tensors.items()
                                                 if k.startswith("encoder.")})
        scores = []
        for d in SETS:
            frames = list(load_frames(find_images([str(d)])))
            datas = codec.encode_batch(frames)
            decoded = codec.decode_batch_arrays(datas)
            scores.append(f"{d.name}: {np.mean([psnr(a, b) for a, b in zip(frames, decoded)]):.3f} dB @ "
                          f"{np.mean([len(b) for b in datas]):.1f} B")
        print(f"{name}: " + ", ".join(scores), flush=True)
    codec.model.encoder.load_state_dict(seed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("ties", "graft"))
    ap.add_argument("releases", nargs="*")
    ap.add_argument("--model", default="vit.default")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codec = compressor.load(args.model)
    ties(codec) if args.what == "ties" else graft(codec, args.releases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
