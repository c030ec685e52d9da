"""Probe: fine-tune a shipped model's encoder under its context net's rate, the decoder frozen, against
the same fine-tune without the rate term (an A/B at equal data, steps and time).

    loss = MSE(decoder(sign(encoder(x))), x) + weight * bits / pixels
    bits = the cross-entropy of the symbols under a float twin of the context net (fitted here on the
           training frames' symbols, then frozen); gradients reach the encoder through the quantizer's
           surrogate (`bottleneck.binarize`), both as the coded bits and as their neighbours' context

With `--refine-steps N` the encoder is instead distilled (the route that made the default): a pool of
training frames is refined by N steps of `search.refine_symbols` under the same loss (the twin's bits
as its rate, from the shipped encoder's latent), and the encoder is fitted to those fixed codes by
per-bit cross-entropy, the decoder frozen; no gradient passes the quantizer's surrogate.

Scores each arm on the evaluation frame sets as `.bin` files coded by the shipped integer net (mean
PSNR, mean bytes) and prices the byte change at bare AVIF's slope near 224 B (0.0135 dB a byte): "net"
is the PSNR change minus what the byte change buys AVIF. weight 0.07 is that slope as a loss weight.

    python docs/scripts/net_rate_probe.py --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
    (distillation: add --refine-steps 20 --pool 768 --decoder-steps 400)
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

import compressor
from compressor import context_net_fit
from compressor.bottleneck import binarize, hard_sign
from compressor.context_fit import load_frames, select_files
from compressor.metrics import psnr
from compressor.search import refine_symbols
from compressor.training.data import find_images

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments

AVIF_DB_PER_BYTE = 0.0135
WARMUP = 50  # steps of linear warm-up: Adam's first steps at full rate knock a converged model off


def context_bits(fnet, signed: torch.Tensor) -> torch.Tensor:
    """Differentiable code length in bits (B,) of signed symbols (B, C, h, w) in {-1, +1} under a float twin."""
    x, own = context_net_fit.features(signed)
    logits = fnet(x, own)
    target = (own + 1) / 2
    bits = (F.softplus(logits) - target * logits) / np.log(2)  # BCE with logits, differentiable in the target too
    return bits.view(len(signed), -1).sum(1)


def probe_parser(steps: int, lr: float) -> argparse.ArgumentParser:
    """The arguments every fine-tuning probe here takes: model, data, frames, steps, batch, learning rate."""
    ap = data_parser()
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=lr)
    return ap


def load_probe(args):
    """(codec, training frames (N, 128, 256, 3) uint8, evaluation sets as uint8 arrays) from probe_parser's args."""
    torch.manual_seed(0)
    frames = load_frames(select_files(find_images(args.train), args.frames, []))
    return compressor.load(args.model), frames, [eval_frames(d) for d in args.eval]


def descend(params, steps: int, lr: float, loss_of) -> None:
    """`steps` AdamW steps (no weight decay, WARMUP steps of linear warm-up) on loss_of(step)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / WARMUP))
    for step in range(steps):
        loss = loss_of(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        warm.step()


def fine_tune_decoder(model, decoder0: dict, frames: np.ndarray, steps: int, lr: float, batch: int,
                      decoder_input) -> float:
    """The decoder reset to `decoder0` (a state dict) and fine-tuned alone by MSE for `steps` steps of `batch`
    training frames, mirrored every other step as the training recipe does, in one order for every arm;
    decoder_input(idx, x, mirrored) gives its input for frames `idx` (pixels x). Returns the seconds."""
    model.decoder.load_state_dict(decoder0)
    only_trainable(model, model.decoder)
    model.train()
    gen = torch.Generator().manual_seed(2)
    start = time.perf_counter()

    def loss_of(step):
        idx = torch.randint(0, len(frames), (batch,), generator=gen)
        x = torch.from_numpy(frames[idx.numpy()]).permute(0, 3, 1, 2).float() / 255
        mirrored = bool(step % 2)
        if mirrored:
            x = x.flip(-1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.mse_loss(model.decoder(decoder_input(idx, x, mirrored)).float(), x)

    descend(model.decoder.parameters(), steps, lr, loss_of)
    model.eval()
    for p in model.decoder.parameters():
        p.requires_grad_(False)
    return time.perf_counter() - start


def only_trainable(model, part) -> None:
    """Train `part` alone: a loaded codec's weights are all frozen."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in part.parameters():
        p.requires_grad_(True)


