"""`hybrid`: convolution, stride and pooling first, self-attention on top (the DETR split, Carion et al. 2020).

Encoder:  conv 3x3 s2 -> conv 3x3 s2 -> conv 3x3 s2 -> 2x2 average pool   (the low level, to the 16-pixel grid)
          -> 1x1 projection to tokens -> + 2-D sin-cos positions -> global-attention blocks
          -> LayerNorm -> nn.Linear to 14 channels                       (B, 3, H, W) -> (B, 14, H/16, W/16)
Decoder:  the mirror: nn.Linear from 14 channels -> global-attention blocks over the latent tokens
          -> 4 x [conv 3x3 to 4x channels + pixel shuffle x2, GELU] -> conv 3x3 to RGB
                                                                         (B, 14, H/16, W/16) -> (B, 3, H, W)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compressor.layers import (
    TransformerBlock,
    grid_to_tokens,
    init_transformer_weights,
    sincos_positions,
    tokens_to_grid,
)


class HybridEncoder(nn.Module):
    """g_a of the `hybrid` codec: a strided conv stem and a pool, then global attention over tokens."""

    stride = 16
    global_attention = True  # larger images are coded in windows of the training frame (tiling.py)

    def __init__(self, *, latent_channels: int = 14, stem=(64, 128, 256), dim: int = 256, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels = latent_channels
        self.dim = dim
        chans = (3, *stem)
        self.stem = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(len(stem)))
        self.pool = nn.AvgPool2d(2)
        self.project = nn.Conv2d(stem[-1], dim, kernel_size=1)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads=heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_channels)
        init_transformer_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, latent_channels, H/16, W/16)."""
        x = images - 0.5
        for i, conv in enumerate(self.stem):
            x = conv(x)
            x = F.gelu(x) if i < len(self.stem) - 1 else x
        x = self.project(self.pool(x))  # (B, D, H/16, W/16)
        grid = x.shape[-2:]
        x = grid_to_tokens(x)  # (B, N, D)
        x = x + sincos_positions(grid, self.dim, device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x)
        return tokens_to_grid(self.head(self.norm(x)), grid)  # (B, 14, gh, gw)


class HybridDecoder(nn.Module):
    """g_s of the `hybrid` codec: global attention over latent tokens, then sub-pixel conv upsampling."""

    stride = 16
    global_attention = True  # larger images are coded in windows of the training frame (tiling.py)

    def __init__(self, *, latent_channels: int = 14, dim: int = 256, depth: int = 6, heads: int = 4,
                 up=(128, 64, 32, 32), mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels = latent_channels
        self.dim = dim
        self.embed = nn.Linear(latent_channels, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads=heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        chans = (dim, *up)
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], 4 * chans[i + 1], 3, padding=1), nn.PixelShuffle(2))
            for i in range(len(up))
        )
        self.head = nn.Conv2d(up[-1], 3, 3, padding=1)
        init_transformer_weights(self)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, 3, 16h, 16w), roughly in [0, 1] (not clamped)."""
        grid = latent.shape[-2:]
        x = self.embed(grid_to_tokens(latent))  # (B, N, D)
        x = x + sincos_positions(grid, self.dim, device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x)
        x = tokens_to_grid(self.norm(x), grid)  # (B, D, gh, gw)
        for up in self.up:
            x = F.gelu(up(x))
        return self.head(x) + 0.5  # (B, 3, 16h, 16w)
