"""`cvit`: the "convolutional ViT": a ViT applied the way a ConvNet is, with local windows and shared weights.

The same linear 16x16 patch embedding as `vit`, but every attention is confined to windows of 8x8
tokens (Swin-style, Liu et al. 2021, alternating plain and half-window-shifted windows), with one set
of weights for all windows: attention used like a convolution's sliding kernel. Positions are only a
learned bias per relative offset inside a window, so the model has no notion of image size and codes
a 1024x2048 frame with the weights trained on 128x256 crops. Cost is linear in pixels.

Encoder:  patches -> nn.Linear -> windowed blocks over 16-px tokens -> LayerNorm -> nn.Linear to 14
                                                                     (B, 3, H, W) -> (B, 14, H/16, W/16)
Decoder:  nn.Linear from 14 -> windowed blocks -> each token split into 2x2 sub-tokens (8x8 pixels)
          -> windowed blocks over sub-tokens -> nn.Linear to pixels  (B, 14, H/16, W/16) -> (B, 3, H, W)
No convolution module anywhere, as in `vit`; the two differ only in the span of attention.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from compressor.layers import WindowTransformerBlock, init_transformer_weights, patchify, unpatchify


def _blocks(dim: int, depth: int, heads: int, window: int, mlp_ratio: float) -> nn.ModuleList:
    return nn.ModuleList(
        WindowTransformerBlock(dim, heads=heads, window=window, shift=bool(i % 2), mlp_ratio=mlp_ratio)
        for i in range(depth)
    )


class CViTEncoder(nn.Module):
    """g_a of the `cvit` codec: windowed attention over 16x16-pixel tokens."""

    stride = 16

    def __init__(self, *, latent_channels: int = 14, dim: int = 256, depth: int = 4, heads: int = 4,
                 window: int = 8, mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels = latent_channels
        self.window = window
        self.embed = nn.Linear(self.stride * self.stride * 3, dim)
        self.blocks = _blocks(dim, depth, heads, window, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_channels)
        init_transformer_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, latent_channels, H/16, W/16)."""
        gh, gw = images.shape[-2] // self.stride, images.shape[-1] // self.stride
        x = self.embed(patchify(images - 0.5, self.stride))  # (B, N, D)
        x = rearrange(x, "b (gh gw) d -> b gh gw d", gh=gh, gw=gw)  # (B, gh, gw, D)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)).permute(0, 3, 1, 2)  # (B, 14, gh, gw)


class CViTDecoder(nn.Module):
    """g_s of the `cvit` codec: windowed attention over latent tokens, then over 8x8-pixel sub-tokens."""

    stride = 16

    def __init__(self, *, latent_channels: int = 14, dim: int = 256, depth: int = 6, heads: int = 4,
                 refine_dim: int = 128, refine_depth: int = 2, refine_heads: int = 2, window: int = 8,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels = latent_channels
        self.refine_dim = refine_dim
        self.sub_patch = self.stride // 2
        self.embed = nn.Linear(latent_channels, dim)
        self.blocks = _blocks(dim, depth, heads, window, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.split = nn.Linear(dim, 4 * refine_dim)
        self.refine = _blocks(refine_dim, refine_depth, refine_heads, window, mlp_ratio)
        self.refine_norm = nn.LayerNorm(refine_dim)
        self.head = nn.Linear(refine_dim, self.sub_patch * self.sub_patch * 3)
        init_transformer_weights(self)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, 3, 16h, 16w), roughly in [0, 1] (not clamped)."""
        gh, gw = latent.shape[-2:]
        x = self.embed(latent.permute(0, 2, 3, 1))  # (B, gh, gw, D)
        for block in self.blocks:
            x = block(x)
        x = self.split(self.norm(x))  # (B, gh, gw, 4*Dr)
        x = rearrange(x, "b gh gw (i j d) -> b (gh i) (gw j) d", i=2, j=2)  # (B, 2gh, 2gw, Dr)
        for block in self.refine:
            x = block(x)
        pixels = self.head(self.refine_norm(x))  # (B, 2gh, 2gw, 8*8*3)
        pixels = rearrange(pixels, "b h w c -> b (h w) c")  # (B, 4*gh*gw, 192)
        return unpatchify(pixels, self.sub_patch, (2 * gh, 2 * gw)) + 0.5  # (B, 3, 16gh, 16gw)
