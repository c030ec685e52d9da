"""The shared building blocks: attention, MLP, transformer block, positions, patch (un)folding.

Every architecture file builds from these; none defines its own copy.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p*p*C), row-major over the patch grid.

    A pure reshape, so the ViT's "patch embedding" is one nn.Linear and the model holds no conv module.
    """
    return rearrange(images, "b c (gh p) (gw q) -> b (gh gw) (p q c)", p=patch_size, q=patch_size)


def unpatchify(tokens: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int = 3) -> torch.Tensor:
    """(B, gh*gw, p*p*C) -> (B, C, gh*p, gw*p); the inverse of `patchify`."""
    return rearrange(tokens, "b (gh gw) (p q c) -> b c (gh p) (gw q)", gh=grid[0], gw=grid[1], p=patch_size, q=patch_size, c=channels)


def sincos_positions(grid: tuple[int, int], dim: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """2-D sine-cosine position table (gh*gw, dim) computed for any grid size.

    Nothing is learned per position, so a model trained on 8x16 token grids codes any other grid.
    Half the channels encode the row, half the column, as in MAE.
    """
    if dim % 4:
        raise ValueError(f"position dim must be a multiple of 4, got {dim}")
    gh, gw = grid
    quarter = dim // 4
    freqs = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    rows = torch.arange(gh, device=device, dtype=torch.float32)[:, None] * freqs  # (gh, dim/4)
    cols = torch.arange(gw, device=device, dtype=torch.float32)[:, None] * freqs  # (gw, dim/4)
    row_table = torch.cat([rows.sin(), rows.cos()], dim=1)  # (gh, dim/2)
    col_table = torch.cat([cols.sin(), cols.cos()], dim=1)  # (gw, dim/2)
    table = torch.cat(
        [row_table[:, None, :].expand(gh, gw, dim // 2), col_table[None, :, :].expand(gh, gw, dim // 2)], dim=2
    )  # (gh, gw, dim)
    return table.reshape(gh * gw, dim).to(dtype)


class MLP(nn.Module):
    """Two linear layers with GELU between, expanding by `ratio`."""

    def __init__(self, dim: int, *, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


# Set by `cpu_attention_path()`: encoding, decoding, the encoder-side searches' decoder passes (backward
# included, so they score a code as decoding will compute it) and training take the CPU path below. At
# encode time an encoder's bf16 rounding decides bits (the signs of latents near zero), and the path's
# bf16 scores flip a few more of them than the fused kernel (up to 0.51% against fp32 encoding, where
# the fused kernel flips at most 0.43%). Encoding kept the fused kernel for that until the default's
# snapping made encoding slower: the path encodes 32 frames of vit.default in 126 ms against 133 ms,
# and moved its PSNR by at most 0.0004 dB and its files by at most 0.1 B on the evaluation frames.
_CPU_PATH: ContextVar[bool] = ContextVar("cpu_attention_path", default=False)


@contextmanager
def cpu_attention_path():
    """Within this context, bf16 attention on a CPU runs as `attend`'s batched matmuls."""
    token = _CPU_PATH.set(True)
    try:
        yield
    finally:
        _CPU_PATH.reset(token)


# Most score elements one batched matmul makes in `attend`'s CPU path: 4 MB in bf16, which stays in
# cache on these CPUs; the whole batch's scores at once (33 MB for 32 frames of 512 tokens) ran 3.5x slower.
_CPU_SCORES = 1 << 21


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd) + bias) v for (B, heads, N, hd) tensors; `bias` additive, broadcastable.

    GPUs and float32 go through PyTorch's fused SDPA kernel. bf16 on a CPU inside
    `cpu_attention_path()` (the codec's passes, training) runs as two batched matmuls (bf16 matrix units) and a
    softmax, a few frames at a time, where the fused kernel measured 2.5-3.5x slower (32 frames, 2
    threads: 5.5 -> 1.6 ms for 128 tokens, 25 -> 10 ms for 512); autograd differentiates it as it
    stands, and backward passes gain too (the fused kernel's CPU backward is slower still).
    """
    if not _CPU_PATH.get() or q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    b, heads, n, hd = q.shape
    step = max(1, _CPU_SCORES // (heads * n * n))
    out = []
    for i in range(0, b, step):
        scores = q[i : i + step] @ k[i : i + step].transpose(-1, -2) * hd**-0.5  # (b', heads, N, N)
        if bias is not None:
            scores = scores + (bias if bias.dim() < 4 or bias.shape[0] == 1 else bias[i : i + step])
        out.append(torch.softmax(scores, dim=-1) @ v[i : i + step])  # (b', heads, N, hd)
    return torch.cat(out)


class Attention(nn.Module):
    """Multi-head self-attention over a token sequence (`attend`: PyTorch's fused SDPA kernel, or its CPU path).

    `attn_bias` (optional, broadcastable to (B, heads, N, N)) carries relative-position biases or masks
    for windowed variants; global attention passes none so the flash / memory-efficient kernels apply.
    """

    def __init__(self, dim: int, *, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)  # (B, N, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, hd)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)  # SDPA wants the mask in the query's dtype (bf16 under autocast)
        out = attend(q, k, v, attn_bias)  # (B, heads, N, hd)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(out)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, *, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads=heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, ratio=mlp_ratio)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attn_bias)
        return x + self.mlp(self.norm2(x))


def init_transformer_weights(module: nn.Module) -> None:
    """Xavier-uniform linears and zero biases, as in MAE; LayerNorms start at identity."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())



class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor, as ConvNeXt uses between stages."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022): depthwise 7x7 -> LayerNorm -> Linear 4x -> GELU -> Linear, residual.

    Of the paper's two equivalent forms this is the second (permute to channels-last, LayerNorm and
    nn.Linear for the pointwise layers), which the authors found faster in PyTorch. `layer_scale`
    multiplies the residual branch per channel, initialised small as in the paper.
    """

    def __init__(self, dim: int, *, mlp_ratio: float = 4.0, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, ratio=mlp_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.mlp(self.norm(y)) * self.gamma
        return x + y.permute(0, 3, 1, 2)  # (B, C, H, W)


def tokens_to_grid(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, gh*gw, D) -> (B, D, gh, gw)."""
    return rearrange(tokens, "b (gh gw) d -> b d gh gw", gh=grid[0], gw=grid[1])


def grid_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, D, gh, gw) -> (B, gh*gw, D), row-major."""
    return rearrange(x, "b d gh gw -> b (gh gw) d")


# Logit added for keys a query must not see; finite so that a window of padding only yields
# (discarded) values rather than NaN.
MASKED = -1e4


class WindowTransformerBlock(nn.Module):
    """Transformer block whose attention stays inside non-overlapping windows of tokens (Swin, Liu et al. 2021).

    Input and output are token grids (B, gh, gw, D). The grid is padded to a multiple of the window
    (padding keys are masked), optionally rolled by half a window so that alternate blocks connect
    neighbouring windows (the shifted-window scheme, with its region mask), and cut into windows of
    `window`**2 tokens that share one set of weights. Positions enter only as a learned bias per
    relative offset inside the window, so the block works the same at any grid size, and every
    attention call sees exactly `window`**2 tokens: cost is linear in the number of tokens.
    """

    def __init__(self, dim: int, *, heads: int, window: int = 8, shift: bool = False, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.shift = window // 2 if shift else 0
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads=heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, ratio=mlp_ratio)
        self.relative_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + window - 1  # (2, N, N), offsets shifted to >= 0
        self.register_buffer("relative_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)  # (N, N)

    def _mask(self, gh: int, gw: int, ph: int, pw: int, device) -> torch.Tensor:
        """(windows, N, N) additive mask: padding keys, and after the roll, keys from another region."""
        w, s = self.window, self.shift
        valid = torch.zeros(ph, pw, device=device)
        valid[:gh, :gw] = 1
        region = torch.zeros(ph, pw, device=device)
        if s:
            for i, rows in enumerate((slice(0, ph - w), slice(ph - w, ph - s), slice(ph - s, ph))):
                for j, cols in enumerate((slice(0, pw - w), slice(pw - w, pw - s), slice(pw - s, pw))):
                    region[rows, cols] = 3 * i + j
            valid = torch.roll(valid, (-s, -s), (0, 1))
        region_w = rearrange(region, "(nh i) (nw j) -> (nh nw) (i j)", i=w, j=w)  # (windows, N)
        valid_w = rearrange(valid, "(nh i) (nw j) -> (nh nw) (i j)", i=w, j=w)  # (windows, N)
        allowed = (region_w[:, :, None] == region_w[:, None, :]) & (valid_w[:, None, :] > 0)  # (windows, N, N)
        return torch.where(allowed, 0.0, MASKED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, gh, gw, d = x.shape
        w, s = self.window, self.shift
        ph, pw = -(-gh // w) * w, -(-gw // w) * w
        y = F.pad(self.norm1(x), (0, 0, 0, pw - gw, 0, ph - gh))  # (B, ph, pw, D)
        if s:
            y = torch.roll(y, (-s, -s), (1, 2))
        windows = rearrange(y, "b (nh i) (nw j) d -> (b nh nw) (i j) d", i=w, j=w)  # (B*nW, N, D)
        bias = self.relative_bias[self.relative_index].permute(2, 0, 1)  # (heads, N, N)
        mask = self._mask(gh, gw, ph, pw, x.device)  # (nW, N, N)
        attn_bias = (bias[None] + mask[:, None]).repeat(b, 1, 1, 1)  # (B*nW, heads, N, N)
        out = self.attn(windows, attn_bias)  # (B*nW, N, D)
        out = rearrange(out, "(b nh nw) (i j) d -> b (nh i) (nw j) d", b=b, nh=ph // w, i=w, j=w)  # (B, ph, pw, D)
        if s:
            out = torch.roll(out, (s, s), (1, 2))
        x = x + out[:, :gh, :gw]
        return x + self.mlp(self.norm2(x))
