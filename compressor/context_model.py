"""Context-adaptive entropy coding of binary symbols with frozen integer tables: numpy + constriction, no torch.

Each symbol s[c, i, j] of a (C, h, w) latent is coded with P(s = 1) looked up in a table by its
channel and a context: a few symbols that the decoder already has, each in one of three states
(0, 1, or 2 = outside the grid). The spatial layout (`SPATIAL`) reads seven of them:

          channel c                      same token (i, j)
      .   U2  .                          s[c-2, i, j]  s[c-1, i, j]
      UL  U   .
  L2  L   x                       -> context = sum_k state_k * 3^k, one of 3^7 = 2187

The temporal layout (`TEMPORAL`, for a video frame coded after `prev`, the previous frame's symbols)
reads the previous frame at the same place and around it, whether the symbols already decoded
changed since that frame, and the current frame's left and upper neighbours.

Decoding order is the wavefront: every symbol with the same d = c + i + j is decoded in one
vectorised step, and every context term of the current frame lies on an earlier diagonal, so a
14x8x16 latent takes 36 steps instead of 1792. The encoder pushes the symbols in that order.

Tables hold P(s = 1) in units of 1/65536 as uint16, clamped to [1, 65535] so no symbol is
impossible. constriction's ANS coder receives k / 65536 (exact in float64) and quantises it in
Rust with integer arithmetic, so the bytes are the same on every machine, batch size and thread count.
Garbage payloads decode to some symbols or raise BitstreamError; the symbol count is fixed, so
decoding always ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from compressor.entropy_coder import coder_of, payload_of
from compressor.errors import BitstreamError

PROB_ONE = 1 << 16  # table units: P(s = 1) = table / PROB_ONE
OUTSIDE = 2  # the third state of a context term: the neighbour lies outside the grid
PAD = 2  # cells of OUTSIDE around the grid on every side, so no context read leaves the array
SMOOTHING = 2.0  # pseudo-counts, at the channel's own P(1), added to every context when fitting


@dataclass(frozen=True)
class Layout:
    """The context terms of one table: (source, (dc, di, dj)), source "cur", "prev" or "diff".

    "cur" reads the frame being coded, "prev" the previous frame, "diff" whether the two differ
    (cur xor prev). Terms that read the current frame must lie on an earlier wavefront diagonal.
    """

    name: str
    terms: tuple[tuple[str, tuple[int, int, int]], ...]

    def __post_init__(self):
        for source, offset in self.terms:
            if source not in ("cur", "prev", "diff"):
                raise ValueError(f"unknown context source {source!r}")
            if max(abs(o) for o in offset) > PAD:
                raise ValueError(f"context offset {offset} reaches past the padding of {PAD}")
            if source != "prev" and sum(offset) >= 0:
                raise ValueError(f"context term {source} {offset} is not decoded before the symbol it serves")

    @property
    def temporal(self) -> bool:
        return any(source != "cur" for source, _ in self.terms)

    @property
    def contexts(self) -> int:
        return 3 ** len(self.terms)


SPATIAL = Layout("spatial-7", (
    ("cur", (0, 0, -1)), ("cur", (0, 0, -2)), ("cur", (0, -1, 0)), ("cur", (0, -2, 0)),
    ("cur", (0, -1, -1)), ("cur", (-1, 0, 0)), ("cur", (-2, 0, 0)),
))
TEMPORAL = Layout("temporal-7", (
    ("prev", (0, 0, 0)), ("diff", (-1, 0, 0)), ("diff", (0, 0, -1)), ("diff", (0, -1, 0)),
    ("cur", (0, 0, -1)), ("cur", (0, -1, 0)), ("cur", (-1, 0, 0)),
))


# --- geometry, cached per latent shape --------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    """Flat indices for coding one latent shape under one layout, cells in wavefront order.

    The decoder keeps one flat state array: the padded current frame, then (temporal layouts) the
    padded "diff" grid, so every term that changes while decoding is a single gather from it.
    """

    cells: np.ndarray  # (n,) each cell's index in the padded grid, wavefront order (d, then c, then i)
    table_base: np.ndarray  # (n,) channel * contexts: the cell's row in the flattened table
    reads: np.ndarray  # (T_state, n) where each state-reading term looks, into the state array
    powers: np.ndarray  # (T_state,) 3^k of those terms
    prev_reads: np.ndarray  # (T_prev, n) where each "prev" term looks, into the padded previous frame
    prev_powers: np.ndarray  # (T_prev,)
    starts: np.ndarray  # (D+1,) first cell of each diagonal
    grid_size: int  # cells of one padded grid
    raster: np.ndarray  # (n,) each cell's index in the unpadded (C, h, w) array


@lru_cache(maxsize=32)
def _geometry(shape: tuple[int, int, int], layout: Layout) -> _Geometry:
    channels, h, w = shape
    c, i, j = (a.ravel() for a in np.meshgrid(np.arange(channels), np.arange(h), np.arange(w), indexing="ij"))
    order = np.lexsort((j, i, c, c + i + j))  # wavefront order of the raster cells
    c, i, j = c[order], i[order], j[order]
    ph, pw = h + 2 * PAD, w + 2 * PAD
    grid_size = (channels + 2 * PAD) * ph * pw
    cells = ((c + PAD) * ph + (i + PAD)) * pw + (j + PAD)
    state, prev = [], []
    for k, (source, (dc, di, dj)) in enumerate(layout.terms):
        at = cells + (dc * ph + di) * pw + dj
        if source == "prev":
            prev.append((at, 3**k))
        else:
            state.append((at + (grid_size if source == "diff" else 0), 3**k))

    def stacked(terms):
        return (np.stack([a for a, _ in terms]) if terms else np.zeros((0, len(cells)), np.intp),
                np.array([p for _, p in terms], np.intp))

    reads, powers = stacked(state)
    prev_reads, prev_powers = stacked(prev)
    counts = np.bincount(c + i + j, minlength=channels + h + w - 2)
    return _Geometry(cells, c * layout.contexts, reads, powers, prev_reads, prev_powers,
                     np.concatenate([[0], np.cumsum(counts)]), grid_size, order)


def _padded(symbols: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    """(C, h, w) symbols -> flat uint8 grid with PAD cells of OUTSIDE on every side."""
    grid = np.full(tuple(n + 2 * PAD for n in shape), OUTSIDE, np.uint8)
    if symbols is not None:
        grid[PAD:-PAD, PAD:-PAD, PAD:-PAD] = symbols
    return grid.reshape(-1)


def _state(cur: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """The state array: padded current frame, then the padded diff grid (cur xor prev, OUTSIDE where cur is)."""
    if prev is None:
        return cur
    return np.concatenate([cur, np.where(cur == OUTSIDE, OUTSIDE, cur ^ prev).astype(np.uint8)])


def _prev_contexts(g: _Geometry, prev: np.ndarray | None) -> np.ndarray:
    """(n,) each cell's context part from the previous frame, plus its table row: fixed while decoding."""
    if prev is None or not len(g.prev_powers):
        return g.table_base
    return g.table_base + g.prev_powers @ prev[g.prev_reads]


