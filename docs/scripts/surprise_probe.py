"""Probe: does the decoder gain from the context net's view of each bit, which it has for free?

The entropy decoder computes, for every cell, the net's P(1) given the cells decoded before it. The
decoder network sees only the bits. With snapping, how a bit relates to its prediction says something
about the encoder's margin |y| (a bit that contradicts a confident prediction was not snapped, so its |y|
was at least c x the bits a flip would have saved), and that is a function of the code the decoder's
attention would have to learn to compute. Here it is handed over instead:

    s = the snapped code in -1 / +1                          (B, 14, 8, 16)
    L = the net's log-odds of a 1 for every cell given its context (one pass over s, as the coder's)
    decoder input: embed(s) + extra([L, s L, |L|] / 4), extra a new nn.Linear(42, D), zero at the start

An A/B at equal data and steps, the encoder frozen: the shipped decoder fine-tuned N steps on the
training frames' snapped codes as it is (the control), and the same with the extra input (its new layer
at a higher learning rate). Both arms are scored on the evaluation frames' snapped codes, decoded the same
way (float32, one batch). The codes and so the bytes are the same in both arms.

    python docs/scripts/surprise_probe.py --eval ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 --train ../shared/data/train/driving \
        ../shared/data/train/photos --steps 600
"""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import compressor
from compressor import context_net
from compressor.context_fit import load_frames, select_files
from compressor.metrics import psnr
from compressor.training.data import find_images

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments
from snap_probe import latent  # this folder's sibling probe

WARMUP = 50


class SurpriseEmbed(nn.Module):
    """The decoder's token embedding, plus a zero-initialised projection of the net's view of each bit."""

    def __init__(self, embed: nn.Linear, channels: int):
        super().__init__()
        self.embed, self.channels = embed, channels
        self.extra = nn.Linear(3 * channels, embed.out_features)
        nn.init.zeros_(self.extra.weight)
        nn.init.zeros_(self.extra.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, 4C): bits, then the three features -> (B, N, D)."""
        return self.embed(tokens[..., : self.channels]) + self.extra(tokens[..., self.channels :])


def decoder_input(net, codes: np.ndarray, with_features: bool) -> torch.Tensor:
    """uint8 codes (B, C, h, w) -> the decoder's input: -1/+1 bits, with [L, sL, |L|] / 4 after them."""
    s = codes.astype(np.float32) * 2 - 1
    if not with_features:
        return torch.from_numpy(s)
    per_pass = max(1, context_net.TOKENS_PER_PASS // (codes.shape[2] * codes.shape[3]))
    p = np.concatenate([context_net._cell_probabilities(net, codes[i : i + per_pass])
                        for i in range(0, len(codes), per_pass)])
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log2(p / (1 - p)).astype(np.float32)  # bits; the coder's probabilities
    return torch.from_numpy(np.concatenate([s, logit / 4, s * logit / 4, np.abs(logit) / 4], axis=1))


def fine_tune(decoder, frames: np.ndarray, inputs: dict, steps: int, lr: float, extra_lr: float, batch: int) -> float:
    """`steps` AdamW steps of MSE on `batch` training frames, mirrored every other step, in one order for
    every arm; parameters named 'extra' at `extra_lr`. Returns the seconds."""
    for p in decoder.parameters():
        p.requires_grad_(True)
    decoder.train()
    extra = [p for n, p in decoder.named_parameters() if "extra" in n]
    body = [p for n, p in decoder.named_parameters() if "extra" not in n]
    groups = [{"params": body, "lr": lr}] + ([{"params": extra, "lr": extra_lr}] if extra else [])
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / WARMUP)
                                             * min(1.0, 2 * (steps - k) / steps))  # decay over the second half
    gen = torch.Generator().manual_seed(2)
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, len(frames), (batch,), generator=gen)
        x = torch.from_numpy(frames[idx.numpy()]).permute(0, 3, 1, 2).float() / 255
        mirrored = bool(step % 2)
        if mirrored:
            x = x.flip(-1)
        loss = F.mse_loss(decoder(inputs[mirrored][idx]), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        warm.step()
    decoder.eval()
    return time.perf_counter() - start


def score(decoder, frames: np.ndarray, inputs: torch.Tensor) -> float:
    """Mean PSNR of the frames decoded from `inputs`, as uint8 pixels."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs), 32):
            y = decoder(inputs[i : i + 32]).clamp(0, 1) * 255
            out.append(y.round().byte().permute(0, 2, 3, 1).numpy())
    decoded = np.concatenate(out)
    return float(np.mean([psnr(a, d) for a, d in zip(frames, decoded)]))


def fine_tune_parser(extra_lr: float):
    """The data arguments, and the fine-tune's: steps, training frames, batch, learning rates."""
    ap = data_parser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--extra-lr", type=float, default=extra_lr, help="the new parameters' learning rate")
    return ap


def main() -> None:
    args = fine_tune_parser(extra_lr=3e-4).parse_args()
    torch.manual_seed(0)
    codec = compressor.load(args.model)
    net, c = codec._net, codec.snap
    model = codec.model
    frames = load_frames(select_files(find_images(args.train), args.frames, []))
    codes = {flip: context_net.snap(net, latent(codec, frames[:, :, ::-1].copy() if flip else frames), c)
             for flip in (False, True)}
    sets = []
    for folder in args.eval:
        f = eval_frames(folder)
        sets.append((f, context_net.snap(net, latent(codec, f), c)))
    print(f"{len(frames)} training frames, snap c = {c}, {args.steps} steps of {args.batch}", flush=True)
    decoder0 = model.decoder
    print("| arm | " + " | ".join(f"set {k}" for k in range(len(sets))) + " | seconds |")
    print("|---|" + "---|" * (len(sets) + 1))
    print("| shipped decoder | " + " | ".join(f"{score(decoder0, f, decoder_input(net, s, False)):.3f}"
                                           for f, s in sets) + " | |", flush=True)
    for with_features in (False, True):
        decoder = copy.deepcopy(decoder0).float()
        if with_features:
            decoder.embed = SurpriseEmbed(decoder.embed, codec.model.encoder.latent_channels)
        inputs = {flip: decoder_input(net, k, with_features) for flip, k in codes.items()}
        seconds = fine_tune(decoder, frames, inputs, args.steps, args.lr, args.extra_lr, args.batch)
        cells = [f"{score(decoder, f, decoder_input(net, s, with_features)):.3f}" for f, s in sets]
        arm = "with the net's view (extra input)" if with_features else "control (bits only)"
        print(f"| {arm} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
