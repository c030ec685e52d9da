"""Each frame's symbols coded the shortest way its place allows: a `.bin` file's payload (kinds 0-2 and 4,
no previous frame) and a clip's records. numpy only.

    keyframe (frame index a multiple of K):   raw bits | per-channel table | context net, or the context table
                                              for a checkpoint without a net  (kinds 0, 1, 4 or 2)
    other frames:                             the same, or the temporal table given the previous frame (kind 3)

The context and temporal tables are the checkpoint's (`compressor.context_model`), and so is the
context net (`compressor.context_net`); a checkpoint without them codes kinds 0 and 1 only. Raw bits
are kept when nothing is shorter, so a 128x256 frame's payload never exceeds 224 bytes. The spatial
table is not tried beside a net: the shipped default's net codes every evaluation frame shorter (139 of
139, by 18 B on average), and trying the table cost a third of the coder's encoding time.
"""
from __future__ import annotations

import numpy as np

from compressor import context_model, context_net, entropy_coder
from compressor.clip import CHANNEL, CONTEXT, KIND_NAMES, NET, RAW, TEMPORAL, ClipError
from compressor.errors import BitstreamError


def _has_temporal(tables) -> bool:
    """Whether context tables (a dict or `context_model.Tables`) include the temporal one."""
    return context_model.Tables.of(tables).arrays.get("temporal") is not None


def encode_frame(symbols: np.ndarray, cdf: np.ndarray, tables=None,
                 prev: np.ndarray | None = None, net: context_net.ContextNet | None = None) -> tuple[int, bytes]:
    """uint8 symbols (C, h, w) -> (kind, payload), the shortest of the codings available (the context
    table only without a net); `prev` (the previous frame's symbols, None at a keyframe) allows the
    temporal table; `tables` is a dict of uint16 arrays or a `context_model.Tables`, None for a
    checkpoint without them; `net` the context net, None without one. Ties go to the older kind (a file
    older readers decode) and to the kind that does not need the previous frame."""
    return encode_frames([symbols], cdf, tables, [prev], net)[0]


def encode_frames(symbols, cdf: np.ndarray, tables=None, prevs=None,
                  net: context_net.ContextNet | None = None) -> list[tuple[int, bytes]]:
    """`encode_frame` of many frames (a list of (C, h, w), `prevs` a list of the same length or None for
    none): the same records, with the net's probabilities for frames of one shape in one pass."""
    prevs = [None] * len(symbols) if prevs is None else list(prevs)
    if len(prevs) != len(symbols):
        raise ValueError(f"{len(symbols)} frames but {len(prevs)} previous frames")
    net_payloads: list[bytes | None] = [None] * len(symbols)
    if net is not None:
        by_shape: dict[tuple, list[int]] = {}
        for i, s in enumerate(symbols):
            by_shape.setdefault(np.shape(s), []).append(i)
        for index in by_shape.values():
            for i, payload in zip(index, context_net.encode_many([symbols[i] for i in index], net)):
                net_payloads[i] = payload
    temporal = tables is not None and _has_temporal(tables)
    records = []
    for s, prev, net_payload in zip(symbols, prevs, net_payloads):
        candidates = [(CHANNEL, entropy_coder.encode(s, cdf))]
        if tables is not None:
            if net_payload is None:
                candidates.append((CONTEXT, context_model.encode(s, tables)))
            if prev is not None and temporal:
                candidates.append((TEMPORAL, context_model.encode(s, tables, prev=prev)))
        if net_payload is not None:
            candidates.append((NET, net_payload))
        kind, payload = min(candidates, key=lambda c: len(c[1]))  # min keeps the first of equals
        if len(payload) >= entropy_coder.raw_size(np.size(s)):
            kind, payload = RAW, entropy_coder.pack_raw(s)
        records.append((kind, payload))
    return records


