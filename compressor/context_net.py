"""Context-net coding: each symbol's probability from a small integer network over the tokens decoded before it.

    order: token diagonals d = i + j (0 .. h + w - 2); in a diagonal, the channels group by group
           (`groups`: channel c's group, non-decreasing), all the diagonal's tokens at once
    x      (8C,) the C symbols of each earlier neighbour as -1 / +1, 0 outside the grid:
           (0,-1) (-1,0) (-1,-1) (0,-2) (-2,0) (-2,+1) (-1,-2) (-2,-1)
    trunk  h = act(W2 act(W1 x + b1) + b2)                                           (H,)
    chain  z_c = act(MIX_c h + PREV_c s + m_c)   s: the token's own channels of earlier groups   (K,)
    logit  l_c = OUT z_c + HEAD_c h + o_c ;   P(s_c = 1) = SIGMOID[l_c]   in units of 1/65536, in [1, 65535]

Bit-exact on every machine: every weight, bias and activation is an integer (weights at most 2047,
activations at most 2^13, at power-of-two scales), so every dot product is a sum of integers below
2^50 that float64 BLAS computes exactly in any order, blocking or thread count; rescaling by a power of
two is folded into the weights (exact), and the two nonlinearities are integer tables stored in the
checkpoint (`act`, `sigmoid`), indexed by a floor, never computed at decode time. Encoding knows every
context and computes all probabilities in one pass; decoding runs (h + w - 1) x groups steps, each
batched over the diagonal's tokens and over frames (`decode_many`). Coded by constriction's ANS with
P(1) = k / 65536, as `context_model` codes its tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from compressor.context_model import PROB_ONE
from compressor.entropy_coder import coder_of, payload_of
from compressor.errors import BitstreamError

NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (0, -2), (-2, 0), (-2, 1), (-1, -2), (-2, -1))  # (di, dj), all decoded before
PAD = 2
ACT_IN = 6  # the activation table's input step: 2^-6
ACT_OUT = 8  # activations are integers at scale 2^-8
ACT_RANGE = 2048  # the table covers inputs [-32, 32)
LOGIT_IN = 5  # the sigmoid table's input step: 2^-5
LOGIT_RANGE = 512  # inputs [-16, 16)
ACT_OFFSET, LOGIT_OFFSET = ACT_RANGE + 0.5, LOGIT_RANGE + 0.5  # a table's entry for input x: floor(x * 2^in + these)
WEIGHT_MAX = 2047
EXACT_LIMIT = 2.0**50  # every accumulator stays below this: float64 sums of integers are exact up to 2^53
KEYS = ("w1", "b1", "w2", "b2", "mix", "prev", "mix_bias", "out", "head", "out_bias", "exponents", "act", "sigmoid",
        "groups")


@dataclass(frozen=True)
class _Order:
    """Where each (diagonal, group) step's cells lie, for one latent shape and one channel grouping."""

    tokens: tuple  # per diagonal: (neighbours, own) flat indices into the padded (h+4) x (w+4) grid:
    #                (n * 8,) each token's neighbours in NEIGHBOURS' order, token by token, and (n,) the tokens
    flat: np.ndarray  # (n,) raster index (c, i, j) of every cell in coding order


@lru_cache(maxsize=32)
def _order(shape: tuple[int, int, int], groups: tuple[tuple[int, ...], ...]) -> _Order:
    channels, h, w = shape
    tokens, flat = [], []
    for d in range(h + w - 1):
        ii = np.arange(max(0, d - w + 1), min(h, d + 1))
        jj = d - ii
        tokens.append((_neighbour_index(ii, jj, w), (ii + PAD) * (w + 2 * PAD) + jj + PAD))
        for group in groups:  # a group's cells: channel by channel, each over the diagonal's tokens
            flat.append(((np.array(group)[:, None] * h + ii) * w + jj).ravel())
    return _Order(tuple(tokens), np.concatenate(flat))


