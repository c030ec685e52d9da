"""The context tables as a rate in torch: each frame's code length, and what flipping each bit costs.

    symbols (B, C, h, w) in {0, 1} --same contexts as context_model.SPATIAL--> rows (B, C, h, w)
                                      (or TEMPORAL, given the previous frames' symbols)
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

from compressor.context_model import OUTSIDE, PAD, PROB_ONE, SPATIAL, Layout


class ContextRate:
    """Code lengths under one model's frozen table (C, 3^terms) of uint16 P(1) values: the spatial table,
    or the temporal one (`layout=TEMPORAL`) given the previous frame's symbols `prev` (B, C, h, w)."""

    def __init__(self, table: np.ndarray, device: str | torch.device = "cpu", *, layout: Layout = SPATIAL,
                 prev: torch.Tensor | None = None):
        table = np.asarray(table)
        if table.ndim != 2 or table.shape[1] != layout.contexts:
            raise ValueError(f"expected a {layout.name} table (C, {layout.contexts}), got {table.shape}")
        if layout.temporal != (prev is not None):
            raise ValueError(f"the {layout.name} table " + ("needs" if layout.temporal else "takes no") + " previous frame")
        p_one = torch.from_numpy(table.astype(np.float64) / PROB_ONE)  # (C, K)
        # cost[c, k, s] = -log2 P(s | context k of channel c), flattened to (C * K, 2)
        self.cost = torch.stack([-torch.log2(1 - p_one), -torch.log2(p_one)], dim=-1).reshape(-1, 2).float().to(device)
        self.channels, self.contexts = table.shape
        self.terms = layout.terms
        self.powers = [3**k for k in range(len(self.terms))]
        self.prev = None if prev is None else _padded(torch.as_tensor(prev).long().to(device))

    def _grids(self, s: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, C, h, w) int64 symbols -> each context source's padded grid (B, C+4, h+4, w+4), as
        context_model._table_rows builds them: OUTSIDE around the frame, "diff" = cur xor prev inside."""
        cur = _padded(s)
        if self.prev is None:
            return {"cur": cur}
        if self.prev.shape != cur.shape:
            raise ValueError(f"previous frames {tuple(self.prev.shape)} do not match the padded symbols {tuple(cur.shape)}")
        return {"cur": cur, "prev": self.prev, "diff": torch.where(cur == OUTSIDE, OUTSIDE, cur ^ self.prev)}

    def _rows(self, grids: dict[str, torch.Tensor], shape) -> torch.Tensor:
        """Each cell's flat table row (B, C, h, w), as context_model._table_rows."""
        b, c, h, w = shape
        rows = (torch.arange(c, device=self.cost.device) * self.contexts).view(1, c, 1, 1).expand(b, c, h, w).clone()
        for (source, (dc, di, dj)), power in zip(self.terms, self.powers):
            rows += grids[source][:, PAD + dc : PAD + dc + c, PAD + di : PAD + di + h, PAD + dj : PAD + dj + w] * power
        return rows

    def _costs(self, s: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.cost[rows, s]  # (B, C, h, w) bits of each symbol

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) symbols in {0, 1} (any dtype) -> (B,) ideal code length in bits."""
        s = symbols.long()
        return self._costs(s, self._rows(self._grids(s), s.shape)).flatten(1).sum(dim=1)

    def flip_bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) symbols -> (B, C, h, w) code length change, in bits, of flipping each bit alone."""
        s = symbols.long()
        grids = self._grids(s)
        rows = self._rows(grids, s.shape)
        own = self._costs(s, rows)
        delta = self._costs(1 - s, rows) - own  # the flipped symbol itself, same context
        # The change of a flipped cell's value as its readers see it: +1 where it goes 0 -> 1, -1 where
        # 1 -> 0, for "cur" the symbol itself, for "diff" its xor with the previous frame; "prev" is fixed.
        steps = {"cur": 1 - 2 * s}
        if "diff" in grids:
            steps["diff"] = 1 - 2 * (s ^ grids["prev"][:, PAD:-PAD, PAD:-PAD, PAD:-PAD])
        # A reader may see the flipped cell through two terms at one offset (the temporal layout's "cur"
        # and "diff" of the same neighbour): its row moves by their sum, once.
        shifts: dict[tuple[int, int, int], torch.Tensor] = {}
        for (source, offset), power in zip(self.terms, self.powers):
            if source != "prev":
                shifts[offset] = shifts.get(offset, 0) + steps[source] * power
        for (dc, di, dj), shift in shifts.items():
            # The cell q = p - offset reads p. For every p, shift q's quantities onto p's position.
            q_rows = _shift(rows, dc, di, dj)  # (B, C, h, w): row of the reader of p (or -1 outside)
            q_sym = _shift(s, dc, di, dj)
            inside = q_rows >= 0
            q_rows, q_sym = q_rows.clamp_min(0), q_sym.clamp_min(0)  # any valid index; masked below
            moved = (q_rows + shift).clamp(0, len(self.cost) - 1)
            delta += torch.where(inside, self.cost[moved, q_sym] - self.cost[q_rows, q_sym], 0.0)
        return delta


def _padded(s: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) int64 -> (B, C+4, h+4, w+4), OUTSIDE in the padding."""
    return F.pad(s, (PAD, PAD, PAD, PAD, PAD, PAD), value=OUTSIDE)


def _shift(x: torch.Tensor, dc: int, di: int, dj: int) -> torch.Tensor:
    """out[p] = x[p - offset], -1 where p - offset leaves the grid: each cell's reader under one term."""
    b, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD, PAD, PAD), value=-1)
    return padded[:, PAD - dc : PAD - dc + c, PAD - di : PAD - di + h, PAD - dj : PAD - dj + w]
