"""Tiled coding: a global-attention model codes an image larger than its training frame as tiles of that frame.

Global attention learned on 8x16-token grids does not carry over to larger grids (`vit-long2` on
512x768 Kodak: 18.29 dB coded whole, 23.70 dB as twelve 128x256 tiles at about the same bytes), and its
cost grows with the square of the token count. Tiles keep both at the training scale: every network
pass sees a grid it was trained on (or a smaller one at the image's edge), and cost grows linearly.

Tiles are cut at latent-cell boundaries, so the latent grid, its symbols and the bitstream are those
of the whole image; only which network pass sees which cells changes. The header's tiled flag tells
the decoder to cut the latent the same way.
"""
from __future__ import annotations

import torch

# Tiles per network pass: bounds memory when a batch of large images becomes thousands of tiles.
TILES_PER_PASS = 64


def tile_slices(grid: tuple[int, int], tile: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Row-major (rows, cols) cell slices covering `grid` with tiles of `tile` cells; edge tiles are smaller."""
    (gh, gw), (th, tw) = grid, tile
    return [(slice(i, min(i + th, gh)), slice(j, min(j + tw, gw))) for i in range(0, gh, th) for j in range(0, gw, tw)]


def _scaled(s: slice, k: int) -> slice:
    return slice(s.start * k, s.stop * k)


def run_tiled(fn, x: torch.Tensor, tile: tuple[int, int], *, cell_in: int, cell_out: int) -> torch.Tensor:
    """Apply `fn` to each tile of `x` on its own and assemble the results.

    x: (B, C, gh * cell_in, gw * cell_in) -> (B, C', gh * cell_out, gw * cell_out), where a tile is
    `tile` cells of `cell_in` pixels (or latent entries) in and `cell_out` out. Tiles of one shape go
    through `fn` together. Differentiable (encoder-side refinement runs the decoder through it).
    """
    b = x.shape[0]
    grid = (x.shape[-2] // cell_in, x.shape[-1] // cell_in)
    groups: dict[tuple[int, int], list] = {}
    for rows, cols in tile_slices(grid, tile):
        groups.setdefault((rows.stop - rows.start, cols.stop - cols.start), []).append((rows, cols))
    per_pass = max(1, TILES_PER_PASS // b)
    out = None
    for slices in groups.values():
        for start in range(0, len(slices), per_pass):
            part = slices[start : start + per_pass]
            tiles = [x[..., _scaled(r, cell_in), _scaled(c, cell_in)] for r, c in part]
            batch = torch.cat(tiles)  # (n*B, C, th*cell_in, tw*cell_in)
            y = fn(batch)  # (n*B, C', th*co, tw*co)
            if out is None:
                out = y.new_zeros(b, y.shape[1], grid[0] * cell_out, grid[1] * cell_out)
            for (r, c), piece in zip(part, y.split(b)):
                out[..., _scaled(r, cell_out), _scaled(c, cell_out)] = piece
    return out