class ContextNet:
    """The integer network of a checkpoint: tensors `context.net.*` (see KEYS), as int arrays."""

    def __init__(self, tensors: dict):
        missing = [k for k in KEYS if k not in tensors]
        if missing:
            raise BitstreamError(f"context net is missing {missing}")
        t = {k: np.asarray(tensors[k]) for k in KEYS}
        self.hidden, fin = t["w1"].shape
        self.channels = t["head"].shape[0]
        self.width = t["mix"].shape[0] // self.channels
        shapes = {"w1": (self.hidden, fin), "b1": (self.hidden,), "w2": (self.hidden, self.hidden),
                  "b2": (self.hidden,), "mix": (self.channels * self.width, self.hidden),
                  "prev": (self.channels, self.width, self.channels), "mix_bias": (self.channels * self.width,),
                  "out": (self.width,), "head": (self.channels, self.hidden), "out_bias": (self.channels,),
                  "exponents": (4,), "act": (2 * ACT_RANGE,), "sigmoid": (2 * LOGIT_RANGE,),
                  "groups": (self.channels,)}
        bad = {k: t[k].shape for k, s in shapes.items() if t[k].shape != s}
        if fin != len(NEIGHBOURS) * self.channels or bad:
            raise BitstreamError(f"context net tensors do not fit together: {bad or t['w1'].shape}")
        if t["sigmoid"].min() < 1 or t["sigmoid"].max() >= PROB_ONE:
            raise BitstreamError("context net sigmoid table leaves [1, 65535]")
        try:
            check_exact(t)
        except ValueError as e:
            raise BitstreamError(str(e)) from None
        # The first layer reads -1 / 0 / +1 and stays far below float32's 2^24 exact steps in every net
        # fitted so far (2^15.5 for vit.default's): there it runs in float32, twice float64's speed and the
        # same integers. The later layers (2^27 steps) stay in float64.
        self.x_dtype = np.float32 if _lookup_steps(t)[0] < 2.0**24 else np.float64
        g = t["groups"].astype(np.int64)
        if g[0] != 0 or np.any(np.diff(g) < 0) or np.any(np.diff(g) > 1):
            raise BitstreamError("context net channel groups must run 0, 1, ... in channel order")
        # channels grouped: each group is one decoding step; channel c reads its own token's channels of earlier groups
        self.groups = tuple(tuple(int(c) for c in np.flatnonzero(g == k)) for k in range(int(g[-1]) + 1))
        f = {k: t[k].astype(np.float64) for k in KEYS if k != "exponents"}
        # Each table's input is floor(acc * 2^k + offset), acc a layer's accumulator (`_scales`). The power
        # of two goes into the weights and biases and the offset into the biases, so a layer is one product,
        # one sum and one lookup: the same integers, as scaling by 2^k is exact and `check_exact` keeps
        # every folded sum exact.
        (k1, o1), (k2, o2), (km, om), (ko, oo) = ((2.0**k, offset) for k, offset in _scales(t["exponents"]))
        self.w1t, self.b1 = (f["w1"].T * k1).astype(self.x_dtype), (f["b1"] * k1 + o1).astype(self.x_dtype)
        self.w2t, self.b2 = f["w2"].T * k2, f["b2"] * k2 + o2
        self.mixt, self.mix_bias = f["mix"].T * km, f["mix_bias"] * km + om
        # prev[c, k, c'] zeroed unless c' is in an earlier group than c: what channel c may read of its token.
        # Stored as (C', C*K): own symbols (N, C') @ it -> (N, C*K), one BLAS product.
        earlier = (g[None, :] < g[:, None]).astype(np.float64)  # (C, C')
        self.prev = (f["prev"] * km * earlier[:, None, :]).transpose(2, 0, 1).reshape(self.channels, -1).copy()
        k = self.width  # each group a contiguous channel range [lo, hi): its columns of `prev`, contiguous
        self.ranges = tuple((group[0], group[-1] + 1) for group in self.groups)
        self.prev_of = tuple(self.prev[:, lo * k : hi * k].copy() for lo, hi in self.ranges)
        self.out, self.headt = f["out"] * ko, f["head"].T * ko
        self.out_bias = f["out_bias"] * ko + oo
        self.act = f["act"]
        self.p_one = f["sigmoid"] / PROB_ONE  # P(1) as a fraction: exact, PROB_ONE being a power of two

    # --- integer arithmetic (values held in floats: integers times powers of two, all exact) ---------
    def trunk(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 8C) neighbour symbols in {-1, 0, 1} (`x_dtype`) -> (N, H) hidden state, (N, C*K) the chain's input and
        (N, C) the logits' part from the hidden state, biases and offsets included."""
        h1 = _lookup(self.act, x @ self.w1t + self.b1)
        h = _lookup(self.act, h1 @ self.w2t + self.b2)
        head = h @ self.headt
        head += self.out_bias
        mixed = h @ self.mixt
        mixed += self.mix_bias
        return h, mixed, head

    def group_probabilities(self, mixed: np.ndarray, head: np.ndarray, own: np.ndarray, g: int) -> np.ndarray:
        """P(1) (N, channels of group g) as float64 multiples of 1/65536, from the trunk's outputs and the
        token's own symbols `own` (N, C) in {-1, 0, 1} (only earlier groups are read)."""
        (lo, hi), k = self.ranges[g], self.width
        pre = mixed[:, lo * k : hi * k]
        if lo:  # the first group reads none of its token's channels: its `prev_of` is all zeros
            pre = pre + own @ self.prev_of[g]
        z = _lookup(self.act, pre).reshape(len(own), hi - lo, k)  # (N, g, K)
        logit = z @ self.out
        logit += head[:, lo:hi]
        return _lookup(self.p_one, logit)

    def all_probabilities(self, mixed: np.ndarray, head: np.ndarray, own: np.ndarray) -> np.ndarray:
        """P(1) (N, C) of every channel given the token's whole own symbols: the encoder's one pass (the
        masked `prev` reads only earlier groups, so this equals `group_probabilities` group by group)."""
        pre = own @ self.prev
        pre += mixed
        z = _lookup(self.act, pre).reshape(len(own), self.channels, self.width)
        logit = z @ self.out
        logit += head
        return _lookup(self.p_one, logit)


