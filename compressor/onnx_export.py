"""ONNX export: a model's encoder (frames -> tokens) and decoder (tokens -> frames) as two .onnx files,
so tokens decode with onnxruntime on a machine without torch.

    encoder.onnx   frames uint8 (N, H, W, 3)  ->  tokens int32 (N, h, w), latent float32 (N, C, h, w)
    decoder.onnx   tokens int32 (N, h, w)     ->  frames uint8 (N, H, W, 3)

Both run at the model's frame (128x256 for the shipped models: h, w = 8, 16) with any batch N. Tokens
follow `compressor.tokens`: bit k is latent channel k. The graphs are the float32 path (the codec's
`encode_precision="fp32"`, `decode_precision="fp32"`), attention included.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OPSET = 17


class _TokenBits(nn.Module):
    """A model and the value of each channel's bit in a token: `powers[k]` = 2**k (bit k = channel k)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("powers", 2 ** torch.arange(model.latent_channels, dtype=torch.int64))  # (C,)


class FramesToTokens(_TokenBits):
    def forward(self, frames: torch.Tensor):
        x = frames.permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W)
        latent = self.model.encoder(x)  # (N, C, h, w)
        bits = (latent >= 0).to(torch.int64)  # the codec's rule: 0 codes as 1
        tokens = (bits * self.powers[None, :, None, None]).sum(dim=1)  # (N, h, w)
        return tokens.to(torch.int32), latent


class TokensToFrames(_TokenBits):
    def forward(self, tokens: torch.Tensor):
        t = tokens.to(torch.int64)[:, None]  # (N, 1, h, w)
        bits = torch.remainder(torch.div(t, self.powers[None, :, None, None], rounding_mode="floor"), 2)  # (N, C, h, w)
        images = self.model.decoder(bits.float() * 2 - 1).clamp(0, 1)  # (N, 3, H, W)
        return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (N, H, W, 3)


def export_onnx(codec, out_dir: str | Path, frame_size: tuple[int, int]) -> tuple[Path, Path]:
    """Write `encoder.onnx` and `decoder.onnx` for `codec` at `frame_size` into `out_dir` (which exists)."""
    out_dir = Path(out_dir)
    model = codec.model.float().eval()
    h, w = model.latent_grid(*frame_size)
    if (h * model.stride, w * model.stride) != tuple(frame_size):
        raise ValueError(f"frame size {frame_size} is not a multiple of the model's stride {model.stride}")
    frames = torch.zeros(2, *frame_size, 3, dtype=torch.uint8)
    tokens = torch.zeros(2, h, w, dtype=torch.int32)
    encoder, decoder = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    with torch.no_grad():
        torch.onnx.export(FramesToTokens(model), (frames,), str(encoder), input_names=["frames"],
                          output_names=["tokens", "latent"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"frames": {0: "n"}, "tokens": {0: "n"}, "latent": {0: "n"}})
        torch.onnx.export(TokensToFrames(model), (tokens,), str(decoder), input_names=["tokens"],
                          output_names=["frames"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"tokens": {0: "n"}, "frames": {0: "n"}})
    return encoder, decoder
