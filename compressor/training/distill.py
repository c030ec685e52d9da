"""Distillation from encoder-side search: fit the encoder to codes the search finds (`distill_refine`).

    x --teacher (the seed's encoder, frozen)--> start --refine_symbols(decoder)--> refined code (targets)
    (crop, refined code) pairs -> ring buffer of `distill_buffer` frames, one new batch every `distill_reuse` steps
    buffer batch --encoder--> y --BCE(y / t, target)--> loss      (the decoder is frozen)

Refinement finds, per image, a code this decoder reconstructs better than the encoder's own
(vit-long2: 14% of the bits differ, +0.8 dB on training crops); the straight-through gradient does not
lead the encoder there, a per-bit target does.

With `distill_searches` K > 1 each frame is searched K times, from the teacher's latent and from it plus
noise, and each bit's target is the share of the searches that set it. Equally good searches disagree on
about half the bits they flip (`docs/scripts/search_ties_probe.py`): the bits they agree on carry most of
the gain, and the majority of four searches decodes better than any one of them. Fitting the share of
four searches gained nothing over one in an H200 A/B (docs/training-record.md), so K stays 1 by default.
"""
from __future__ import annotations

import copy

import torch

from compressor.training.config import TrainConfig

# The noise (on the teacher's latent, before distill_start_scale) that starts the searches after the first:
# on `vit.default` (median |y| 13.7) a search from the latent plus N(0, 0.5^2) is as good as one from the
# latent (24.267 against 24.270 dB on 48 evaluation frames) and differs from it in 4.7% of the bits.
SEARCH_NOISE = 0.5


class Distiller:
    """The frozen teacher and the ring buffer of (crop, refined code) pairs; the buffer is not saved."""

    def __init__(self, cfg: TrainConfig, model):
        self.cfg = cfg
        # The teacher searches from the seed's encoder, kept frozen: searching from the student's own
        # latents fed back on itself (its growing margins leave the search fewer bits to flip) and
        # lost 0.2 dB on kodak-frames in 220 steps, where this fixed teacher gains (docs/training-record.md, Training).
        self.teacher = copy.deepcopy(model.encoder).eval().requires_grad_(False)
        # "crops" (N, 3, H, W) and "codes" (N, C, gh, gw), uint8: how many of the searches set each bit
        self.buffer: dict[str, torch.Tensor] = {}
        self.frames = 0  # frames written into the buffer since this process began

    def _refill(self, model, x: torch.Tensor) -> int:
        """Refine batch `x` (`distill_searches` times) and write it into the buffer; returns the frames refined."""
        from compressor.search import refine_symbols

        cfg = self.cfg
        with torch.no_grad():
            start = self.teacher(model.pad(x))  # (B, C, gh, gw), float32 as refine_symbols runs it
        refined = None
        for k in range(cfg.distill_searches):
            noisy = start if k == 0 else start + SEARCH_NOISE * torch.randn_like(start)
            code = refine_symbols(model, x, steps=cfg.distill_refine, bf16=cfg.bf16, start=noisy,
                                  start_scale=cfg.distill_start_scale)  # uint8 (B, C, gh, gw)
            refined = code if refined is None else refined + code  # counts: at most 255 searches
        crops = (x * 255).round().to(torch.uint8)  # (B, 3, H, W)
        if not self.buffer:
            size = max(cfg.distill_buffer, x.shape[0])
            self.buffer = {"crops": crops.new_empty((size, *crops.shape[1:])),
                           "codes": refined.new_empty((size, *refined.shape[1:]))}
        size = len(self.buffer["crops"])
        slots = (self.frames + torch.arange(x.shape[0], device=x.device)) % size
        self.buffer["crops"][slots] = crops
        self.buffer["codes"][slots] = refined
        self.frames += x.shape[0]
        return x.shape[0]

    def loss(self, model, x: torch.Tensor, step: int, rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Cross-entropy of the encoder's bits against refined codes (the decoder is frozen).

        Every `distill_reuse` steps the batch `x` is refined and joins the buffer; each step fits the
        encoder to a batch drawn from it with `rng`. The entropy model learns the new codes'
        statistics from the same step (no rate gradient reaches the encoder: the rate is fixed at one
        bit per symbol before coding). Returns loss, the student code's MSE (for the log), its bits
        per pixel, and how many frames this step refined.
        """
        from compressor.bottleneck import hard_sign

        cfg = self.cfg
        refined = self._refill(model, x) if step % cfg.distill_reuse == 0 or not self.buffer else 0
        filled = min(self.frames, len(self.buffer["crops"]))
        pick = torch.from_numpy(rng.integers(0, filled, x.shape[0])).to(x.device)
        xb = self.buffer["crops"][pick].float() / 255
        target = self.buffer["codes"][pick].float() / cfg.distill_searches  # the share of searches that set it
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            y = model.encoder(model.pad(xb)).float()  # (B, C, gh, gw)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(y / cfg.distill_temperature, target)
        code = hard_sign(y.detach())  # (B, C, gh, gw) in {-1, +1}
        bpp = model.bottleneck.bits((code + 1) / 2).mean() / (xb.shape[-2] * xb.shape[-1])
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model.decoder(code)[..., : xb.shape[-2], : xb.shape[-1]]
        mse = torch.mean((out.float() - xb) ** 2)
        return bce + cfg.rate_weight * bpp, mse, bpp, refined