class Tables:
    """Context tables ready for coding: {"spatial", "temporal"} uint16 arrays (C, contexts) as stored,
    each converted once to flat float64 P(1) values, exactly k / 65536.

    `encode` and `decode` take these or the plain dict; a caller coding many frames keeps one `Tables`.
    """

    def __init__(self, tables: dict):
        self.arrays = {k: np.asarray(v) for k, v in tables.items() if v is not None}
        self._flat: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, tables) -> Tables:
        return tables if isinstance(tables, Tables) else cls(tables)

    def probabilities(self, layout: Layout, channels: int) -> np.ndarray:
        """The flat P(1) table (C * contexts,) of `layout`; BitstreamError if it does not fit."""
        key = "temporal" if layout.temporal else "spatial"
        if key not in self._flat:
            table = self.arrays.get(key)
            if table is None:
                raise ValueError(f"these tables have no {key} table" + (": code without prev" if layout.temporal else ""))
            if table.ndim != 2 or table.shape[1] != layout.contexts or table.dtype != np.uint16:
                raise BitstreamError(f"{layout.name} table is {table.dtype} {table.shape}, "
                                     f"expected uint16 (C, {layout.contexts})")
            self._flat[key] = table.reshape(-1).astype(np.float64) / PROB_ONE
        if self.arrays[key].shape[0] != channels:
            raise BitstreamError(f"{layout.name} table has {self.arrays[key].shape[0]} channels, the latent {channels}")
        return self._flat[key]


def _check_symbols(symbols: np.ndarray, name: str) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.ndim != 3 or symbols.dtype != np.uint8 or symbols.size == 0:
        raise ValueError(f"{name} must be a non-empty uint8 array (C, h, w), not {symbols.dtype} {symbols.shape}")
    if symbols.max() > 1:
        raise ValueError(f"{name} must hold only 0 and 1")
    return symbols


