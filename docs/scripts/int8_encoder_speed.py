"""The default's encoder with int8 linears (torch dynamic quantisation) against float32, on this CPU.

    python docs/scripts/int8_encoder_speed.py ../shared/data/eval/driving-frames-128x256 \
        ../shared/data/eval/kodak-frames-128x256

Speed: the encoder network alone, 256 frames of the first folder (repeated), batches of 32, two
threads, two rounds interleaved. Then, on every folder, the share of symbols the int8 encoder's snapped
codes share with float32's, and the PSNR of both decoded by the same (float32) decoder: what a user
would trade for the speed. The coder is left out.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import compressor
from compressor import context_net
from compressor.codec import Codec
from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths
from compressor.metrics import psnr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(2)
    loaded = compressor.load("vit.default")
    codec = Codec(loaded.model, loaded.card, encode_precision="fp32", decode_precision="fp32")
    int8 = copy.deepcopy(codec.model)
    int8.encoder = torch.ao.quantization.quantize_dynamic(int8.encoder, {torch.nn.Linear}, dtype=torch.qint8)
    quant = Codec(int8, loaded.card, encode_precision="fp32", decode_precision="fp32")

    def latent(c, batch):
        with torch.inference_mode():
            return c._encode_latent(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255, None).numpy()

    real = [np.stack([to_rgb_array(f) for f in expand_paths([folder])]) for folder in args.folders]
    frames = np.resize(real[0], (256, *real[0].shape[1:]))

    def rate(c):
        start = time.perf_counter()
        for i in range(0, len(frames), 32):
            latent(c, frames[i : i + 32])
        return len(frames) / (time.perf_counter() - start)

    rate(codec), rate(quant)  # warm-up
    for r in range(2):
        print(f"round {r + 1}, batch 32: float32 {rate(codec):.0f} frames/s, int8 linears {rate(quant):.0f} frames/s",
              flush=True)
    for folder, f in zip(args.folders, real):
        codes = [context_net.snap(codec._net, np.concatenate([latent(c, f[i : i + 32]) for i in range(0, len(f), 32)]),
                                  codec.snap) for c in (codec, quant)]
        scores = [np.mean([psnr(a, b) for a, b in zip(f, codec.frames_from_symbols(s))]) for s in codes]
        print(f"{folder}: {np.mean(codes[0] == codes[1]):.4%} of symbols agree; PSNR float32 {scores[0]:.3f} dB, "
              f"int8 {scores[1]:.3f} dB")


if __name__ == "__main__":
    main()
