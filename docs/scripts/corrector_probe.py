"""Probe: can a small second stage after the encoder predict what the refinement search would change?

The search (`search.refine_symbols`, 30 steps from the card's start scale, as `compress --refine 30`)
takes the default from 22.56 to 22.98 dB on Kodak frames; distillation carried part of that into the
encoder and then stopped gaining. A corrector sees more than the encoder's per-bit output: z = y +
MLP(features), where the features are the encoder's final token features h (256), its latent y (14)
and the plain code's signs in the token's 3x3 neighbourhood (126), in three arms: "h + y", "h + y +
neighbours", "y + neighbours". It is fitted by per-bit cross-entropy (logits z / 2, as distillation)
to the refined codes of training cover frames, and scored on held-out frames of the same pool as
agreement with the refined code and cross-entropy, every 200 steps; step 0 is the encoder alone.

With `--through-decoder LR...` the corrector (h + y + neighbours) is instead trained through the frozen
decoder, as the search descends: loss = MSE(decoder(sign(z)), x), the gradient reaching z through the
straight-through sign, z moved only where |y| < 4 (where the search moves bits); 300 steps of 16
training cover frames (mirrored every other step) per learning rate, then scored on the evaluation
sets as the codec's files (snapped, coded, decoded) against the default.

    python docs/scripts/corrector_probe.py --train ../shared/data/train/driving ../shared/data/train/photos
    python docs/scripts/corrector_probe.py --train ... --through-decoder 1e-3 1e-4 \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import compressor
from compressor.context_fit import load_frames, select_files
from compressor.search import refine_symbols
from compressor.training.data import find_images

from net_rate_probe import evaluate  # this folder's sibling probe
from probe_args import data_parser, eval_frames  # this folder's shared probe arguments

ARMS = {"h + y": (True, False), "h + y + neighbours": (True, True), "y + neighbours": (False, True)}


def neighbours(y: torch.Tensor) -> torch.Tensor:
    """(B, C, gh, gw) latent -> (B, gh*gw, 9C): the plain code's signs in each cell's 3x3 window, 0 outside."""
    gh, gw = y.shape[-2:]
    p = F.pad(torch.sign(y), (1, 1, 1, 1))
    return torch.cat([p[:, :, i : i + gh, j : j + gw] for i in range(3) for j in range(3)], 1).flatten(2).transpose(1, 2)


class Corrector(nn.Module):
    """z = y + 16 * MLP([h], y / 16, [neighbours]); the last layer starts at zero, so z starts at y."""

    def __init__(self, dim: int, channels: int, feats: bool, nb: bool, hidden: int = 128):
        super().__init__()
        self.feats, self.nb = feats, nb
        self.a = nn.Linear((dim if feats else 0) + channels * (1 + (9 if nb else 0)), hidden)
        self.b = nn.Linear(hidden, channels)
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # h (B, N, D), y (B, C, gh, gw)
        parts = ([h] if self.feats else []) + [y.flatten(2).transpose(1, 2) / 16] + ([neighbours(y)] if self.nb else [])
        d = self.b(F.gelu(self.a(torch.cat(parts, -1))))  # (B, N, C)
        return y + 16 * d.transpose(1, 2).reshape(y.shape)


def encoder_features(model) -> dict:
    """A dict whose "h" is, after each encoder pass, that pass's final token features (B, N, D) in float32."""
    captured = {}
    model.encoder.norm.register_forward_hook(lambda m, i, o: captured.__setitem__("h", o.detach().float()))
    return captured


