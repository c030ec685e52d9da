"""Encoder-side search: look, frame by frame, for a binary code this decoder reconstructs better.

The encoder is a fast, amortized guess at the code. Two searches improve on it, each spending decoder
forward and backward passes per frame; neither changes the file format or the decoder, and each keeps,
frame by frame, the best hard code it has seen, the encoder's own included, so a searched frame is
never worse than the plain encoder's (as the decoder is run at decode time: same precision, same attention
path, so the scores are decoding's own).

- `refine_symbols` (`refine=N`) treats the code as free variables: starting from the encoder's
  real-valued output, it takes N Adam steps on the reconstruction error through the decoder, with a
  straight-through sign (forward: sign, backward: identity). Slow to start, it goes furthest: with 30
  steps `compressor speed --refine 30` measured 2.1 frames/s for vit and 2.7 for convnext (batch 32,
  128x256, 2 threads), against 184 and 75 plain (3.2 for vit-distil2-ft since the decoder passes run
  on the CPU attention path).
- `flip_symbols` (`flips=R`) takes R greedy rounds: one gradient at the current code ranks, to first
  order, the bits the encoder is least sure of, and the best of them are flipped. It gains more than
  Adam for up to about five passes and then stops gaining.

Both are opt-in: `encode(..., refine=30)` or `encode(..., flips=3)`; `compress --refine 30 | --flips 3`.
Clip archives take the flips (`flip_clip_symbols`, `compress clip.mp4 clip.bin --flips 3 --rate-weight W`).
"""
from __future__ import annotations

import math

import torch

from compressor.bottleneck import hard_sign, symbols_from_latent
from compressor.layers import cpu_attention_path
from compressor.tiling import Tiling


def _decode_keeping_best(model, code: torch.Tensor, hard: torch.Tensor, x: torch.Tensor, best: torch.Tensor,
                         best_err: torch.Tensor, *, bf16: bool, tiling: Tiling | None,
                         penalty: torch.Tensor | None = None) -> torch.Tensor:
    """One search pass: decode `code` (B, C, gh, gw) as decode will run it (precision, attention path),
    cropped to x's size, and where the frame's error (plus `penalty` (B,), a rate-aware search's
    weighted bits) beats `best_err`, keep the hard code `hard` in `best` (both updated in place).

    Scored as decode produces it (clamped); returned unclamped (B, 3, H, W) for the gradient, or pixels
    pushed past 0 or 1 would stop pulling.
    """
    h, w = x.shape[-2:]
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16), cpu_attention_path():
        out = model.decode_latent(code, tiling)[..., :h, :w].float()  # (B, 3, H, W)
    with torch.no_grad():
        err = (out.clamp(0, 1) - x).pow(2).mean(dim=(1, 2, 3))
        if penalty is not None:
            err = err + penalty
        better = err < best_err
        best[better] = hard[better]
        best_err.copy_(torch.where(better, err, best_err))
    return out


# On the encoder's output scale, decayed to 0 along a cosine: on 8 kodak frames with vit (30 steps)
# +0.58 dB against +0.46 dB at a constant 0.1; 60 steps +0.71 dB, 100 steps +0.72 dB.
DEFAULT_LR = 0.05


