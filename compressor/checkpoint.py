"""The release checkpoint format: one .safetensors file per model, no pickle anywhere.

Which files are shipped, and under which names, is `compressor.zoo`'s table.

Tensors: the encoder and decoder weights, `bottleneck.cdf` (the frozen per-channel entropy table)
and, once `compressor fit-context` has run, `context.spatial` and `context.temporal` (the frozen context
tables of `compressor.context_model`, uint16) and, with `--net`, `context.net.*` (the integer context
net of `compressor.context_net`).
Metadata (strings):
    format      "compressor.checkpoint/1"
    config      JSON of ModelConfig, which rebuilds the network through the registry
    model_id    4 hex digits: the first 16 bits of a SHA-256 over the tensors, the context tables
                included; written into every .bin header so a file is never decoded with other weights
                or other tables
    legacy_model_id  (with context tables only) the same hash over the tensors without `context.*`:
                the id this checkpoint had before its tables were added, accepted in version-1 headers
                only, so files written before still decode
    table_model_id   (with a context net only) the same hash without `context.net.*`: the id of the
                checkpoint with its tables but before its net, accepted in version-1 and version-2
                headers and in clip archives whose records use no net, so their files still decode
    card        JSON model card: name, training facts (data, steps, wall time, hardware), results
Loading recomputes the hashes, so a tampered file is refused rather than producing garbage.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from compressor.atomic import write_atomic
from compressor.errors import ModelError

FORMAT = "compressor.checkpoint/1"


def warm_start_note(training: dict) -> str:
    """', after N frames in SEED' for a card's training facts whose run was warm-started; else ''."""
    seed = training.get("warm_started_from")
    return f", after {seed['frames_seen']:,} frames in {seed['name']}" if seed else ""


@dataclass
class ModelCard:
    """What a checkpoint says about itself."""

    name: str
    model_id: int
    config: dict
    card: dict = field(default_factory=dict)
    path: Path | None = None
    legacy_model_id: int | None = None  # the id before context tables were added (version-1 files only)
    context_tables: dict | None = None  # {"spatial", "temporal"}: uint16 numpy arrays, set by read_tensors
    table_model_id: int | None = None  # the id with tables, before the context net (versions 1 and 2)
    context_net: dict | None = None  # the context net's integer tensors (context_net.KEYS), set by read_tensors
    # Ids of the checkpoint whose encoder and coding (per-channel table, context tables and net) this one
    # carries bit for bit (card "reads_files_of", from a snap run's export): its files decode to the same
    # symbols here, read by this decoder.
    former_model_ids: frozenset = frozenset()

    def accepts(self, model_id: int, version: int) -> bool:
        """Whether a .bin header with this model id and payload coding (`Header.coding_version`: 1 per-channel
        or raw, 2 context table, 3 context net) was written by this checkpoint."""
        return (model_id == self.model_id or (version <= 2 and model_id == self.table_model_id)
                or (version == 1 and model_id == self.legacy_model_id) or model_id in self.former_model_ids)

    @property
    def refine_start_scale(self) -> float:
        """What refinement multiplies this encoder's latent by before its search (`compressor.search`; 1 if unsaid)."""
        return float(self.card.get("refine_start_scale", 1.0))


CONTEXT_PREFIX = "context."  # the context tables' tensors: context.spatial, context.temporal
NET_PREFIX = "context.net."  # the context net's tensors


def tensors_digest(tensors: dict) -> bytes:
    """SHA-256 over names, dtypes, shapes and raw bytes of the tensors, in sorted name order."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def save_release(path: str | os.PathLike, model, config, *, name: str, card: dict, weight_dtype=None) -> int:
    """Write a release checkpoint atomically; returns its 16-bit model id.

    `weight_dtype` (e.g. torch.float16) stores floating-point weights at lower precision to keep the
    file small; the model is rebuilt in float32 on load, so results must be measured after a reload.
    """
    tensors = {}
    for k, v in model.state_dict().items():
        if k.startswith("bottleneck.entropy_model."):
            continue  # the trained density is frozen into bottleneck.cdf
        v = v.detach().cpu().contiguous()
        if weight_dtype is not None and v.is_floating_point():
            v = v.to(weight_dtype)
        tensors[k] = v
    model_id = int.from_bytes(tensors_digest(tensors)[:2], "big")
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config.to_dict()),
        "model_id": f"{model_id:04x}",
        "card": json.dumps({"name": name, **card}),
    }
    _save_atomic(Path(path), tensors, metadata)
    return model_id


def update_card(path: str | os.PathLike, card: dict) -> None:
    """Rewrite a release checkpoint's model card; the tensors, and so the model id, stay as they are."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["card"] = json.dumps(card)
    _save_atomic(Path(path), tensors, metadata)


