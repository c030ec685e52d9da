"""Tiled coding: a global-attention model codes an image larger than its training frame as tiles of that frame.

Global attention learned on 8x16-token grids does not carry over to larger grids (`vit-long2` on
512x768 Kodak: 18.29 dB coded whole, 23.70 dB as twelve 128x256 tiles at about the same bytes), and its
cost grows with the square of the token count. Tiles keep both at the training scale: every network
pass sees a grid it was trained on (or a smaller one at the image's edge), and cost grows linearly.

Tiles are cut at latent-cell boundaries, so the latent grid, its symbols and the bitstream are those
of the whole image; only which network pass sees which cells changes. The header's tiled flag tells
the decoder to cut the latent the same way.

Side by side, tiles leave seams: pixels within 8 of a tile border were 0.7 dB worse than the rest
(vit-long2, Kodak). Overlapping windows (the default; the header's overlap flag) move
by half a tile and are blended, the encoder's real-valued latent before the sign and the decoder's pixels
after it, with weights that fall off toward each window's edge: every cell and pixel is mostly
coded by a pass that sees it with context on all sides. vit-long2 on Kodak: 23.70 -> 23.93 dB at
about 3.5x the network passes. The encoder and decoder must agree (blended codes decoded side by
side lose 0.3 dB), so the flag says which way a file was cut.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

# Tiles per network pass: bounds memory when a batch of large images becomes thousands of tiles. A
# search's passes carry gradients and keep more per tile; fewer a pass held one 1080x1920 frame's
# `flips=1` to 1.6 GB (3.2 GB at 64), at the same bytes and no slower (9.6 s against 10.4 at 64).
TILES_PER_PASS = 64
TILES_PER_GRADIENT_PASS = 16
# On a GPU, where a pass of 64 tiles leaves it mostly idle (as a batch of 32 frames does: codec.GPU_BATCH)
# and memory is plentiful: a 1024x2048 frame is 225 overlapping windows.
GPU_TILES_PER_PASS = 1024
GPU_TILES_PER_GRADIENT_PASS = 256


def tile_slices(grid: tuple[int, int], tile: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Row-major (rows, cols) cell slices covering `grid` with tiles of `tile` cells; edge tiles are smaller."""
    (gh, gw), (th, tw) = grid, tile
    return [(slice(i, min(i + th, gh)), slice(j, min(j + tw, gw))) for i in range(0, gh, th) for j in range(0, gw, tw)]


def _scaled(s: slice, k: int) -> slice:
    return slice(s.start * k, s.stop * k)