def _scales(exponents) -> tuple[tuple[int, float], ...]:
    """Each table lookup's (k, offset): its input is floor(acc * 2^k + offset), acc being the accumulator of
    the first layer, the second, the chain (at activation scale) and the logit, in that order."""
    e1, e2, em, eo = (int(e) for e in exponents)
    return ((ACT_IN - e1, ACT_OFFSET), (ACT_IN - e2 - ACT_OUT, ACT_OFFSET), (ACT_IN - em - ACT_OUT, ACT_OFFSET),
            (LOGIT_IN - eo - ACT_OUT, LOGIT_OFFSET))


def _lookup_steps(t: dict) -> list[float]:
    """Each layer's largest lookup input acc * 2^k + offset, counted in its finest step (2^k, or the
    offset's half): the first layer, the second, the chain and the logit. A sum of such integers is exact
    in any order in a float whose mantissa holds that many steps."""
    a = {k: np.abs(np.asarray(t[k], np.float64)) for k in KEYS if k not in ("groups", "sigmoid")}
    act = a["act"].max()
    bounds = (
        a["w1"].sum(1).max() + a["b1"].max(),
        a["w2"].sum(1).max() * act + a["b2"].max(),
        a["mix"].sum(1).max() * act + a["mix_bias"].max() + a["prev"].sum(2).max(),
        (a["out"].sum() + a["head"].sum(1).max()) * act + a["out_bias"].max(),
    )
    if max(bounds) >= EXACT_LIMIT:
        raise ValueError(f"context net accumulators could reach {max(bounds):.3g}, past exact float64 sums")
    return [(b * 2.0**k + offset) / min(2.0**k, 0.5) for b, (k, offset) in zip(bounds, _scales(t["exponents"]))]