def refine_symbols(model, images: torch.Tensor, *, steps: int, bf16: bool = False, lr: float = DEFAULT_LR,
                   tiling: Tiling | None = None, start: torch.Tensor | None = None, start_scale: float = 1.0,
                   rate=None, rate_weight: float = 0.0):
    """(B, 3, H, W) in [0, 1] -> uint8 symbols (B, C, gh, gw), refined by `steps` gradient steps.

    With `tiling`, encoder and decoder run window by window, as the codec will run them (`compressor.tiling`).
    `start` is the real-valued latent (B, C, gh, gw) to search from, instead of the model's encoder's
    (distillation starts from a frozen teacher encoder while the model's own one trains).
    `start_scale` multiplies that latent before the search: the step size (`lr`) is set for latents of
    `vit-long2`'s scale (median |y| 5.3), and an encoder with larger margins leaves the search few bits it
    can flip (`vit-distil`, median 13.7, on kodak-frames at 30 steps: 22.84 dB at 1, 22.98 at 0.5, 23.05 at
    0.25). The codec reads it from the model card's `refine_start_scale` (default 1).

    With `rate`, a differentiable code length (signed code (B, C, gh, gw) in {-1, +1} -> bits (B,), such
    as a context net's float twin) and `rate_weight` (squared error per bit, on the per-frame mean MSE's
    scale, as `flip_symbols` has it), the steps descend error + rate_weight * bits, the rate's gradient
    reaching the code through the same straight-through sign, and the kept code is the best by that sum.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x = images.clone()  # a normal tensor: autograd refuses inference-mode tensors
        with torch.no_grad():
            z = (model.encode_latent(model.pad(x), tiling) if start is None else start).float()  # (B, C, gh, gw)
            z = z * start_scale  # signs, and so the starting code, unchanged
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        best = torch.empty_like(z, requires_grad=False)
        best_err = torch.full((x.shape[0],), float("inf"), device=x.device)
        for step in range(steps + 1):
            hard = hard_sign(z.detach())  # (B, C, gh, gw) in {-1, +1}
            code = hard + z - z.detach()  # forward: the hard code; backward: identity
            bits = None if rate is None else rate_weight * rate(code)  # (B,) weighted, differentiable in z
            # Step 0 scores the encoder's own code.
            out = _decode_keeping_best(model, code, hard, x, best, best_err, bf16=bf16, tiling=tiling,
                                       penalty=None if bits is None else bits.detach())
            if step == steps:
                break
            for group in opt.param_groups:  # cosine decay to 0: the last steps settle the code
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = (out - x).pow(2).mean(dim=(1, 2, 3)).sum() + (0 if bits is None else bits.sum())
            (z.grad,) = torch.autograd.grad(loss, [z])
            opt.step()
    return symbols_from_latent(best)


# Of each frame's bits, the share the encoder is least sure of (smallest |y|) that a flip may touch,
# and the share flipped per round. The first-order gain picks the right bits only among uncertain ones:
# vit-distil on kodak-frames, one round of 0.9% of the bits: 22.51 -> 22.68 dB among the 10% least
# sure, 22.02 dB among all bits (the linearisation misjudges a flip of a confident bit).
FLIP_CANDIDATES = 0.1
FLIP_SHARE = 16 / 1792


def flip_symbols(model, images: torch.Tensor, *, rounds: int, bf16: bool = False, tiling: Tiling | None = None,
                 latent: torch.Tensor | None = None, candidates: float = FLIP_CANDIDATES,
                 share: float = FLIP_SHARE, rate=None, rate_weight: float = 0.0) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> uint8 symbols (B, C, gh, gw), improved by `rounds` greedy flip rounds.

    Each round runs the decoder forward and backward once on the current hard code, estimates to first
    order how much flipping each bit would lower the frame's squared error (2 * grad * bit), and flips,
    per frame, the `share` of its bits with the largest positive estimate among those still allowed: the
    `candidates` share with the smallest |latent|, each bit at most once. A last forward pass scores the
    final code, and each frame keeps the best code seen, the encoder's own included, scored as decode
    produces it: never worse than plain encoding. `latent` is the encoder's real-valued output (B, C,
    gh, gw) to start from, as the codec computed it (so the starting code is the plain file's code);
    None runs the encoder here in float32.

    Against Adam refinement (`refine_symbols`) at equal decoder passes, on kodak-frames with `vit-distil`:
    3 rounds 22.79 dB (Adam, 3 steps: 22.68), 5 rounds 22.82 (22.76); past about 5 rounds it stops
    gaining while Adam goes on (10 steps: 22.87, 30 steps: 23.04).

    With `rate` (a `context_rate.ContextRate`) and `rate_weight` (squared error per bit, on the
    per-frame mean MSE's scale), the search minimises error + rate_weight * bits under the context
    tables: a flip's estimate subtracts its exact change in bits, and the kept code is the best by the
    same sum. It finds codes the tables make cheaper where the image does not need the bits.
    """
    if not 0 < candidates <= 1 or not 0 < share <= 1:
        raise ValueError("candidates and share must lie in (0, 1]")
    with torch.inference_mode(False), torch.enable_grad():
        x = images.clone()  # a normal tensor: autograd refuses inference-mode tensors
        with torch.no_grad():
            y = (model.encode_latent(model.pad(x), tiling) if latent is None else latent.clone()).float()
        code = hard_sign(y)  # (B, C, gh, gw) in {-1, +1}
        margin = y.abs().flatten(1)  # (B, bits)
        bits = margin.shape[1]
        threshold = margin.kthvalue(max(1, round(candidates * bits)), dim=1, keepdim=True).values  # (B, 1)
        allowed = margin <= threshold  # (B, bits)
        k = max(1, round(share * bits))
        best = code.clone()
        best_err = torch.full((x.shape[0],), float("inf"), device=x.device)
        for step in range(rounds + 1):
            current = code.detach().requires_grad_(step < rounds)
            symbols = symbols_from_latent(code)
            penalty = None if rate is None else rate_weight * rate.bits(symbols)  # (B,)
            out = _decode_keeping_best(model, current, code, x, best, best_err, bf16=bf16, tiling=tiling,
                                       penalty=penalty)
            if step == rounds:
                break
            (grad,) = torch.autograd.grad((out - x).pow(2).mean(dim=(1, 2, 3)).sum(), [current])
            with torch.no_grad():
                gain = 2 * grad * code  # (B, C, gh, gw) first-order drop of the frame's error
                if rate is not None:
                    gain = gain - rate_weight * rate.flip_bits(symbols)
                gain = gain.flatten(1).masked_fill(~allowed, -float("inf"))  # (B, bits)
                top = gain.topk(k, dim=1)
                flip = torch.zeros_like(allowed).scatter_(1, top.indices, top.values > 0)  # (B, bits)
                code = torch.where(flip, -code.flatten(1), code.flatten(1)).view_as(code)
                allowed &= ~flip
            if not flip.any():  # no frame has a flip left that lowers its error: later rounds would repeat this one
                break
    return symbols_from_latent(best)