def _save_atomic(path: Path, tensors: dict, metadata: dict) -> None:
    from safetensors.torch import save_file

    write_atomic(path, writer=lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_card(path: str | os.PathLike) -> ModelCard:
    """The metadata of a checkpoint, without loading its weights (fast; no torch model is built)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if not 2 <= header_len <= 100_000_000:
                raise ModelError(f"{path} is not a safetensors checkpoint")
            header = json.loads(f.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read checkpoint {path}: {e}") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    meta = meta if isinstance(meta, dict) else {}  # a list header, or metadata that is not an object
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not a compressor checkpoint (format {meta.get('format')!r})")
    try:
        config = json.loads(meta["config"])
        card = json.loads(meta.get("card", "{}"))
        model_id = int(meta["model_id"], 16)
        legacy, table_id = (None if meta.get(k) is None else int(meta[k], 16) for k in ("legacy_model_id", "table_model_id"))
        if not isinstance(config, dict) or not isinstance(card, dict):
            raise ValueError("config and card must be JSON objects")
        former = frozenset(int(i, 16) for i in card.get("reads_files_of", {}).get("model_ids", []))
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ModelError(f"{path} has a malformed header: {e}") from None
    return ModelCard(name=card.get("name", path.stem), model_id=model_id, config=config, card=card, path=path,
                     legacy_model_id=legacy, table_model_id=table_id, former_model_ids=former)


def _model_id(tensors: dict) -> int:
    return int.from_bytes(tensors_digest(tensors)[:2], "big")


def split_context(tensors: dict) -> tuple[dict, dict, dict]:
    """Checkpoint tensors -> (network tensors, context tables as uint16 numpy arrays by name, the context
    net's tensors as numpy arrays by key)."""
    net = {k: v for k, v in tensors.items() if not k.startswith(CONTEXT_PREFIX)}
    ctx_net = {k[len(NET_PREFIX):]: v.numpy() for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    tables = {k[len(CONTEXT_PREFIX):]: v.numpy() for k, v in tensors.items()
              if k.startswith(CONTEXT_PREFIX) and not k.startswith(NET_PREFIX)}
    return net, tables, ctx_net


def save_with_context(src: str | os.PathLike, dst: str | os.PathLike, tables: dict, card_update: dict,
                      context_net: dict | None = None) -> tuple[int, int]:
    """Copy checkpoint `src` to `dst` (atomically) with context tables `tables` ({"spatial", "temporal"}:
    uint16 arrays) and, if given, the context net `context_net` (integer arrays by `context_net.KEYS`) replacing
    any it had, and `card_update` merged into its card; returns (model id, legacy id). With a net, the
    id over the network and the tables alone is kept as `table_model_id`: files coded with those tables
    before the net was added still decode.

    The network tensors are copied bit for bit, so the legacy id (theirs alone) is the id `src` had
    before it ever carried tables, and version-1 files written with it still decode.
    """
    import numpy as np
    import torch
    from safetensors import safe_open

    info = read_card(src)
    with safe_open(str(src), "pt") as f:
        metadata = dict(f.metadata())
        net, _, _ = split_context({k: f.get_tensor(k) for k in f.keys()})
    legacy = _model_id(net)
    if legacy != (info.legacy_model_id if info.legacy_model_id is not None else info.model_id):
        raise ModelError(f"{src}: weights do not match the checkpoint's model id (file altered?)")
    tensors = dict(net)
    for name, table in tables.items():
        table = np.ascontiguousarray(table)
        if table.dtype != np.uint16:
            raise ValueError(f"context table {name} must be uint16, not {table.dtype}")
        tensors[CONTEXT_PREFIX + name] = torch.from_numpy(table.copy())
    metadata.pop("table_model_id", None)
    if context_net is not None:
        metadata["table_model_id"] = f"{_model_id(tensors):04x}"
        for key, value in context_net.items():
            tensors[NET_PREFIX + key] = torch.from_numpy(np.ascontiguousarray(value).copy())
    model_id = _model_id(tensors)
    metadata["model_id"] = f"{model_id:04x}"
    metadata["legacy_model_id"] = f"{legacy:04x}"
    card = {**info.card, **card_update}
    if card.get("reads_files_of") and "reads_files_of" not in card_update:
        card.pop("reads_files_of")  # new tables or net: the files of the coding it carried decode no longer
    metadata["card"] = json.dumps(card)
    _save_atomic(Path(dst), tensors, metadata)
    return model_id, legacy


def read_tensors(path: str | os.PathLike) -> tuple[dict, ModelCard]:
    """A release checkpoint's network tensors and card, their model ids verified; the context tables
    (if any) go into `card.context_tables`. `compressor.model.load_model` builds the network from them."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    info = read_card(path)
    try:
        tensors = load_file(str(info.path))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"cannot read checkpoint {info.path}: {e}") from None
    if _model_id(tensors) != info.model_id:
        raise ModelError(f"{info.path}: weights do not match the checkpoint's model id (file altered?)")
    with_tables = {k: v for k, v in tensors.items() if not k.startswith(NET_PREFIX)}
    tensors, tables, ctx_net = split_context(tensors)
    if ctx_net or info.table_model_id is not None:
        if not tables or _model_id(with_tables) != info.table_model_id:
            raise ModelError(f"{info.path}: tables do not match the checkpoint's table model id (file altered?)")
        info.context_net = ctx_net
    if tables or info.legacy_model_id is not None:
        if _model_id(tensors) != info.legacy_model_id:
            raise ModelError(f"{info.path}: weights do not match the checkpoint's legacy model id (file altered?)")
        if "spatial" not in tables:
            raise ModelError(f"{info.path}: context tables without {CONTEXT_PREFIX}spatial")
        info.context_tables = tables
    return tensors, info
