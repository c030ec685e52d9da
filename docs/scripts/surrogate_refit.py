"""How much does the quantizer's surrogate gradient hold an encoder back? A short, controlled test.

    python docs/scripts/surrogate_refit.py --model vit-long --temperature 8 [--steps 300 --lr 5e-4 --batch 16]

Fine-tunes only the encoder of a shipped model against its frozen decoder, with the binary quantizer's
backward pass set to the gradient of t * tanh(y / t) (`--temperature 1e9` is the identity estimator),
and prints the mean PSNR on the two frame sets before and after, through the codec's own encode and
decode (bitstream, 8-bit output, the decoder's precision) as `compressor eval` scores. No weight decay, no warmup, cosine decay, batches drawn
with a fixed seed from the training crop pool (`compressor train`'s cached pool, cut on first use), so
settings are compared on the same frames. `--grow N` appends N transformer blocks to the encoder that
start as the identity (a deeper encoder from the same weights). The training record's surrogate numbers come
from this script on 1 thread (`--threads 1`).
"""
import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from compressor.bottleneck import binarize
from compressor.model import load_model
from compressor.zoo import resolve
from compressor.codec import Codec
from compressor.images import to_rgb_array
from compressor.layers import TransformerBlock
from compressor.measure.evaluate import expand_paths
from compressor.metrics import psnr
from compressor.training.config import TrainConfig
from compressor.training.data import cached_pool, find_images, split_files

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "eval"


def mean_psnr(codec: Codec, frames: list[np.ndarray]) -> float:
    decoded = codec.decode_batch_arrays(codec.encode_batch(frames))
    return float(np.mean([psnr(a, d) for a, d in zip(frames, decoded)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit-long")
    ap.add_argument("--temperature", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--grow", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(EVAL.parent / "train"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, card = load_model(resolve(args.model))
    codec = Codec(model, card)  # holds `model` itself, so it scores the weights as they are trained
    for _ in range(args.grow):  # zeroed output projections: each new block starts as the identity
        block = TransformerBlock(model.encoder.dim, heads=model.encoder.blocks[0].attn.heads)
        for layer in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        model.encoder.blocks.append(block)
    sets = {name: [to_rgb_array(p) for p in expand_paths([str(EVAL / name)])]
            for name in ("kodak-frames-128x256", "driving-frames-128x256")}
    kodak = torch.from_numpy(np.stack(sets["kodak-frames-128x256"])).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
    with torch.no_grad():
        y = model.encoder(kodak).abs().flatten()
    print(f"|y| on kodak-frames: median {y.median():.2f}, 90th pct {y.quantile(0.9):.2f}, "
          f"beyond 2: {(y > 2).float().mean():.0%}")
    before = {name: mean_psnr(codec, frames) for name, frames in sets.items()}

    cfg = TrainConfig()  # the crop pool training cuts, shared through its cache
    train_files, _ = split_files(find_images([args.data]))
    pool = cached_pool(train_files, cfg.crop, cfg.pool_size, cfg.seed, cfg.cache_dir or ".")  # (N, H, W, 3) uint8
    rng = np.random.default_rng(1)
    model.decoder.requires_grad_(False)
    model.train()
    opt = torch.optim.AdamW(model.encoder.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    t0 = time.time()
    for step in range(args.steps):
        idx = np.sort(rng.choice(len(pool), args.batch, replace=False))
        x = torch.from_numpy(pool[idx]).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model.encoder(x)
            out = model.decoder(binarize(y.float(), args.temperature).to(y.dtype))
        loss = (out.float() - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), 1.0)
        opt.step()
    model.eval()
    after = {name: mean_psnr(codec, frames) for name, frames in sets.items()}
    for name in sets:
        print(f"{name}: {before[name]:.2f} -> {after[name]:.2f} dB")
    print(f"{args.steps} steps x {args.batch}, t = {args.temperature:g}, lr {args.lr:g}: {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