def _setup(tables, prev, shape):
    """(layout, flat P(1) table, padded prev grid or None) for coding a frame; temporal when `prev` is given."""
    tables = Tables.of(tables)
    if prev is None:
        return SPATIAL, tables.probabilities(SPATIAL, shape[0]), None
    prev = _check_symbols(prev, "prev")
    if prev.shape != tuple(shape):
        raise ValueError(f"prev has shape {prev.shape}, the frame {tuple(shape)}")
    return TEMPORAL, tables.probabilities(TEMPORAL, shape[0]), _padded(prev, shape)


def _probabilities(symbols: np.ndarray, layout: Layout, table: np.ndarray, prev_grid):
    """Every cell's (symbol, P(1)) in wavefront order: the encoder knows all contexts at once."""
    g = _geometry(symbols.shape, layout)
    row = _table_rows(symbols, layout, None if prev_grid is None else _unpadded(prev_grid, symbols.shape))
    return symbols.reshape(-1)[g.raster], table[row.reshape(-1)[g.raster]]


def _unpadded(grid: np.ndarray, shape) -> np.ndarray:
    return grid.reshape(tuple(n + 2 * PAD for n in shape))[PAD:-PAD, PAD:-PAD, PAD:-PAD]


def _table_rows(symbols: np.ndarray, layout: Layout, prev: np.ndarray | None) -> np.ndarray:
    """(C, h, w) flat table index (channel * contexts + context) of every cell, from shifted views of
    the padded frames: the same contexts the decoder gathers diagonal by diagonal, a few array adds."""
    channels, h, w = symbols.shape
    cur = _padded(symbols, symbols.shape).reshape(channels + 2 * PAD, h + 2 * PAD, w + 2 * PAD)
    grids = {"cur": cur}
    if prev is not None:
        grids["prev"] = _padded(prev, symbols.shape).reshape(cur.shape)
        grids["diff"] = np.where(cur == OUTSIDE, OUTSIDE, cur ^ grids["prev"]).astype(np.uint8)
    rows = np.broadcast_to((np.arange(channels, dtype=np.intp) * layout.contexts)[:, None, None], symbols.shape).copy()
    for k, (source, (dc, di, dj)) in enumerate(layout.terms):
        view = grids[source][PAD + dc : PAD + dc + channels, PAD + di : PAD + di + h, PAD + dj : PAD + dj + w]
        rows += view.astype(np.intp) * 3**k  # intp first: uint8 x 243 would wrap
    return rows


def _model():
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)


# --- coding ------------------------------------------------------------------------------------
def encode(symbols: np.ndarray, tables: dict, prev: np.ndarray | None = None) -> bytes:
    """uint8 {0, 1} symbols (C, h, w) -> ANS bytes under `tables["spatial"]`, or `tables["temporal"]` given `prev`.

    `tables` maps "spatial" / "temporal" to uint16 arrays (C, contexts); `prev` is the previous video
    frame's symbols (same shape), which the decoder must be given too.
    """
    import constriction

    symbols = _check_symbols(symbols, "symbols")
    layout, table, prev_grid = _setup(tables, prev, symbols.shape)
    s, p_one = _probabilities(symbols, layout, table, prev_grid)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(s.astype(np.int32), _model(), p_one)  # ANS is a stack: reversed, so decoded in order
    return payload_of(coder)


def decode(payload: bytes, tables, shape: tuple[int, int, int], prev: np.ndarray | None = None) -> np.ndarray:
    """ANS bytes -> uint8 symbols (C, h, w); BitstreamError if the payload does not decode exactly."""
    return decode_many([payload], tables, shape, None if prev is None else [prev])[0]