def check_exact(t: dict) -> None:
    """ValueError unless float64 computes the net's integers exactly, in any order: every accumulator of the
    integer tensors (KEYS) stays below EXACT_LIMIT, and so does each lookup's input acc * 2^k + offset
    counted in its finest step (`_lookup_steps`), so the folded sums of `ContextNet` are exact
    too and every lookup index fits the int64 `_lookup` casts to."""
    steps = _lookup_steps(t)
    if max(steps) >= EXACT_LIMIT:
        raise ValueError(f"context net exponents {np.asarray(t['exponents']).tolist()} make lookup inputs "
                         f"of {max(steps):.3g} steps, past exact float64 sums")


def _lookup(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """table[floor(index) clipped to the table]. The cast truncates toward zero, which differs from floor
    only below 0, where both clip to entry 0 (`check_exact` keeps every index far inside int64)."""
    return np.take(table, index.astype(np.intp), mode="clip")


@lru_cache(maxsize=1)
def _blas_threads():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    """A context in which numpy's BLAS runs on the calling thread alone. The net's products are small (at
    most 1,024 x 64 x 224): a second BLAS thread gains little on them, and after each call it spins for a
    while, taking a core from the torch pass that follows. `compressor speed --threads 2` on 2 cores of an
    AMD EPYC, interleaved with the per-channel coder: encoding -20% and decoding -16% with numpy's two BLAS
    threads, within 4% with one (docs/entropy-coding.md).
    """
    return _blas_threads().limit(limits=1, user_api="blas")


def _neighbour_index(ii: np.ndarray, jj: np.ndarray, w: int) -> np.ndarray:
    """Tokens (ii, jj) of a grid w wide -> (n * 8,) flat indices of their NEIGHBOURS in the grid padded by 2."""
    di, dj = (np.array(d) for d in zip(*NEIGHBOURS))
    return ((ii[:, None] + PAD + di) * (w + 2 * PAD) + jj[:, None] + PAD + dj).ravel()


def _features(grid: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """grid (B, C, h+4, w+4) in {-1, 0, 1}, padded by 2, and (n * 8,) flat indices of n tokens' neighbours
    (`_order`) -> (B * n, 8C) their neighbour symbols, neighbour by neighbour, channel by channel."""
    b, c = grid.shape[:2]
    x = grid.reshape(b, c, -1)[:, :, neighbours]  # (B, C, n * 8)
    return x.reshape(b, c, -1, len(NEIGHBOURS)).transpose(0, 2, 3, 1).reshape(-1, len(NEIGHBOURS) * c)


def _signed(symbols: np.ndarray, dtype) -> np.ndarray:
    """(B, C, h, w) uint8 -> (B, C, h+4, w+4) -1 / +1, 0 in the padding."""
    grid = np.zeros((*symbols.shape[:2], symbols.shape[2] + 2 * PAD, symbols.shape[3] + 2 * PAD), dtype)
    grid[:, :, PAD:-PAD, PAD:-PAD] = symbols.astype(dtype) * 2 - 1
    return grid


def _cell_probabilities(net: ContextNet, symbols: np.ndarray) -> np.ndarray:
    """(B, C, h, w) uint8 symbols -> (B, C, h, w) P(1) of every cell given its context: the encoder knows
    every context, so all tokens and channels go through the net at once (the same integers decoding computes)."""
    b, channels, h, w = symbols.shape
    grid = _signed(symbols, net.x_dtype)
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))  # raster tokens
    _, mixed, head = net.trunk(_features(grid, _neighbour_index(ii, jj, w)))  # (B*h*w, C*K), (B*h*w, C)
    own = grid[:, :, ii + PAD, jj + PAD].transpose(0, 2, 1).reshape(-1, channels).astype(np.float64)  # (B*h*w, C)
    p = net.all_probabilities(mixed, head, own)  # (B*h*w, C)
    return p.reshape(b, h, w, channels).transpose(0, 3, 1, 2)  # (B, C, h, w)


