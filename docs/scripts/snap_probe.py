"""Probe: rate-distortion quantisation without a search. The encoder's unsure bits are snapped to the
context net's prediction where that saves enough bits, as a classic encoder's RDO quantisation does.

    y = encoder(x) (the shipped default's, bf16 as its card asks)          (B, 14, 8, 16)
    s = [y >= 0], the plain code; P = the context net's P(1) of every cell given s (one pass)
    saved = log2 P(1 - s) - log2 P(s)    bits a flip would save, if positive (given s's own contexts)
    flip a cell where saved > 0 and |y| < c * saved

No decoder pass and no gradient: |y|, the encoder's margin, stands in for what a flip costs in error. A
second variant decides in decoding order, each cell given the already decided ones (`--sequential`).
Scored as the codec's `.bin` files of the snapped symbols and their PSNR on the evaluation frames; "net"
prices the byte change at bare AVIF's own trade near 200 B, about 2 dB per doubling of bytes: PSNR
change - 2 log2(bytes / plain bytes).

    python docs/scripts/snap_probe.py --eval ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 --c 0.1 0.2 0.4 0.8 1.6 3.2

With `--decoder-steps N --train FOLDER...`, an A/B at equal data and steps: the shipped decoder is
fine-tuned N steps on the training frames' plain codes (the control) and, for each c, on their snapped
codes (one pass), so that it learns to read the snapped bits; each arm is scored on its own codes.

    python docs/scripts/snap_probe.py --eval ../shared/data/eval/kodak-frames-128x256 \
        ../shared/data/eval/driving-frames-128x256 --c 0.4 0.8 --decoder-steps 400 \
        --train ../shared/data/train/driving ../shared/data/train/photos
"""
from __future__ import annotations

import copy

import numpy as np
import torch

import compressor
from compressor import context_net
from compressor.clip_coding import encode_frames
from compressor.context_fit import load_frames, select_files
from compressor.metrics import psnr
from compressor.training.data import find_images

from probe_args import data_parser, eval_frames  # this folder's shared probe arguments
from net_rate_probe import fine_tune_decoder  # this folder's sibling probe

AVIF_DB_PER_DOUBLING = 2.0