def decode_many(payloads: list[bytes], tables, shape: tuple[int, int, int], prevs: list | None = None) -> list[np.ndarray]:
    """Many frames' payloads of one latent shape -> their symbols, decoded together wavefront by wavefront.

    Each diagonal's contexts and probabilities are looked up for every frame in one numpy step, so
    the per-step overhead is paid once per batch, not once per frame. The bytes of each frame are
    its own ANS stream: the result is what `decode` gives frame by frame. BitstreamError if any
    payload does not decode exactly.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, h, w) with positive sides, not {shape}")
    if prevs is not None and len(prevs) != len(payloads):
        raise ValueError(f"{len(payloads)} payloads but {len(prevs)} previous frames")
    if not payloads:
        return []
    tables = Tables.of(tables)  # converted once for the batch
    setups = [_setup(tables, None if prevs is None else prevs[k], shape) for k in range(len(payloads))]
    layout, table = setups[0][0], setups[0][1]
    g = _geometry(shape, layout)
    prev_grids = None if prevs is None else np.stack([p for _, _, p in setups])  # (B, G)
    states = np.stack([_state(_padded(None, shape), None if prev_grids is None else prev_grids[k])
                       for k in range(len(payloads))])  # (B, S): every cell OUTSIDE until decoded
    fixed = np.stack([_prev_contexts(g, None if prev_grids is None else prev_grids[k]) for k in range(len(payloads))])
    model = _model()
    out = np.empty((len(payloads), g.starts[-1]), np.uint8)  # (B, n) decoded symbols, wavefront order
    try:
        coders = [coder_of(p) for p in payloads]
        for a, b in zip(g.starts[:-1], g.starts[1:]):  # one wavefront diagonal a step
            cells = g.cells[a:b]
            p_one = table[fixed[:, a:b] + g.powers @ states[:, g.reads[:, a:b]]]  # (B, m)
            for k, coder in enumerate(coders):
                out[k, a:b] = coder.decode(model, p_one[k])
            states[:, cells] = out[:, a:b]
            if prev_grids is not None:
                states[:, g.grid_size + cells] = out[:, a:b] ^ prev_grids[:, cells]
        exact = all(coder.is_empty() for coder in coders)
    except Exception as e:  # constriction reports invalid data as ValueError/AssertionError/etc.
        raise BitstreamError(f"damaged payload: the context decoder failed ({e})") from None
    if not exact:
        raise BitstreamError("damaged payload: data left over after the last symbol")
    grids = states[:, : g.grid_size].reshape(-1, *(n + 2 * PAD for n in shape))
    return list(grids[:, PAD:-PAD, PAD:-PAD, PAD:-PAD].copy())


def code_bits(symbols: np.ndarray, tables: dict, prev: np.ndarray | None = None) -> float:
    """Ideal code length (-log2 p summed) of `symbols` under the tables, in bits."""
    symbols = _check_symbols(symbols, "symbols")
    s, p_one = _probabilities(symbols, *_setup(tables, prev, symbols.shape))
    return float(-np.log2(np.where(s == 1, p_one, 1 - p_one)).sum())


# --- fitting -----------------------------------------------------------------------------------
def _counts(layout: Layout, frames, channels: int) -> np.ndarray:
    """(C, contexts, 2) counts of (symbol = 0, symbol = 1) per context over `frames` of (symbols, prev)."""
    counts = np.zeros(channels * layout.contexts * 2, np.int64)
    for symbols, prev in frames:
        symbols = _check_symbols(symbols, "symbols")
        if symbols.shape[0] != channels:
            raise ValueError(f"all arrays must have {channels} channels, not {symbols.shape[0]}")
        prev = None if prev is None else _check_symbols(prev, "prev")
        rows = _table_rows(symbols, layout, prev)  # (C, h, w) table index of every cell
        counts += np.bincount((rows * 2 + symbols).reshape(-1), minlength=counts.size)
    return counts.reshape(channels, layout.contexts, 2)


def quantise(counts: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """(C, contexts, 2) counts -> uint16 table of P(1) x 65536, smoothed toward each channel's own P(1).

    A context seen rarely or never gets about its channel's overall probability rather than 1/2.
    """
    totals = counts.sum(axis=1)  # (C, 2)
    channel_p = (totals[:, 1] + 0.5) / (totals.sum(axis=1) + 1.0)  # (C,)
    p = (counts[..., 1] + smoothing * channel_p[:, None]) / (counts.sum(axis=2) + smoothing)  # (C, contexts)
    return np.clip(np.round(p * PROB_ONE), 1, PROB_ONE - 1).astype(np.uint16)


def fit_tables(symbol_arrays, smoothing: float = SMOOTHING) -> np.ndarray:
    """The spatial table (C, 2187) uint16 fitted on uint8 symbol arrays (C, h, w) (any grid sizes)."""
    arrays = list(symbol_arrays)
    if not arrays:
        raise ValueError("fit_tables needs at least one symbol array")
    return quantise(_counts(SPATIAL, ((s, None) for s in arrays), np.asarray(arrays[0]).shape[0]), smoothing)


def fit_temporal(pairs, smoothing: float = SMOOTHING) -> np.ndarray:
    """The temporal table (C, 2187) uint16 fitted on (prev, cur) pairs of consecutive frames' symbols."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("fit_temporal needs at least one (prev, cur) pair")
    channels = np.asarray(pairs[0][1]).shape[0]
    for prev, cur in pairs:
        if np.asarray(prev).shape != np.asarray(cur).shape:
            raise ValueError(f"a pair's frames differ in shape: {np.asarray(prev).shape} and {np.asarray(cur).shape}")
    return quantise(_counts(TEMPORAL, ((cur, prev) for prev, cur in pairs), channels), smoothing)