def probabilities(net: ContextNet, symbols: np.ndarray) -> np.ndarray:
    """(B, C, h, w) uint8 symbols -> (B, n) P(1) of every cell in coding order (`_cell_probabilities`)."""
    b, channels, h, w = symbols.shape
    return _cell_probabilities(net, symbols).reshape(b, -1)[:, _order((channels, h, w), net.groups).flat]


def snap(net: ContextNet, latent: np.ndarray, c: float) -> np.ndarray:
    """The encoder's latent (B, C, h, w) -> uint8 symbols, its unsure bits snapped to the net's prediction.

    Rate-distortion quantisation without a search, as a classic encoder's RDOQ: a cell flips from its sign
    to the other value where the flip saves bits under the net (given the plain code's contexts, one
    pass) and the encoder's margin |y| is below c x the bits saved. |y| stands in for what the flip
    costs in error, so no decoder pass is needed; c = 0 gives the plain code. The decoder is then
    fine-tuned on snapped codes (`TrainConfig.snap`), which wins back most of the flips' error.
    """
    plain = (latent >= 0).astype(np.uint8)
    if c <= 0:
        return plain
    saved = flip_savings(net, plain)
    return np.where((saved > 0) & (np.abs(latent) < c * saved), 1 - plain, plain).astype(np.uint8)