def decode_frame(kind: int, payload: bytes, cdf: np.ndarray, shape: tuple[int, int, int],
                 tables=None, prev: np.ndarray | None = None, net: context_net.ContextNet | None = None) -> np.ndarray:
    """(kind, payload) -> uint8 symbols (C, h, w); ClipError where the record cannot be decoded (a kind
    this checkpoint has no table for, or a temporal record whose previous frame is missing)."""
    if kind == RAW:
        return entropy_coder.unpack_raw(payload, shape)
    if kind == CHANNEL:
        return entropy_coder.decode(payload, cdf, shape)
    if kind not in KIND_NAMES:
        raise ClipError(f"unknown record kind {kind}")
    if kind == NET:
        if net is None:
            raise ClipError("a net record, but the model has no context net")
        return context_net.decode(payload, net, shape)
    if tables is None or (kind == TEMPORAL and not _has_temporal(tables)):
        raise ClipError(f"a {KIND_NAMES[kind]} record, but the model has no {KIND_NAMES[kind]} table")
    if kind == CONTEXT:
        return context_model.decode(payload, tables, shape)
    if prev is None:
        raise ClipError("a temporal record whose previous frame is damaged or missing")
    return context_model.decode(payload, tables, shape, prev=prev)


def decode_frames(items: list[tuple[int, bytes, tuple[int, int, int]]], cdf: np.ndarray, tables=None,
                  net: context_net.ContextNet | None = None) -> list[np.ndarray]:
    """Many frames' (kind, payload, shape) with no previous frame (a batch of `.bin` files) -> their
    symbols; context and net payloads of one shape are decoded together (`decode_many`), so a batch
    pays each numpy step once. Errors as `decode_frame`'s."""
    out: list = [None] * len(items)
    together: dict[tuple, list[int]] = {}
    for i, (kind, payload, shape) in enumerate(items):
        if kind in (CONTEXT, NET) and (tables if kind == CONTEXT else net) is not None:
            together.setdefault((kind, tuple(shape)), []).append(i)
        else:
            out[i] = decode_frame(kind, payload, cdf, shape, tables, None, net)
    for (kind, shape), idx in together.items():
        payloads = [items[i][1] for i in idx]
        many = (context_model.decode_many(payloads, tables, shape) if kind == CONTEXT
                else context_net.decode_many(payloads, net, shape))
        for i, s in zip(idx, many):
            out[i] = s
    return out


def decode_run(records: list, cdf: np.ndarray, shape: tuple[int, int, int], tables=None,
               net: context_net.ContextNet | None = None, prev: np.ndarray | None = None) -> list:
    """Consecutive frames of a clip -> each one's uint8 symbols (C, h, w), or the BitstreamError that stops it.

    `records` holds each frame's (kind, payload), or the BitstreamError that reading it raised; `prev` is
    the symbols of the frame before the first (None at a keyframe). The frames coded alone are decoded
    together (`decode_frames`: one numpy step per net step for all of them), then the temporal ones in
    order, each given the frame before it; one after a damaged frame is damaged too, up to the next
    frame coded alone."""
    out: list = [r if isinstance(r, BitstreamError) else None for r in records]
    alone = [i for i, r in enumerate(records) if out[i] is None and r[0] != TEMPORAL]
    try:
        decoded = decode_frames([(*records[i], shape) for i in alone], cdf, tables, net)
    except BitstreamError:  # one bad record among them: each alone, so that only it is lost
        decoded = []
        for i in alone:
            try:
                decoded.append(decode_frame(*records[i], cdf, shape, tables, None, net))
            except BitstreamError as e:
                decoded.append(e)
    for i, s in zip(alone, decoded):
        out[i] = s
    for i, r in enumerate(records):
        if out[i] is None:  # a temporal record
            before = prev if i == 0 else out[i - 1]
            try:
                out[i] = decode_frame(*r, cdf, shape, tables, before if isinstance(before, np.ndarray) else None, net)
            except BitstreamError as e:
                out[i] = e
    return out


RUN = 256  # frames read and decoded at a time by `clip_symbols`


def clip_symbols(reader, cdf: np.ndarray, shape: tuple[int, int, int], tables=None,
                 net: context_net.ContextNet | None = None, start: int = 0, stop: int | None = None):
    """Frames start..stop-1 of an open clip (`clip.ClipReader`) -> (i, symbols or BitstreamError) in order,
    decoded from the keyframe at or before `start`, `RUN` frames at a time (`decode_run`)."""
    stop = len(reader) if stop is None else stop
    prev = None
    for lo in range(reader.keyframe_at_or_before(start), stop, RUN):
        hi = min(lo + RUN, stop)
        records = []
        for i in range(lo, hi):
            try:
                records.append(reader.record(i))
            except BitstreamError as e:
                records.append(e)
        decoded = decode_run(records, cdf, shape, tables, net, prev)
        prev = decoded[-1] if isinstance(decoded[-1], np.ndarray) else None
        for i, s in zip(range(lo, hi), decoded):
            if i >= start:
                yield i, s
