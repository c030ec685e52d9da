"""The spatial context tables as a rate in torch: each frame's code length, and what flipping each bit costs.

    symbols (B, C, h, w) in {0, 1} --same contexts as context_model.SPATIAL--> rows (B, C, h, w)
      bits(symbols)        (B,)          sum of -log2 P(s | context)      (what the .bin coder spends, ideally)
      flip_bits(symbols)   (B, C, h, w)  change of that sum if this one bit alone were flipped

A flip changes its own symbol's cost and the context (so the cost) of every later symbol that reads
it: the cells at minus each context offset. Encoder-side search and distillation use it to prefer
codes that the tables make cheap (`search.flip_symbols(..., rate=...)`); the coder itself stays
numpy (context_model.py), and these are the same frozen tables, read as float.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compressor.context_model import OUTSIDE, PAD, PROB_ONE, SPATIAL


class ContextRate:
    """Code lengths under one model's frozen spatial table (C, 3^terms) of uint16 P(1) values."""

    def __init__(self, table: np.ndarray, device: str | torch.device = "cpu"):
        table = np.asarray(table)
        if table.ndim != 2 or table.shape[1] != SPATIAL.contexts:
            raise ValueError(f"expected a spatial table (C, {SPATIAL.contexts}), got {table.shape}")
        p_one = torch.from_numpy(table.astype(np.float64) / PROB_ONE)  # (C, K)
        # cost[c, k, s] = -log2 P(s | context k of channel c), flattened to (C * K, 2)
        self.cost = torch.stack([-torch.log2(1 - p_one), -torch.log2(p_one)], dim=-1).reshape(-1, 2).float().to(device)
        self.channels = table.shape[0]
        self.offsets = [offset for _, offset in SPATIAL.terms]
        self.powers = [3**k for k in range(len(self.offsets))]

    def _rows(self, s: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) int64 symbols -> (B, C, h, w) flat table rows, as context_model._table_rows."""
        b, c, h, w = s.shape
        padded = F.pad(s, (PAD, PAD, PAD, PAD, PAD, PAD), value=OUTSIDE)  # (B, C+4, h+4, w+4)
        rows = (torch.arange(c, device=s.device) * SPATIAL.contexts).view(1, c, 1, 1).expand(b, c, h, w).clone()
        for (dc, di, dj), power in zip(self.offsets, self.powers):
            rows += padded[:, PAD + dc : PAD + dc + c, PAD + di : PAD + di + h, PAD + dj : PAD + dj + w] * power
        return rows

    def _costs(self, s: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.cost[rows, s]  # (B, C, h, w) bits of each symbol

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) symbols in {0, 1} (any dtype) -> (B,) ideal code length in bits."""
        s = symbols.long()
        return self._costs(s, self._rows(s)).flatten(1).sum(dim=1)

    def flip_bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) symbols -> (B, C, h, w) code length change, in bits, of flipping each bit alone."""
        s = symbols.long()
        b, c, h, w = s.shape
        rows = self._rows(s)
        own = self._costs(s, rows)
        delta = self._costs(1 - s, rows) - own  # the flipped symbol itself, same context
        step = 1 - 2 * s  # +1 where 0 -> 1, -1 where 1 -> 0: the change of that cell's value in others' rows
        for (dc, di, dj), power in zip(self.offsets, self.powers):
            # The cell q = p - offset reads p. For every p, shift q's quantities onto p's position.
            q_rows = _shift(rows, dc, di, dj)  # (B, C, h, w): row of the reader of p (or -1 outside)
            q_sym = _shift(s, dc, di, dj)
            inside = q_rows >= 0
            q_rows, q_sym = q_rows.clamp_min(0), q_sym.clamp_min(0)  # any valid index; masked below
            moved = (q_rows + step * power).clamp(0, len(self.cost) - 1)
            delta += torch.where(inside, self.cost[moved, q_sym] - self.cost[q_rows, q_sym], 0.0)
        return delta


def _shift(x: torch.Tensor, dc: int, di: int, dj: int) -> torch.Tensor:
    """out[p] = x[p - offset], -1 where p - offset leaves the grid: each cell's reader under one term."""
    b, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD, PAD, PAD), value=-1)
    return padded[:, PAD - dc : PAD - dc + c, PAD - di : PAD - di + h, PAD - dj : PAD - dj + w]
