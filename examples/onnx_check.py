"""Compare `compressor export-onnx`'s encoder and decoder (onnxruntime) with the torch float32 path.

    compressor export-onnx vit.default /tmp/onnx
    python examples/onnx_check.py /tmp/onnx /tmp/drive1200.mp4 --frames 256

Prints the share of token bits on which the two encoders agree (for a model that snaps, the ONNX
latent snapped with the exported `context_net.npz`, as the codec snaps) and the mean PSNR of both decoders'
frames against the input frames.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

import compressor
from compressor.codec import Codec
from compressor.context_net import ContextNet, snap
from compressor.frames import expand_inputs, iter_frames
from compressor.metrics import psnr
from compressor.tokens import tokens_from_symbols


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx_dir")
    p.add_argument("video")
    p.add_argument("--frames", type=int, default=256)
    args = p.parse_args()
    meta = json.loads((Path(args.onnx_dir) / "model.json").read_text())
    loaded = compressor.load(meta["model"])
    codec = Codec(loaded.model, loaded.card, encode_precision="fp32", decode_precision="fp32")
    frames = []
    for _, f in iter_frames(expand_inputs([args.video]), tuple(meta["frame_size"])):
        frames.append(f)
        if len(frames) == args.frames:
            break
    frames = np.stack(frames)
    enc = ort.InferenceSession(str(Path(args.onnx_dir) / "encoder.onnx"))
    dec = ort.InferenceSession(str(Path(args.onnx_dir) / "decoder.onnx"))
    runs = [enc.run(None, {"frames": frames[i : i + 32]}) for i in range(0, len(frames), 32)]
    onnx_tokens = np.concatenate([tokens for tokens, _ in runs])
    if meta.get("snap"):  # the codec's tokens: the latent's signs snapped by the context net (numpy only)
        net = ContextNet(dict(np.load(Path(args.onnx_dir) / "context_net.npz")))
        onnx_tokens = tokens_from_symbols(snap(net, np.concatenate([latent for _, latent in runs]), meta["snap"]))
    tokens = codec.tokens(frames)
    bits = lambda t: np.unpackbits(np.ascontiguousarray(t, "<u2").view(np.uint8))  # noqa: E731
    onnx_frames = np.concatenate([dec.run(None, {"tokens": tokens[i : i + 32].astype(np.int32)})[0]
                                  for i in range(0, len(tokens), 32)])
    torch_frames = codec.from_tokens(tokens)
    p_onnx = np.mean([psnr(a, b) for a, b in zip(frames, onnx_frames)])
    p_torch = np.mean([psnr(a, b) for a, b in zip(frames, torch_frames)])
    print(f"{meta['model']}, {len(frames)} frames: token bits agree {100 * (bits(onnx_tokens) == bits(tokens)).mean():.3f}%; "
          f"PSNR onnxruntime {p_onnx:.4f} dB, torch fp32 {p_torch:.4f} dB (difference {p_onnx - p_torch:+.4f}); "
          f"pixels differ by at most {np.abs(onnx_frames.astype(int) - torch_frames).max()}")


if __name__ == "__main__":
    main()
