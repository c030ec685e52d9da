"""Fitting a context net (`compressor.context_net`) to a model's symbols: a float torch twin, trained by
cross-entropy, then quantised to the integer tensors the coder runs.

    symbols (N, C, h, w) -> per token: x (8C,) neighbours, s (C,) own bits -> float net -> C logits
    loss = mean binary cross-entropy (bits per symbol)        AdamW, one-cycle learning rate
    quantise: each layer's weights to integers <= 2047 at a power-of-two scale, biases at the
              accumulator's scale, and the GELU and sigmoid tables -> `context.net.*` tensors
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compressor import context_net as cn
from compressor.context_model import PROB_ONE

HIDDEN = 64
WIDTH = 16
BATCH = 4096  # tokens a step
GROUPS = 7  # channel groups: decoding steps per token diagonal (14 groups codes 1-2 B smaller, twice the steps)
# A temporal twin also reads the previous frame's tokens in the 3x3 window around the same place. Only
# measured (docs/scripts/temporal_net_probe.py: 1.5-5% below what clips write already), so the integer
# net and the format have no temporal inputs.
PREV_WINDOW = tuple((di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))


class FloatNet(nn.Module):
    """The float twin of `context_net.ContextNet`: same structure, real weights."""

    def __init__(self, channels: int = 14, hidden: int = HIDDEN, width: int = WIDTH, groups: int = GROUPS,
                 temporal: bool = False):
        super().__init__()
        self.channels, self.width = channels, width
        # Channels in `groups` contiguous groups, decoded one group a step; a channel reads its own
        # token's channels of earlier groups.
        self.register_buffer("group", torch.arange(channels) * groups // channels)
        self.l1 = nn.Linear((len(cn.NEIGHBOURS) + (len(PREV_WINDOW) if temporal else 0)) * channels, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.mix = nn.Linear(hidden, channels * width)
        self.prev = nn.Parameter(torch.zeros(channels, width, channels))
        self.out = nn.Linear(width, 1)
        self.head = nn.Linear(hidden, channels)
        self.register_buffer("mask", (self.group[None, :] < self.group[:, None]).float())  # (C, C')

    def forward(self, x: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """x (N, 8C) (temporal: (N, 17C), the previous frame's window after), own (N, C), all in {-1, 0, 1}
        -> logits (N, C)."""
        h = F.gelu(self.l2(F.gelu(self.l1(x))))  # (N, H)
        prev = self.prev * self.mask[:, None, :]  # (C, K, C'): channel c reads channels of earlier groups
        z = F.gelu(self.mix(h).view(-1, self.channels, self.width) + torch.einsum("nd,ckd->nck", own, prev))
        return self.out(z).squeeze(-1) + self.head(h)  # (N, C)


def features(signed: torch.Tensor, prev: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """signed (N, C, h, w) in {-1, +1} (differentiable: a rate under the twin can train an encoder) ->
    x (N*h*w, 8C), the earlier neighbours, 0 outside the grid as the coder has them, and own (N*h*w, C);
    with `prev` (N, C, h, w), each frame's previous frame, x is (N*h*w, 17C): its 3x3 window appended."""
    n, c, h, w = signed.shape
    p = cn.PAD

    def shifted(grid, offsets):  # grid (N, C, h, w) -> one (N, C, h, w) view per offset, zero-padded
        padded = F.pad(grid, (p, p, p, p))
        return [padded[:, :, p + di : p + di + h, p + dj : p + dj + w] for di, dj in offsets]

    parts = shifted(signed, cn.NEIGHBOURS) + ([] if prev is None else shifted(prev, PREV_WINDOW))
    x = torch.cat(parts, dim=1).permute(0, 2, 3, 1).reshape(-1, len(parts) * c)
    return x, signed.permute(0, 2, 3, 1).reshape(-1, c)


def token_data(symbols: np.ndarray, prev: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, h, w) uint8 -> `features` of their signed values, float32 in {-1, 0, 1}, one row per token."""
    signed = lambda s: torch.from_numpy(s).float() * 2 - 1  # noqa: E731
    return features(signed(symbols), None if prev is None else signed(prev))


def train(symbols: np.ndarray, *, steps: int = 5000, batch: int = BATCH, lr: float = 3e-3, seed: int = 0,
          log=None, prev: np.ndarray | None = None, hidden: int = HIDDEN, width: int = WIDTH,
          groups: int = GROUPS) -> FloatNet:
    """Fit a FloatNet to the symbols (N, C, h, w) of a model's frames by cross-entropy; given `prev`, each
    frame's previous frame (N, C, h, w), a temporal one."""
    torch.manual_seed(seed)
    x, own = token_data(symbols, prev)
    target = (own > 0).float()
    net = FloatNet(symbols.shape[1], hidden, width, groups, temporal=prev is not None)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = F.binary_cross_entropy_with_logits(net(x[idx], own[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step % 500 == 0 or step == steps - 1):
            log(f"context net step {step}: {loss.item() / math.log(2) * symbols[0].size / 8:.1f} B a frame (training batch)")
    return net.eval()


def _exponent(*weights: torch.Tensor) -> int:
    """The largest e with every |w| * 2^e <= WEIGHT_MAX."""
    top = max(float(w.abs().max()) for w in weights)
    return int(math.floor(math.log2(cn.WEIGHT_MAX / max(top, 1e-12))))


def _q(t: torch.Tensor, e: int, dtype) -> np.ndarray:
    return torch.round(t.detach().double() * 2.0**e).numpy().astype(dtype)


@torch.no_grad()
def quantise(net: FloatNet) -> dict[str, np.ndarray]:
    """The integer tensors of `context_net.ContextNet` (KEYS) from a trained FloatNet."""
    a = cn.ACT_OUT
    e1 = _exponent(net.l1.weight)
    e2 = _exponent(net.l2.weight)
    em = _exponent(net.mix.weight)
    eo = _exponent(net.out.weight, net.head.weight)
    grid = torch.arange(-cn.ACT_RANGE, cn.ACT_RANGE, dtype=torch.float64) / 2.0**cn.ACT_IN
    logits = torch.arange(-cn.LOGIT_RANGE, cn.LOGIT_RANGE, dtype=torch.float64) / 2.0**cn.LOGIT_IN
    tensors = {
        "w1": _q(net.l1.weight, e1, np.int16), "b1": _q(net.l1.bias, e1, np.int32),
        "w2": _q(net.l2.weight, e2, np.int16), "b2": _q(net.l2.bias, e2 + a, np.int32),
        "mix": _q(net.mix.weight, em, np.int16), "mix_bias": _q(net.mix.bias, em + a, np.int32),
        "prev": _q(net.prev * net.mask[:, None, :], em + a, np.int32),
        "out": _q(net.out.weight[0], eo, np.int16), "head": _q(net.head.weight, eo, np.int16),
        "out_bias": _q(net.head.bias + net.out.bias, eo + a, np.int32),
        "exponents": np.array([e1, e2, em, eo], np.int32),
        "act": torch.round(F.gelu(grid) * 2.0**a).numpy().astype(np.int32),
        "sigmoid": torch.round(torch.sigmoid(logits) * PROB_ONE).clamp(1, PROB_ONE - 1).numpy().astype(np.int32),
        "groups": net.group.numpy().astype(np.int32),
    }
    cn.check_exact(tensors)  # what loading checks too: a net that could not load is not written
    return tensors