def distil(model, frames: np.ndarray, fnet, rate_weight: float, args, *, start_scale: float) -> None:
    """Refine `args.pool` training frames under MSE + rate_weight * twin bits (per-frame mean MSE's scale),
    from the shipped encoder's latent, then fit the encoder to the refined codes by per-bit cross-entropy
    (logits y / 2, as `distill_temperature`), `args.steps` steps of `args.batch`, the decoder frozen."""
    pick = np.random.default_rng(3).permutation(len(frames))[: args.pool]
    pool = torch.from_numpy(frames[pick]).permute(0, 3, 1, 2).float() / 255  # (P, 3, H, W)
    rate = None if not rate_weight else (lambda code: context_bits(fnet, code))
    model.eval()
    codes, start = [], time.perf_counter()
    for i in range(0, len(pool), 32):
        x = pool[i : i + 32]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            latent = model.encoder(model.pad(x)).float()  # (B, C, gh, gw), the teacher's (shipped) latent
        codes.append(refine_symbols(model, x, steps=args.refine_steps, bf16=True, start=latent,
                                    start_scale=start_scale, rate=rate, rate_weight=rate_weight))
    codes = torch.cat(codes).float()  # (P, C, gh, gw) in {0, 1}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        own = (model.encoder(model.pad(pool[:256])).float() > 0).float()
    with torch.no_grad():
        bits = context_bits(fnet, codes * 2 - 1).mean() / 8
    print(f"  refined {len(pool)} frames in {time.perf_counter() - start:.0f} s: {bits:.1f} B a frame under the twin, "
          f"{(own != codes[:256]).float().mean() * 100:.1f}% of the bits differ from the encoder's", flush=True)
    only_trainable(model, model.encoder)
    model.train()
    gen = torch.Generator().manual_seed(4)

    def loss_of(_):
        idx = torch.randint(0, len(pool), (args.batch,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model.encoder(model.pad(pool[idx])).float()
        return F.binary_cross_entropy_with_logits(y / 2, codes[idx])
    descend(model.encoder.parameters(), args.steps, args.distil_lr, loss_of)
    model.eval()


def report(arm, scores, base, start) -> None:
    cells = [f"{p:.3f} @ {b:.1f}, {p - p0 - AVIF_DB_PER_BYTE * (b - b0):+.3f}" for (p, b), (p0, b0) in zip(scores, base)]
    print(f"| {arm} | " + " | ".join(cells) + f" | {time.perf_counter() - start:.0f} |", flush=True)


def evaluate(codec, sets) -> list[tuple[float, float]]:
    out = []
    for frames in sets:
        datas = codec.encode_batch(list(frames))
        decoded = codec.decode_batch_arrays(datas)
        out.append((float(np.mean([psnr(a, d) for a, d in zip(frames, decoded)])), float(np.mean([len(d) for d in datas]))))
    return out


def main() -> None:
    ap = probe_parser(steps=600, lr=1e-5)
    ap.add_argument("--temperature", type=float, default=8.0)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.07])
    ap.add_argument("--twin-steps", type=int, default=1500)
    ap.add_argument("--decoder-steps", type=int, default=0, help="then fine-tune the decoder on the new codes")
    ap.add_argument("--decoder-lr", type=float, default=2e-5)
    ap.add_argument("--refine-steps", type=int, default=0, help="distil the encoder from rate-aware refinement")
    ap.add_argument("--pool", type=int, default=768, help="training frames refined for distillation")
    ap.add_argument("--distil-lr", type=float, default=5e-5)
    args = ap.parse_args()
    codec, frames, sets = load_probe(args)
    model = codec.model
    start = time.perf_counter()
    symbols = np.concatenate([codec._run_batched(list(frames[i : i + 256]), lambda x: codec._encode_symbols(x, None))
                              for i in range(0, len(frames), 256)])
    fnet = context_net_fit.train(symbols, steps=args.twin_steps)
    for p in fnet.parameters():
        p.requires_grad_(False)
    print(f"{len(frames)} training frames; float twin fitted in {time.perf_counter() - start:.0f} s", flush=True)

    base = evaluate(codec, sets)
    print("| arm | " + " | ".join(f"set {k}: PSNR @ bytes, net" for k in range(len(sets))) + " | seconds |")
    print("|---|" + "---|" * (len(sets) + 1))
    print("| shipped | " + " | ".join(f"{p:.3f} dB @ {b:.1f} B" for p, b in base) + " | |", flush=True)
    encoder0, decoder0 = copy.deepcopy(model.encoder.state_dict()), copy.deepcopy(model.decoder.state_dict())
    pixels = frames.shape[1] * frames.shape[2]

    def batches(seed):
        gen = torch.Generator().manual_seed(seed)
        for step in range(10**9):
            idx = torch.randint(0, len(frames), (args.batch,), generator=gen)
            x = torch.from_numpy(frames[idx.numpy()]).permute(0, 3, 1, 2).float() / 255
            yield x.flip(-1) if step % 2 else x

    for weight in args.weights:
        model.encoder.load_state_dict(encoder0)
        model.decoder.load_state_dict(decoder0)
        start = time.perf_counter()
        if args.refine_steps:
            distil(model, frames, fnet, weight / pixels, args, start_scale=codec.card.card.get("refine_start_scale", 1.0))
            report(f"weight {weight:g}, distilled from {args.refine_steps}-step refinement of {args.pool} frames",
                   evaluate(codec, sets), base, start)
        else:
            only_trainable(model, model.encoder)
            model.train()
            xs = batches(1)

            def loss_of(_):
                x = next(xs)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = model.encoder(model.pad(x))
                signed = binarize(y.float(), args.temperature)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    rec = model.decoder(signed)
                loss = F.mse_loss(rec.float(), x)
                return loss + weight * context_bits(fnet, signed).mean() / pixels if weight else loss
            descend(model.encoder.parameters(), args.steps, args.lr, loss_of)
            model.eval()
            report(f"weight {weight:g}", evaluate(codec, sets), base, start)
        if not args.decoder_steps:
            continue
        only_trainable(model, model.decoder)  # the decoder fine-tuned on the new, fixed codes
        model.train()
        start, xs = time.perf_counter(), batches(2)

        def decoder_loss(_):
            x = next(xs)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                signed = hard_sign(model.encoder(model.pad(x)).float())
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return F.mse_loss(model.decoder(signed).float(), x)
        descend(model.decoder.parameters(), args.decoder_steps, args.decoder_lr, decoder_loss)
        model.eval()
        report(f"weight {weight:g}, then decoder {args.decoder_steps} steps", evaluate(codec, sets), base, start)
    model.encoder.load_state_dict(encoder0)
    model.decoder.load_state_dict(decoder0)


if __name__ == "__main__":
    main()
