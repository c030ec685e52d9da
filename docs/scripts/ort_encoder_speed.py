"""The default's encoder network alone, onnxruntime against torch float32, frames/s on this CPU.

    compressor export-onnx vit.default /tmp/onnx
    python docs/scripts/ort_encoder_speed.py /tmp/onnx ../shared/data/eval/driving-frames-128x256

256 frames (the folder's, repeated), batches of 32 and 64, two threads each, two rounds interleaved;
then the share of latent signs the two agree on. The snap and the coder are left out: only the network.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
import torch

import compressor
from compressor.codec import Codec
from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_dir")
    ap.add_argument("frames")
    args = ap.parse_args()
    torch.set_num_threads(2)
    real = np.stack([to_rgb_array(f) for f in expand_paths([args.frames])])
    frames = np.resize(real, (256, *real.shape[1:]))  # the folder's frames, repeated to 256
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    enc = ort.InferenceSession(f"{args.onnx_dir}/encoder.onnx", opts, providers=["CPUExecutionProvider"])
    loaded = compressor.load("vit.default")
    codec = Codec(loaded.model, loaded.card, encode_precision="fp32")

    def torch_latent(batch):
        with torch.inference_mode():
            return codec._encode_latent(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255, None).numpy()

    def rate(run, b):
        start = time.perf_counter()
        for i in range(0, len(frames), b):
            run(frames[i : i + b])
        return len(frames) / (time.perf_counter() - start)

    ort_latent = lambda batch: enc.run(None, {"frames": batch})[1]  # noqa: E731
    rate(ort_latent, 32), rate(torch_latent, 32)  # warm-up
    for r in range(2):
        for b in (32, 64):
            print(f"round {r + 1}, batch {b}: onnxruntime {rate(ort_latent, b):.0f} frames/s, "
                  f"torch float32 {rate(torch_latent, b):.0f} frames/s", flush=True)
    agree = np.mean((ort_latent(frames[:128]) >= 0) == (torch_latent(frames[:128]) >= 0))
    print(f"latent signs agree on {agree:.4%} of 128 frames' bits")


if __name__ == "__main__":
    main()
