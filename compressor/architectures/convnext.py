"""`convnext`: the all-convolutional codec (Liu et al. 2022, "A ConvNet for the 2020s"). No attention.

Encoder:  4x4 stride-4 patchify conv -> stage at H/4 -> [LayerNorm2d, 2x2 stride-2 conv] -> stage at H/8
          -> [LayerNorm2d, 2x2 stride-2 conv] -> stage at H/16 -> LayerNorm2d -> 1x1 conv to 14 channels
                                                                     (B, 3, H, W) -> (B, 14, H/16, W/16)
Decoder:  the mirror: 1x1 conv from 14 channels -> stage at H/16 -> [LayerNorm2d, conv + pixel shuffle x2]
          -> stage at H/8 -> ... -> stage at H/4 -> conv + pixel shuffle x4 to RGB
                                                                     (B, 14, H/16, W/16) -> (B, 3, H, W)
Downsampling and upsampling layers are kept apart from the stages, as in the paper's figure.
Upsampling is a convolution to 4 (or 16) times the channels followed by a pixel shuffle (sub-pixel
convolution), which avoids the checkerboard of transposed convolutions.
"""
from __future__ import annotations

import torch
from torch import nn

from compressor.layers import ConvNeXtBlock, LayerNorm2d


def _stage(dim: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvNeXtEncoder(nn.Module):
    """g_a of the `convnext` codec: three ConvNeXt stages at 1/4, 1/8 and 1/16 resolution."""

    stride = 16

    def __init__(self, *, latent_channels: int = 14, dims=(64, 128, 256), depths=(2, 2, 6)):
        super().__init__()
        self.latent_channels = latent_channels
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))
        self.stages = nn.ModuleList(_stage(d, n) for d, n in zip(dims, depths))
        self.downsample = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            for i in range(len(dims) - 1)
        )
        self.head = nn.Sequential(LayerNorm2d(dims[-1]), nn.Conv2d(dims[-1], latent_channels, kernel_size=1))
        _init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, latent_channels, H/16, W/16)."""
        x = self.stages[0](self.stem(images - 0.5))  # (B, C0, H/4, W/4)
        for down, stage in zip(self.downsample, self.stages[1:]):
            x = stage(down(x))
        return self.head(x)  # (B, 14, H/16, W/16)


class ConvNeXtDecoder(nn.Module):
    """g_s of the `convnext` codec: stages at 1/16, 1/8 and 1/4 resolution, sub-pixel upsampling."""

    stride = 16

    def __init__(self, *, latent_channels: int = 14, dims=(256, 128, 64), depths=(8, 2, 2)):
        super().__init__()
        self.latent_channels = latent_channels
        self.embed = nn.Conv2d(latent_channels, dims[0], kernel_size=1)
        self.stages = nn.ModuleList(_stage(d, n) for d, n in zip(dims, depths))
        self.upsample = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], 4 * dims[i + 1], kernel_size=3, padding=1),
                          nn.PixelShuffle(2))
            for i in range(len(dims) - 1)
        )
        self.head = nn.Sequential(LayerNorm2d(dims[-1]), nn.Conv2d(dims[-1], 3 * 16, kernel_size=3, padding=1),
                                  nn.PixelShuffle(4))
        _init(self)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, 3, 16h, 16w), roughly in [0, 1] (not clamped)."""
        x = self.stages[0](self.embed(latent))  # (B, C0, h, w)
        for up, stage in zip(self.upsample, self.stages[1:]):
            x = stage(up(x))
        return self.head(x) + 0.5  # (B, 3, 16h, 16w)