def through_decoder(codec, frames: np.ndarray, sets: list[np.ndarray], lrs: list[float], steps: int = 300) -> None:
    """The corrector trained by the decoder's error through the straight-through sign, scored as files."""
    model, captured = codec.model, encoder_features(codec.model)
    plain = codec._encode_latent

    def score(arm: str) -> None:
        cells = [f"{p:.3f} dB @ {b:.1f} B" for p, b in evaluate(codec, sets)]
        print(f"| {arm} | " + " | ".join(cells) + " |", flush=True)

    print("| arm | " + " | ".join(f"set {k}" for k in range(len(sets))) + " |\n|---|" + "---|" * len(sets))
    score("the default")
    for lr in lrs:
        torch.manual_seed(0)
        m = Corrector(model.encoder.dim, model.encoder.latent_channels, True, True)
        opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(2)

        def corrected(y, h):
            return y + (y.abs() < 4).float() * (m(h, y) - y)  # (B, C, gh, gw): only the unsure bits move

        for step in range(steps):
            x = torch.from_numpy(frames[torch.randint(0, len(frames), (16,), generator=gen).numpy()])
            x = x.permute(0, 3, 1, 2).float() / 255
            x = x.flip(-1) if step % 2 else x
            with torch.no_grad():
                y = plain(x, None)
            z = corrected(y, captured["h"])
            loss = F.mse_loss(model.decoder(torch.sign(z.detach()) + z - z.detach()), x)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def patched(x, tiling):
            y = plain(x, tiling)
            with torch.no_grad():
                return corrected(y, captured["h"])
        codec._encode_latent = patched
        score(f"corrector through the decoder, lr {lr:g}")
        codec._encode_latent = plain


def main() -> None:
    ap = data_parser(eval_required=False)
    ap.add_argument("--frames", type=int, default=768)
    ap.add_argument("--refine-steps", type=int, default=30)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--through-decoder", type=float, nargs="+", metavar="LR", help="the decoder-gradient arms instead")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    codec = compressor.load(args.model)
    model = codec.model
    frames = load_frames(select_files(find_images(args.train), None, []))
    if args.through_decoder:
        through_decoder(codec, frames, [eval_frames(d) for d in args.eval], args.through_decoder)
        return
    pick = np.random.default_rng(7).permutation(len(frames))[: args.frames]
    captured = encoder_features(model)
    ys, hs, codes, start = [], [], [], time.perf_counter()
    for k in range(0, len(pick), 32):
        x = torch.from_numpy(frames[pick[k : k + 32]]).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            y = codec._encode_latent(x, None)  # (B, C, gh, gw) at the card's precision, as the codec encodes
        ys.append(y)
        hs.append(captured["h"])
        codes.append(refine_symbols(model, x, steps=args.refine_steps, bf16=codec.decode_precision == "bf16",
                                    start=y, start_scale=codec.refine_start_scale).float())
    y, h, s = torch.cat(ys), torch.cat(hs), torch.cat(codes)
    held = len(y) // 10
    differ = ((y > 0).float() != s).float()
    print(f"{len(y)} frames refined in {time.perf_counter() - start:.0f} s; {differ.mean() * 100:.2f}% of bits changed, "
          f"all of them where |y| < 4 ({(y.abs() < 4).float().mean() * 100:.1f}% of bits); the first {held} held out")
    print("| arm | step | held-out agreement | held-out CE | training CE |")
    print("|---|---|---|---|---|")
    for arm, (feats, nb) in ARMS.items():
        torch.manual_seed(0)
        m = Corrector(h.shape[-1], y.shape[1], feats, nb)
        opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=1e-2)
        gen = torch.Generator().manual_seed(1)
        for step in range(args.steps + 1):
            if step % 200 == 0:
                with torch.no_grad():
                    z, zt = m(h[:held], y[:held]), m(h[held : held + 200], y[held : held + 200])
                    ce = F.binary_cross_entropy_with_logits(z / 2, s[:held])
                    cet = F.binary_cross_entropy_with_logits(zt / 2, s[held : held + 200])
                    agree = ((z > 0).float() == s[:held]).float().mean()
                print(f"| {arm} | {step} | {agree * 100:.2f}% | {ce:.4f} | {cet:.4f} |", flush=True)
            if step == args.steps:
                break
            i = torch.randint(held, len(y), (64,), generator=gen)
            loss = F.binary_cross_entropy_with_logits(m(h[i], y[i]) / 2, s[i])
            opt.zero_grad()
            loss.backward()
            opt.step()


if __name__ == "__main__":
    main()
