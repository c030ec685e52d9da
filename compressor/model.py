"""The codec network: encoder + bottleneck + decoder, with the padding that lets any image size through.

    image (B, 3, H, W) -> pad to multiples of 16 (edge replicate) -> g_a -> y (B, 14, H'/16, W'/16)
      -> binarize -> symbols {0, 1} -> g_s -> (B, 3, H', W') -> crop to (H, W)

Encoders and decoders plug in through a tiny contract: `stride` (pixels per latent cell, 16) and
`latent_channels` attributes, and forward maps (B, 3, H, W) <-> (B, latent_channels, H/16, W/16).
An optional `global_attention = True` marks a half that attends over the whole grid: the codec then
codes images larger than the training frame in windows of that frame (`compressor.tiling`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from compressor.bottleneck import Bottleneck, binarize, latent_from_symbols, symbols_from_latent
from compressor.registry import get_architecture
from compressor.tiling import Tiling

if TYPE_CHECKING:  # the checkpoint module imports this one
    from compressor.checkpoint import ModelCard

LATENT_CHANNELS = 14


@dataclass
class ModelConfig:
    """Everything needed to rebuild a CompressionModel; stored as JSON in every checkpoint."""

    encoder: str = "vit"
    decoder: str = "vit"
    latent_channels: int = LATENT_CHANNELS
    encoder_args: dict = field(default_factory=dict)
    decoder_args: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)


class CompressionModel(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, bottleneck: Bottleneck):
        super().__init__()
        if encoder.latent_channels != decoder.latent_channels or encoder.stride != decoder.stride:
            raise ValueError(
                f"encoder ({encoder.latent_channels} channels, stride {encoder.stride}) does not fit decoder "
                f"({decoder.latent_channels} channels, stride {decoder.stride})"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.bottleneck = bottleneck
        self.stride = encoder.stride
        self.latent_channels = encoder.latent_channels

    @classmethod
    def from_config(cls, config: ModelConfig, *, trainable_entropy_model: bool = False) -> "CompressionModel":
        enc_cls = get_architecture(config.encoder).encoder_class()
        dec_cls = get_architecture(config.decoder).decoder_class()
        encoder = enc_cls(latent_channels=config.latent_channels, **config.encoder_args)
        decoder = dec_cls(latent_channels=config.latent_channels, **config.decoder_args)
        bottleneck = Bottleneck(config.latent_channels, trainable=trainable_entropy_model)
        return cls(encoder, decoder, bottleneck)

    @property
    def global_attention(self) -> bool:
        """Whether either half attends over the whole grid (then large images are coded in tiles)."""
        return any(getattr(half, "global_attention", False) for half in (self.encoder, self.decoder))

    def encode_latent(self, padded: torch.Tensor, tiling: Tiling | None = None) -> torch.Tensor:
        """(B, 3, 16gh, 16gw) -> y (B, C, gh, gw); with `tiling`, window by window (`compressor.tiling`)."""
        if tiling is None:
            return self.encoder(padded)
        return tiling.run(self.encoder, padded, cell_in=self.stride, cell_out=1)

    def decode_latent(self, latent: torch.Tensor, tiling: Tiling | None = None) -> torch.Tensor:
        """(B, C, gh, gw) in {-1, +1} -> (B, 3, 16gh, 16gw); with `tiling`, cut as `encode_latent` cut it."""
        if tiling is None:
            return self.decoder(latent)
        return tiling.run(self.decoder, latent, cell_in=1, cell_out=self.stride)

    def latent_grid(self, height: int, width: int) -> tuple[int, int]:
        """Latent cells for an image of this size: ceil(H/16) x ceil(W/16)."""
        return -(-height // self.stride), -(-width // self.stride)

    def pad(self, images: torch.Tensor) -> torch.Tensor:
        """Pad (B, 3, H, W) on the bottom and right to multiples of the stride, repeating the edge.

        Edge replication keeps the padded pixels cheap to code (no artificial edge to spend bits on).
        """
        h, w = images.shape[-2:]
        gh, gw = self.latent_grid(h, w)
        pad_h, pad_w = gh * self.stride - h, gw * self.stride - w
        if pad_h == 0 and pad_w == 0:
            return images
        return F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")

    def forward(self, images: torch.Tensor, surrogate_temperature: float = 1.0,
                quantize=None) -> dict[str, torch.Tensor]:
        """Training forward: (B, 3, H, W) -> reconstruction, symbols and estimated bits per image.

        `surrogate_temperature` shapes only the quantizer's backward pass (see `BinarySign`). `quantize`,
        if given, replaces the quantizer: float latent (B, C, gh, gw) -> code in {-1, +1}, such as the
        trainer's snap of a frozen encoder's latent.
        """
        h, w = images.shape[-2:]
        y = self.encoder(self.pad(images))  # (B, C, gh, gw)
        quantize = quantize or (lambda latent: binarize(latent, surrogate_temperature))
        y_hat = quantize(y.float())  # (B, C, gh, gw) in {-1, +1}
        reconstruction = self.decoder(y_hat.to(y.dtype))[..., :h, :w]  # (B, 3, H, W)
        symbols = (y_hat + 1) / 2
        return {"reconstruction": reconstruction, "symbols": symbols, "bits": self.bottleneck.bits(symbols)}

    @torch.no_grad()
    def encode_symbols(self, images: torch.Tensor, tiling: Tiling | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> uint8 symbols (B, C, ceil(H/16), ceil(W/16))."""
        return symbols_from_latent(self.encode_latent(self.pad(images), tiling).float())

    @torch.no_grad()
    def decode_symbols(self, symbols: torch.Tensor, size: tuple[int, int],
                       tiling: Tiling | None = None) -> torch.Tensor:
        """uint8 symbols (B, C, gh, gw) -> images (B, 3, H, W) clamped to [0, 1]."""
        h, w = size
        images = self.decode_latent(latent_from_symbols(symbols, torch.float32), tiling)
        return images[..., :h, :w].float().clamp(0, 1)


def load_model(path) -> tuple[CompressionModel, ModelCard]:
    """Rebuild the model of a release checkpoint in float32 eval mode: (CompressionModel, ModelCard)."""
    from compressor.checkpoint import read_tensors
    from compressor.errors import ModelError

    tensors, info = read_tensors(path)
    try:
        model = CompressionModel.from_config(ModelConfig.from_dict(info.config))
    except (TypeError, ValueError, RuntimeError) as e:  # RuntimeError: torch refusing a size (negative, say)
        raise ModelError(f"{info.path}: config does not build a model: {e}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # the first line only names the model class
        raise ModelError(f"{info.path}: weights do not fit the config: {detail}") from None
    model.eval()
    return model, info
