"""Probe: what the frozen encoder's latent magnitudes carry for the decoder: more levels per element
without training the encoder (an A/B at equal data, steps and time against the binary latent).

    y = encoder(x), frozen (the shipped default's)                                  (B, 14, 8, 16)
    arms, each a fine-tune of the shipped decoder on its own input, the same steps and frames:
      binary        sign(y)                                     the shipped latent: the control
      levels q      sign(y) * (1 + A) where |y| > t_c, else sign(y) * (1 - A)
                    t_c the q-quantile of channel c's |y| on the training frames: one more bit an
                    element, 1 with probability 1 - q
      continuous    y / mean |y_c|                              no quantisation: what the magnitudes
                                                                could give at any rate (an upper bound)

Each arm's PSNR on the evaluation frame sets, and its bytes: the shipped `.bin` files (the binary code
under the context net) plus, for "levels", the extra bits' cost under a per-channel probability
(h(1 - q) bits an element: the extra bit's ideal cost with no context). "net" prices the change at
bare AVIF's own trade near 200 B, about 2 dB per doubling of bytes: PSNR gain - 2 log2(bytes / shipped).

    python docs/scripts/magnitude_probe.py --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from compressor.metrics import psnr

from net_rate_probe import fine_tune_decoder, load_probe, probe_parser  # this folder's sibling probe

A = 0.5  # the two magnitudes of a sign: 1 - A and 1 + A
AVIF_DB_PER_DOUBLING = 2.0


def entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else float(-p * np.log2(p) - (1 - p) * np.log2(1 - p))


def latents(model, frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> the frozen encoder's float latent (N, C, h, w), bf16 as the codec encodes."""
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(frames), 64):
            x = torch.from_numpy(frames[i : i + 64]).permute(0, 3, 1, 2).float() / 255
            out.append(model.encoder(model.pad(x)).float())
    return torch.cat(out)


def decoder_input(y: torch.Tensor, arm: str, scale: torch.Tensor, thresholds: dict) -> torch.Tensor:
    """The latent (B, C, h, w) as the arm gives it to the decoder."""
    sign = torch.where(y >= 0, 1.0, -1.0)  # the codec's rule: 0 codes as 1
    if arm == "binary":
        return sign
    if arm == "continuous":
        return y / scale
    big = y.abs() > thresholds[arm]  # (B, C, h, w) vs (1, C, 1, 1)
    return sign * torch.where(big, 1 + A, 1 - A)


def evaluate(model, sets, arm, scale, thresholds) -> list[float]:
    out = []
    for frames in sets:
        y = latents(model, frames)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            rec = model.decoder(decoder_input(y, arm, scale, thresholds)).float().clamp(0, 1)
        decoded = (rec * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()[:, : frames.shape[1], : frames.shape[2]]
        out.append(float(np.mean([psnr(a, d) for a, d in zip(frames, decoded)])))
    return out


def main() -> None:
    ap = probe_parser(steps=400, lr=2e-5)
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.5, 0.9])
    args = ap.parse_args()
    codec, frames, sets = load_probe(args)
    model = codec.model
    shipped_bytes = [float(np.mean([len(b) for b in codec.encode_batch(list(s))])) for s in sets]
    y_train = latents(model, frames)  # (N, C, h, w)
    magnitude = y_train.abs().transpose(0, 1).reshape(y_train.shape[1], -1)  # (C, N*h*w)
    scale = magnitude.mean(1).view(1, -1, 1, 1)
    thresholds = {f"levels {q:g}": torch.quantile(magnitude, q, dim=1).view(1, -1, 1, 1) for q in args.quantiles}
    arms = ["binary", *thresholds, "continuous"]
    extra_bits = {arm: entropy(1 - q) * y_train[0].numel() for arm, q in zip(thresholds, args.quantiles)}
    decoder0 = copy.deepcopy(model.decoder.state_dict())
    for p in model.parameters():
        p.requires_grad_(False)
    print(f"{len(frames)} training frames; shipped files {', '.join(f'{b:.1f}' for b in shipped_bytes)} B")
    print("| arm | " + " | ".join(f"set {k}: PSNR @ bytes, net" for k in range(len(sets))) + " | seconds |")
    print("|---|" + "---|" * (len(sets) + 1))
    control = None
    for arm in arms:
        def decoder_in(idx, x, mirrored, arm=arm):
            y = y_train[idx]
            if mirrored:
                with torch.no_grad():
                    y = model.encoder(model.pad(x)).float()
            return decoder_input(y, arm, scale, thresholds)

        seconds = fine_tune_decoder(model, decoder0, frames, args.steps, args.lr, args.batch, decoder_in)
        scores = evaluate(model, sets, arm, scale, thresholds)
        control = control or scores
        cells = []
        for p, p0, b0 in zip(scores, control, shipped_bytes):
            if arm == "continuous":
                cells.append(f"{p:.3f} (+{p - p0:.3f}; any rate)")
                continue
            b = b0 + extra_bits.get(arm, 0.0) / 8
            cells.append(f"{p:.3f} @ {b:.1f}, {p - p0 - AVIF_DB_PER_DOUBLING * np.log2(b / b0):+.3f}")
        print(f"| {arm} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)
    model.decoder.load_state_dict(decoder0)


if __name__ == "__main__":
    main()