def _run_windows(fn, x: torch.Tensor, windows: list[tuple[slice, slice]], weight, *, cell_in: int,
                 cell_out: int) -> torch.Tensor:
    """Apply `fn` to each window of `x` on its own and assemble the weighted mean of the results.

    `windows` are (rows, cols) cell slices; `weight(h, w)` gives the (h, w) weights over an output window
    of h x w pixels (or latent entries). Windows of one shape go through `fn` together, at most
    TILES_PER_PASS per pass (GPU_TILES_PER_PASS on a GPU). Differentiable (encoder-side refinement runs the
    decoder through it).
    """
    b = x.shape[0]
    grid = (x.shape[-2] // cell_in, x.shape[-1] // cell_in)
    groups: dict[tuple[int, int], list] = {}
    for rows, cols in windows:
        groups.setdefault((rows.stop - rows.start, cols.stop - cols.start), []).append((rows, cols))
    if x.is_cuda:
        limit = GPU_TILES_PER_GRADIENT_PASS if torch.is_grad_enabled() else GPU_TILES_PER_PASS
    else:
        limit = TILES_PER_GRADIENT_PASS if torch.is_grad_enabled() else TILES_PER_PASS
    per_pass = max(1, limit // b)
    out = total = None
    for (th, tw), slices in groups.items():
        w = weight(th * cell_out, tw * cell_out).to(x.device)  # (th*co, tw*co)
        for start in range(0, len(slices), per_pass):
            part = slices[start : start + per_pass]
            windows_in = [x[..., _scaled(r, cell_in), _scaled(c, cell_in)] for r, c in part]
            batch = torch.cat(windows_in)  # (n*B, C, th*cell_in, tw*cell_in)
            y = _pass(fn, batch).float()  # (n*B, C', th*co, tw*co)
            if out is None:
                out = y.new_zeros(b, y.shape[1], grid[0] * cell_out, grid[1] * cell_out)
                total = y.new_zeros(grid[0] * cell_out, grid[1] * cell_out)
            for (r, c), piece in zip(part, y.split(b)):
                out[..., _scaled(r, cell_out), _scaled(c, cell_out)] += piece * w
                total[_scaled(r, cell_out), _scaled(c, cell_out)] += w
    return out / total


def _pass(fn, batch: torch.Tensor) -> torch.Tensor:
    """fn(batch). With gradients on (a search through the decoder), the pass keeps only its input and
    output and recomputes its activations in the backward pass: otherwise a large image holds every
    window's at once (one 1080x1920 frame, `flips=1`: 5.1 GB, 3.2 GB with this, 1.6 GB with passes of
    TILES_PER_GRADIENT_PASS). The recomputation runs in the forward's context, so on the same attention
    path (`layers.cpu_attention_path`) and to the same values: the searched bytes are unchanged."""
    if not torch.is_grad_enabled():
        return fn(batch)
    context = contextvars.copy_context()
    return checkpoint(lambda t: context.run(fn, t), batch, use_reentrant=False)


def run_tiled(fn, x: torch.Tensor, tile: tuple[int, int], *, cell_in: int, cell_out: int) -> torch.Tensor:
    """Apply `fn` to each tile of `x` on its own and assemble the results.

    x: (B, C, gh * cell_in, gw * cell_in) -> (B, C', gh * cell_out, gw * cell_out), where a tile is
    `tile` cells of `cell_in` pixels (or latent entries) in and `cell_out` out. Tiles do not overlap, so
    each weight is 1 and every output is exactly its tile's.
    """
    grid = (x.shape[-2] // cell_in, x.shape[-1] // cell_in)
    return _run_windows(fn, x, tile_slices(grid, tile), torch.ones, cell_in=cell_in, cell_out=cell_out)


def window_offsets(grid: int, tile: int) -> list[int]:
    """Start cells of windows of `tile` cells moving by half a tile along a side of `grid` cells, the last flush."""
    span = min(tile, grid)
    starts = list(range(0, grid - span + 1, max(1, span // 2)))
    if starts[-1] != grid - span:
        starts.append(grid - span)
    return starts


def _tent(n: int) -> torch.Tensor:
    """(n,) weights over a window's side: the square root of a tent, highest at the centre, never 0.

    On Kodak (vit-long2), tent^0.5 gave 23.93 dB, tent^0.25 23.94, a flat mean 23.91, tent 23.90,
    tent^2 23.86. Windows moving by 5/8 of a tile gave 23.88, by 3/4 23.83 (1.9x the passes, not 3.5x).
    Denser windows do not help (vit.default, 24.205 dB): moving by 1/4 of a tile in the decoder alone
    gave 24.177, in both 24.194, by 1/3 in the decoder 24.170, at about 3x the decoder's time.
    """
    k = torch.arange(n, dtype=torch.float32)
    return torch.minimum(k + 0.5, n - k - 0.5).sqrt()


def run_blended(fn, x: torch.Tensor, tile: tuple[int, int], *, cell_in: int, cell_out: int) -> torch.Tensor:
    """Apply `fn` to windows of `tile` cells moving by half a tile, and blend the overlapping results.

    Shapes as in `run_tiled`. Every window has the same shape (the tile, or the grid where the grid is
    smaller), so all go through `fn` in the same batches.
    """
    gh, gw = x.shape[-2] // cell_in, x.shape[-1] // cell_in
    th, tw = min(tile[0], gh), min(tile[1], gw)
    windows = [(slice(i, i + th), slice(j, j + tw))
               for i in window_offsets(gh, tile[0]) for j in window_offsets(gw, tile[1])]
    return _run_windows(fn, x, windows, lambda h, w: _tent(h)[:, None] * _tent(w)[None, :],
                        cell_in=cell_in, cell_out=cell_out)


@dataclass(frozen=True)
class Tiling:
    """How an image larger than the training frame is cut: tiles of `cells` (rows, cols of latent cells),
    side by side, or overlapping by half a tile and blended (`overlap`)."""

    cells: tuple[int, int]
    overlap: bool = True

    def run(self, fn, x: torch.Tensor, *, cell_in: int, cell_out: int) -> torch.Tensor:
        runner = run_blended if self.overlap else run_tiled
        return runner(fn, x, self.cells, cell_in=cell_in, cell_out=cell_out)
