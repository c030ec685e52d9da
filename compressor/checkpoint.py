"""Release checkpoints: one .safetensors file per model, no pickle anywhere.

Tensors: the encoder and decoder weights and `bottleneck.cdf`, the frozen entropy table.
Metadata (strings):
    format      "compressor.checkpoint/1"
    config      JSON of ModelConfig, which rebuilds the network through the registry
    model_id    4 hex digits: the first 16 bits of a SHA-256 over the tensors; written into every .bin
                header so a file is never decoded with other weights
    card        JSON model card: name, training facts (data, steps, wall time, hardware), results
Loading recomputes the hash, so a tampered file is refused rather than producing garbage.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from compressor.atomic import write_atomic
from compressor.errors import ModelError

FORMAT = "compressor.checkpoint/1"
# What encode(), `compress` and the other commands use when no model is named: the pure ViT trained
# longest, its encoder then distilled from refinement and its decoder fine-tuned on the distilled
# codes, two rounds of both (the comparison's `vit` had the same budget as the other architectures;
# see the README).
DEFAULT_MODEL = "vit-distil2-ft"


def warm_start_note(training: dict) -> str:
    """', after N frames in SEED' for a card's training facts whose run was warm-started; else ''."""
    seed = training.get("warm_started_from")
    return f", after {seed['frames_seen']:,} frames in {seed['name']}" if seed else ""


# Shipped in the top-level checkpoints/ and mapped into the wheel as the package compressor.checkpoints.
_SOURCE_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@dataclass
class ModelCard:
    """What a checkpoint says about itself."""

    name: str
    model_id: int
    config: dict
    card: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def refine_start_scale(self) -> float:
        """What refinement multiplies this encoder's latent by before its search (`compressor.search`; 1 if unsaid)."""
        return float(self.card.get("refine_start_scale", 1.0))


def checkpoint_dirs() -> list[Path]:
    dirs = []
    if _SOURCE_CHECKPOINTS.is_dir():
        dirs.append(_SOURCE_CHECKPOINTS)
    try:
        from importlib.resources import files

        installed = Path(str(files("compressor.checkpoints")))
        if installed.is_dir() and installed not in dirs:
            dirs.append(installed)
    except (ModuleNotFoundError, TypeError):
        pass
    return dirs


def shipped_checkpoints() -> dict[str, Path]:
    """Registered names (file stems) of the shipped checkpoints -> their paths."""
    found: dict[str, Path] = {}
    for d in checkpoint_dirs():
        for p in sorted(d.glob("*.safetensors")):
            found.setdefault(p.stem, p)
    return found


@lru_cache(maxsize=64)
def _model_id_of(path: str, mtime_ns: int) -> int:
    return read_card(path).model_id


def find_shipped(model_id: int) -> Path | None:
    """The shipped checkpoint with this model id, or None.

    `compressor.decode` asks this for every file it decodes, so each checkpoint's header is read once
    (again only if the file changes), not once per decoded frame.
    """
    for path in shipped_checkpoints().values():
        if _model_id_of(str(path), path.stat().st_mtime_ns) == model_id:
            return path
    return None


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A registered name ("vit") or a path to a .safetensors file -> the file's path."""
    text = str(name_or_path)
    shipped = shipped_checkpoints()
    if text in shipped:
        return shipped[text]
    path = Path(text)
    if path.suffix == ".safetensors" or os.sep in text or path.exists():
        if not path.is_file():
            raise ModelError(f"checkpoint not found: {path}")
        return path
    known = ", ".join(sorted(shipped)) or "none installed"
    raise ModelError(f"unknown model '{text}' (shipped models: {known}; or pass a .safetensors path)")


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
        if not isinstance(config, dict) or not isinstance(card, dict):
            raise ValueError("config and card must be JSON objects")
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{path} has a malformed header: {e}") from None
    return ModelCard(name=card.get("name", path.stem), model_id=model_id, config=config, card=card, path=path)


def load_model(path: str | os.PathLike):
    """Rebuild the model of a release checkpoint in float32 eval mode: (CompressionModel, ModelCard)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from compressor.model import CompressionModel, ModelConfig

    info = read_card(path)
    try:
        tensors = load_file(str(info.path))
    except (SafetensorError, OSError) as e:
        raise ModelError(f"cannot read checkpoint {info.path}: {e}") from None
    if int.from_bytes(tensors_digest(tensors)[:2], "big") != info.model_id:
        raise ModelError(f"{info.path}: weights do not match the checkpoint's model id (file altered?)")
    try:
        model = CompressionModel.from_config(ModelConfig.from_dict(info.config))
    except (TypeError, ValueError, RuntimeError) as e:  # RuntimeError: torch refusing a size (negative, say)
        raise ModelError(f"{info.path}: config does not build a model: {e}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).strip().splitlines()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # the first line only names the model class
        raise ModelError(f"{info.path}: weights do not fit the config: {detail}") from None
    model.eval()
    return model, info