def latent(codec, frames: np.ndarray) -> np.ndarray:
    """uint8 (N, 128, 256, 3) -> the encoder's y (N, 14, 8, 16), as the codec encodes (batches, precision)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(frames), codec.batch):
            x = torch.from_numpy(frames[i : i + codec.batch]).permute(0, 3, 1, 2).float() / 255
            out.append(codec._encode_latent(x, None).numpy())
    return np.concatenate(out)


def snap_parallel(net, y: np.ndarray, symbols: np.ndarray, c: float) -> np.ndarray:
    """The one-pass rule, as the codec now applies it (`context_net.snap`; `symbols` are y's signs)."""
    return context_net.snap(net, y, c)


def snap_sequential(net, y: np.ndarray, symbols: np.ndarray, c: float) -> np.ndarray:
    """The same rule in decoding order (`context_net.decode_many`'s steps): each group of each diagonal
    decided given the cells decided before it."""
    b, channels, h, w = symbols.shape
    pad = context_net.PAD
    grid = np.zeros((b, channels, h + 2 * pad, w + 2 * pad))
    flat_grid = grid.reshape(b, channels, -1)
    margin = np.abs(y).reshape(b, channels, -1)
    plain = symbols.reshape(b, channels, -1)
    for neighbours, at in context_net._order((channels, h, w), net.groups).tokens:
        n = len(at)
        ii, jj = np.divmod(at, w + 2 * pad)
        raster = (ii - pad) * w + jj - pad
        _, mixed, head = net.trunk(context_net._features(grid, neighbours))
        own = np.zeros((b * n, channels))
        for g, (lo, hi) in enumerate(net.ranges):
            p = net.group_probabilities(mixed, head, own, g).reshape(b, n, hi - lo).transpose(0, 2, 1)  # (B, g, n)
            s = plain[:, lo:hi][:, :, raster]
            saved = context_net.saved_bits(p, s)
            s = np.where((saved > 0) & (margin[:, lo:hi][:, :, raster] < c * saved), 1 - s, s)
            signed = s * 2.0 - 1
            own[:, lo:hi] = signed.transpose(0, 2, 1).reshape(b * n, hi - lo)
            flat_grid[:, lo:hi, at] = signed
    return (grid[:, :, pad:-pad, pad:-pad] > 0).astype(np.uint8)


def score(codec, frames: np.ndarray, symbols: np.ndarray) -> tuple[float, float]:
    """(mean PSNR, mean .bin bytes) of frames coded to these symbols, the files as the codec writes them."""
    records = encode_frames(list(symbols), codec._cdf, codec._tables, net=codec._net)
    nbytes = [len(codec._packed(record, frame.shape[:2])) for record, frame in zip(records, frames)]
    decoded = codec.frames_from_symbols(symbols)
    return float(np.mean([psnr(a, d) for a, d in zip(frames, decoded)])), float(np.mean(nbytes))


def decoder_ab(codec, args, sets) -> None:
    """The shipped decoder fine-tuned on plain codes (control) and on snapped codes, each arm scored on its own
    codes of the evaluation frames; "net" against the shipped decoder on plain codes."""
    model = codec.model
    frames = load_frames(select_files(find_images(args.train), args.frames, []))
    y = {flip: latent(codec, frames[:, :, ::-1].copy() if flip else frames) for flip in (False, True)}
    base = [score(codec, f, (ys >= 0).astype(np.uint8)) for f, ys in sets]
    decoder0 = copy.deepcopy(model.decoder.state_dict())
    for p in model.parameters():
        p.requires_grad_(False)
    print(f"{len(frames)} training frames; shipped: " + ", ".join(f"{p:.3f} dB @ {b:.1f} B" for p, b in base))
    print("| arm | " + " | ".join(f"set {k}: PSNR @ bytes, net" for k in range(len(sets))) + " | seconds |")
    print("|---|" + "---|" * (len(sets) + 1))
    for c in [0.0, *args.c]:
        def codes(ys):
            plain = (ys >= 0).astype(np.uint8)
            return snap_parallel(codec._net, ys, plain, c) if c else plain
        train_codes = {flip: torch.from_numpy(codes(ys)) for flip, ys in y.items()}
        seconds = fine_tune_decoder(model, decoder0, frames, args.decoder_steps, args.lr, args.batch,
                                    lambda idx, x, mirrored, train=train_codes: train[mirrored][idx].float() * 2 - 1)
        cells = []
        for (f, ys), (p0, b0) in zip(sets, base):
            p, b = score(codec, f, codes(ys))
            cells.append(f"{p:.3f} @ {b:.1f}, {p - p0 - AVIF_DB_PER_DOUBLING * np.log2(b / b0):+.3f}")
        arm = f"snapped, c = {c}" if c else "plain codes (control)"
        print(f"| {arm} | " + " | ".join(cells) + f" | {seconds:.0f} |", flush=True)
    model.decoder.load_state_dict(decoder0)


def main() -> None:
    ap = data_parser(train_required=False)
    ap.add_argument("--c", nargs="+", type=float, required=True)
    ap.add_argument("--sequential", action="store_true", help="also the decoding-order variant")
    ap.add_argument("--decoder-steps", type=int, default=0, help="the decoder A/B instead (needs --train)")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-5)
    args = ap.parse_args()
    torch.manual_seed(0)
    codec = compressor.load(args.model)
    sets = []
    for folder in args.eval:
        frames = eval_frames(folder)
        sets.append((frames, latent(codec, frames)))
    if args.decoder_steps:
        if not args.train:
            ap.error("--decoder-steps needs --train")
        decoder_ab(codec, args, sets)
        return
    for folder, (frames, y) in zip(args.eval, sets):
        plain = (y >= 0).astype(np.uint8)
        p0, b0 = score(codec, frames, plain)
        print(f"{folder}: plain {p0:.3f} dB @ {b0:.1f} B")
        print("| c | variant | cells flipped | PSNR @ bytes | net |\n|---|---|---|---|---|")
        variants = [("one pass", snap_parallel)] + ([("decoding order", snap_sequential)] if args.sequential else [])
        for c in args.c:
            for name, snap in variants:
                snapped = snap(codec._net, y, plain, c)
                p, b = score(codec, frames, snapped)
                net = p - p0 - AVIF_DB_PER_DOUBLING * np.log2(b / b0)
                print(f"| {c} | {name} | {np.mean(snapped != plain):.2%} | {p:.3f} dB @ {b:.1f} B | {net:+.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