def flip_clip_symbols(model, images: torch.Tensor, *, rounds: int, latent: torch.Tensor, keyframe: torch.Tensor,
                      prev: torch.Tensor | None = None, tables: dict | None = None, rate_weight: float = 0.0,
                      bf16: bool = False, tiling: Tiling | None = None) -> torch.Tensor:
    """Consecutive frames of a clip (B, 3, H, W) in [0, 1] -> uint8 symbols (B, C, gh, gw), each frame's code
    searched by `flip_symbols` from its latent (B, C, gh, gw), as the encoder computed it.

    With `rate_weight` and `tables` (uint16 arrays by name, as a checkpoint stores them), the bits are the
    spatial table's on keyframes (`keyframe`, (B,) bool) and elsewhere the temporal table's given the
    previous frame's plain code: its latent's signs, and `prev` (C, gh, gw) for the first frame (the
    frame before the batch). The clip then codes each frame against the previous frame's searched
    code, a few bits away from the plain one; searching against the plain one lets the whole batch go
    at once and keeps most of the saving (held-out Cityscapes at 17 fps, 3 rounds, w = 1.6e-5: 159.6 B
    a frame against 158.1 frame after frame, both at the plain code's PSNR, docs/tokens-and-clips.md).
    """
    if not rate_weight:
        return flip_symbols(model, images, rounds=rounds, bf16=bf16, tiling=tiling, latent=latent)
    from compressor.context_model import TEMPORAL
    from compressor.context_rate import ContextRate

    if tables is None:
        raise ValueError("a rate-aware search needs the model's context tables")
    plain = symbols_from_latent(latent)  # (B, C, gh, gw)
    if not bool(keyframe[0]) and prev is None:
        raise ValueError("the batch starts off a keyframe: give the previous frame's plain code as prev")
    prevs = torch.cat([plain[:1] if prev is None else prev[None].to(plain), plain[:-1]])  # (B, C, gh, gw)
    out = torch.empty_like(plain)
    if tables.get("temporal") is None:  # tables fitted without sequences: the spatial one everywhere
        parts = [(torch.ones_like(keyframe), False)]
    else:
        parts = [(keyframe, False), (~keyframe, True)]
    for part, temporal in parts:
        if not part.any():
            continue
        rate = (ContextRate(tables["temporal"], latent.device, layout=TEMPORAL, prev=prevs[part]) if temporal
                else ContextRate(tables["spatial"], latent.device))
        out[part] = flip_symbols(model, images[part], rounds=rounds, bf16=bf16, tiling=tiling, latent=latent[part],
                                 rate=rate, rate_weight=rate_weight)
    return out