def flip_savings(net: ContextNet, symbols: np.ndarray) -> np.ndarray:
    """(B, C, h, w) uint8 symbols -> the bits a flip of each cell would save under the net, every cell given
    the others as they are (one pass, `TOKENS_PER_PASS` tokens at a time); negative where a flip costs."""
    per_pass = max(1, TOKENS_PER_PASS // (symbols.shape[2] * symbols.shape[3]))
    with _one_blas_thread():
        p_one = np.concatenate([_cell_probabilities(net, symbols[i : i + per_pass])
                                for i in range(0, len(symbols), per_pass)])  # (B, C, h, w)
    return saved_bits(p_one, symbols)


def saved_bits(p_one: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Bits a flip of each cell would save under P(1) `p_one` (the shape of `symbols`): log2 P(1 - s) - log2 P(s)."""
    p_keep = np.where(symbols == 1, p_one, 1 - p_one)
    return np.log2(1 - p_keep) - np.log2(p_keep)


def _check_shape(net: ContextNet, shape) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (C, h, w) with positive sides, not {shape}")
    if shape[0] != net.channels:
        raise BitstreamError(f"context net has {net.channels} channels, the latent {shape[0]}")
    return shape


def code_bits(net: ContextNet, symbols: np.ndarray) -> float:
    """Ideal code length in bits of uint8 symbols (C, h, w) under the net."""
    _check_shape(net, symbols.shape)
    p = probabilities(net, symbols[None])[0]
    s = symbols.reshape(-1)[_order(symbols.shape, net.groups).flat]
    return float(-np.log2(np.where(s == 1, p, 1 - p)).sum())


def encode(symbols: np.ndarray, net: ContextNet) -> bytes:
    """uint8 {0, 1} symbols (C, h, w) -> ANS bytes under the context net."""
    return encode_many([symbols], net)[0]


# Tokens per pass of `encode_many`: about 1,024 (8 frames of 128x256, or one larger frame), so a pass's
# float64 arrays (224 columns a token: 1.8 MB) stay in cache. Passes of 4,096 tokens took 18 ms for 32
# frames, passes of 1,024 took 11 (2 cores of an AMD EPYC).
TOKENS_PER_PASS = 1024


def encode_many(symbols, net: ContextNet) -> list[bytes]:
    """Frames' uint8 {0, 1} symbols (each (C, h, w), one shape) -> their ANS bytes under the context net.

    The probabilities of many frames come from one pass of the net (a batched product of the same
    integers, so each frame's bytes are those `encode` writes alone); a batch of 32 128x256 frames
    codes in about 15 ms against 17-20 ms frame by frame (2 cores of an AMD EPYC)."""
    import constriction

    from compressor.context_model import _check_symbols, _model

    frames = [_check_symbols(s, "symbols") for s in symbols]
    if not frames:
        return []
    if len({f.shape for f in frames}) > 1:
        raise ValueError("encode_many takes frames of one latent shape")
    shape = _check_shape(net, frames[0].shape)
    flat = _order(shape, net.groups).flat
    per_pass = max(1, TOKENS_PER_PASS // (shape[1] * shape[2]))
    model, out = _model(), []
    with _one_blas_thread():
        for i in range(0, len(frames), per_pass):
            chunk = np.stack(frames[i : i + per_pass])  # (B, C, h, w)
            p = probabilities(net, chunk)  # (B, n) in coding order
            s = chunk.reshape(len(chunk), -1)[:, flat].astype(np.int32)  # (B, n)
            for sk, pk in zip(s, p):
                coder = constriction.stream.stack.AnsCoder()
                coder.encode_reverse(sk, model, pk)  # ANS is a stack: reversed, so decoded in order
                out.append(payload_of(coder))
    return out


def decode(payload: bytes, net: ContextNet, shape: tuple[int, int, int]) -> np.ndarray:
    return decode_many([payload], net, shape)[0]


def decode_many(payloads: list[bytes], net: ContextNet, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Many frames' payloads of one latent shape -> their uint8 symbols (C, h, w), decoded together step by
    step; BitstreamError if any payload does not decode exactly."""
    from compressor.context_model import _model

    channels, h, w = _check_shape(net, shape)
    if not payloads:
        return []
    b = len(payloads)
    grid = np.zeros((b, channels, h + 2 * PAD, w + 2 * PAD), net.x_dtype)  # -1 / +1 once decoded, 0 before and outside
    model = _model()
    with _one_blas_thread():
        try:
            coders = [coder_of(p) for p in payloads]
            decoders = [coder.decode for coder in coders]  # bound once: the loop below runs 161 x B times a frame
            flat_grid = grid.reshape(b, channels, -1)  # a view: writes below land in `grid`
            for neighbours, at in _order((channels, h, w), net.groups).tokens:
                n = len(at)
                _, mixed, head = net.trunk(_features(grid, neighbours))
                own = np.zeros((b * n, channels))  # the tokens' own channels, filled group by group
                for g, (lo, hi) in enumerate(net.ranges):
                    p = net.group_probabilities(mixed, head, own, g)  # (B*n, hi - lo)
                    p = p.reshape(b, n, hi - lo).transpose(0, 2, 1).reshape(b, -1)  # each frame: channel by channel
                    bits = np.array([decode(model, pk) for decode, pk in zip(decoders, p)])  # (B, (hi - lo) * n)
                    signed = bits.reshape(b, hi - lo, n) * 2.0 - 1  # (B, g, n)
                    own[:, lo:hi] = signed.transpose(0, 2, 1).reshape(b * n, hi - lo)
                    flat_grid[:, lo:hi, at] = signed
            exact = all(coder.is_empty() for coder in coders)
        except Exception as e:  # constriction reports invalid data as ValueError/AssertionError/etc.
            raise BitstreamError(f"damaged payload: the context-net decoder failed ({e})") from None
    if not exact:
        raise BitstreamError("damaged payload: data left over after the last symbol")
    return list((grid[:, :, PAD:-PAD, PAD:-PAD] > 0).astype(np.uint8))
