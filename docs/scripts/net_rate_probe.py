"""Probe: fine-tune a shipped model's encoder under its context net's rate, the decoder frozen, against
the same fine-tune without the rate term (an A/B at equal data, steps and time).

    loss = MSE(decoder(sign(encoder(x))), x) + weight * bits / pixels
    bits = the cross-entropy of the symbols under a float twin of the context net (fitted here on the
           training frames' symbols, then frozen); gradients reach the encoder through the quantizer's
           surrogate (`bottleneck.binarize`), both as the coded bits and as their neighbours' context

Scores each arm on the evaluation frame sets as `.bin` files coded by the shipped integer net (mean
PSNR, mean bytes) and prices the byte change at bare AVIF's slope near 224 B (0.0135 dB a byte): "net"
is the PSNR change minus what the byte change buys AVIF. weight 0.07 is that slope as a loss weight.

    python docs/scripts/net_rate_probe.py --train ../shared/data/train/driving ../shared/data/train/photos \
        --eval ../shared/data/eval/kodak-frames-128x256 ../shared/data/eval/driving-frames-128x256
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
from compressor.measure.evaluate import expand_paths
from compressor.metrics import psnr
from compressor.images import to_rgb_array
from compressor.training.data import find_images

AVIF_DB_PER_BYTE = 0.0135
WARMUP = 50  # steps of linear warm-up: Adam's first steps at full rate knock a converged model off


def context_bits(fnet, signed: torch.Tensor) -> torch.Tensor:
    """Differentiable code length in bits (B,) of signed symbols (B, C, h, w) in {-1, +1} under a float twin."""
    x, own = context_net_fit.features(signed)
    logits = fnet(x, own)
    target = (own + 1) / 2
    bits = (F.softplus(logits) - target * logits) / np.log(2)  # BCE with logits, differentiable in the target too
    return bits.view(len(signed), -1).sum(1)


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit.default")
    ap.add_argument("--train", nargs="+", required=True)
    ap.add_argument("--eval", nargs="+", required=True)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--temperature", type=float, default=8.0)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.07])
    ap.add_argument("--twin-steps", type=int, default=1500)
    ap.add_argument("--decoder-steps", type=int, default=0, help="then fine-tune the decoder on the new codes")
    ap.add_argument("--decoder-lr", type=float, default=2e-5)
    args = ap.parse_args()
    torch.manual_seed(0)

    codec = compressor.load(args.model)
    model = codec.model
    frames = load_frames(select_files(find_images(args.train), args.frames, []))  # (N, 128, 256, 3) uint8
    sets = [np.stack([to_rgb_array(f) for f in expand_paths([d])]) for d in args.eval]
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

    def only_trainable(part):  # a loaded codec's weights are all frozen
        for p in model.parameters():
            p.requires_grad_(False)
        for p in part.parameters():
            p.requires_grad_(True)

    for weight in args.weights:
        model.encoder.load_state_dict(encoder0)
        model.decoder.load_state_dict(decoder0)
        only_trainable(model.encoder)
        model.train()
        opt = torch.optim.AdamW(model.encoder.parameters(), lr=args.lr, weight_decay=0.0)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / WARMUP))
        start = time.perf_counter()
        for _, x in zip(range(args.steps), batches(1)):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = model.encoder(model.pad(x))
            signed = binarize(y.float(), args.temperature)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                rec = model.decoder(signed)
            loss = F.mse_loss(rec.float(), x)
            if weight:
                loss = loss + weight * context_bits(fnet, signed).mean() / pixels
            opt.zero_grad()
            loss.backward()
            opt.step()
            warm.step()
        model.eval()
        report(f"weight {weight:g}", evaluate(codec, sets), base, start)
        if not args.decoder_steps:
            continue
        only_trainable(model.decoder)  # the decoder fine-tuned on the new, fixed codes
        model.train()
        opt = torch.optim.AdamW(model.decoder.parameters(), lr=args.decoder_lr, weight_decay=0.0)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / WARMUP))
        start = time.perf_counter()
        for _, x in zip(range(args.decoder_steps), batches(2)):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                signed = hard_sign(model.encoder(model.pad(x)).float())
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.mse_loss(model.decoder(signed).float(), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            warm.step()
        model.eval()
        report(f"weight {weight:g}, then decoder {args.decoder_steps} steps", evaluate(codec, sets), base, start)
    model.encoder.load_state_dict(encoder0)
    model.decoder.load_state_dict(decoder0)
    model.encoder.load_state_dict(encoder0)


if __name__ == "__main__":
    main()
