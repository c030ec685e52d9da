"""`vit`: the pure Vision Transformer codec (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Encoder:  image -> 16x16 patches -> one nn.Linear -> + 2-D sin-cos positions -> global-attention blocks
          -> LayerNorm -> nn.Linear to `latent_channels`                    (B, 3, H, W) -> (B, 14, H/16, W/16)
Decoder:  latent tokens -> nn.Linear -> global-attention blocks -> each token split into 2x2 sub-tokens
          (8x8 pixels) -> a few more global-attention blocks -> nn.Linear to pixels
                                                                           (B, 14, H/16, W/16) -> (B, 3, H, W)

There is no convolution module anywhere: patch (un)folding is a reshape. The decoder's 8x8 stage lets
neighbouring sub-patches agree across the 16x16 patch borders, which a single linear head to 16x16x3
pixels cannot, and which shows as blocking at 14 bits per patch.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from compressor.layers import TransformerBlock, init_transformer_weights, patchify, sincos_positions, unpatchify


class ViTEncoder(nn.Module):
    """g_a of the `vit` codec: global self-attention over 16x16-pixel tokens."""

    stride = 16
    global_attention = True  # larger images are coded in windows of the training frame (tiling.py)

    def __init__(self, *, latent_channels: int = 14, dim: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels = latent_channels
        self.dim = dim
        self.embed = nn.Linear(self.stride * self.stride * 3, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads=heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, latent_channels)
        init_transformer_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, latent_channels, H/16, W/16)."""
        b, _, h, w = images.shape
        grid = (h // self.stride, w // self.stride)
        x = self.embed(patchify(images - 0.5, self.stride))  # (B, N, D)
        x = x + sincos_positions(grid, self.dim, device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x)
        y = self.head(self.norm(x))  # (B, N, C)
        return y.transpose(1, 2).reshape(b, self.latent_channels, *grid)  # (B, C, gh, gw)


class ViTDecoder(nn.Module):
    """g_s of the `vit` codec: global attention over latent tokens, then over 8x8-pixel sub-tokens."""

    stride = 16
    global_attention = True  # larger images are coded in windows of the training frame (tiling.py)

    def __init__(
        self,
        *,
        latent_channels: int = 14,
        dim: int = 256,
        depth: int = 6,
        heads: int = 4,
        refine_dim: int = 128,
        refine_depth: int = 2,
        refine_heads: int = 2,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.latent_channels = latent_channels
        self.dim = dim
        self.refine_dim = refine_dim
        self.sub_patch = self.stride // 2
        self.embed = nn.Linear(latent_channels, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads=heads, mlp_ratio=mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.split = nn.Linear(dim, 4 * refine_dim)
        self.refine = nn.ModuleList(
            TransformerBlock(refine_dim, heads=refine_heads, mlp_ratio=mlp_ratio) for _ in range(refine_depth)
        )
        self.refine_norm = nn.LayerNorm(refine_dim)
        self.head = nn.Linear(refine_dim, self.sub_patch * self.sub_patch * 3)
        init_transformer_weights(self)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, h, w) -> (B, 3, 16h, 16w), roughly in [0, 1] (not clamped)."""
        gh, gw = latent.shape[-2:]
        x = self.embed(latent.flatten(2).transpose(1, 2))  # (B, gh*gw, D)
        x = x + sincos_positions((gh, gw), self.dim, device=x.device, dtype=x.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.split(self.norm(x))  # (B, gh*gw, 4*Dr)
        x = rearrange(x, "b (gh gw) (i j d) -> b (gh i gw j) d", gh=gh, gw=gw, i=2, j=2)  # (B, 2gh*2gw, Dr)
        fine_grid = (2 * gh, 2 * gw)
        x = x + sincos_positions(fine_grid, self.refine_dim, device=x.device, dtype=x.dtype)
        for block in self.refine:
            x = block(x)
        pixels = self.head(self.refine_norm(x))  # (B, 2gh*2gw, 8*8*3)
        return unpatchify(pixels, self.sub_patch, fine_grid) + 0.5  # (B, 3, 16gh, 16gw)
