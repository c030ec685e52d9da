"""The training config (a dataclass saved with every run) and the `--set key=value` overrides."""
from __future__ import annotations

import json
import types
from dataclasses import asdict, dataclass, field

from compressor.model import ModelConfig


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: list[str] = field(default_factory=list)  # training folders: required (`--data DIR`)
    val_data: list[str] = field(default_factory=list)  # empty: hold out every 50th training file
    crop: tuple[int, int] = (128, 256)
    pool_size: int = 16000
    batch_size: int = 16
    steps: int = 15000
    lr: float = 4e-4
    entropy_lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 500
    decay_fraction: float = 0.25
    rate_weight: float = 0.004
    surrogate_temperature: float = 1.0  # the quantizer's backward: gradient of t*tanh(y/t); see BinarySign
    # Experiment modes, all off by default: refit one half to the other (freeze_*), and distillation
    # from encoder-side search (distill_*, see distill.py). Flat fields, so saved runs still load.
    freeze_decoder: bool = False  # with init_from: train the encoder (and entropy model) against a fixed decoder
    freeze_encoder: bool = False  # with init_from: train the decoder (and entropy model) on a fixed encoder's codes
    # With freeze_encoder: train the decoder on codes snapped by the seed's context net at this c
    # (`context_net.snap`); the release then encodes with the same rule. 0: plain codes.
    snap: float = 0.0
    # With freeze_decoder: fit the encoder by cross-entropy to the codes that this many refinement steps
    # (compressor.search) find from the seed encoder's latents, not through the quantizer's surrogate.
    distill_refine: int = 0
    distill_reuse: int = 4  # each refined batch joins a buffer; one new batch every this many steps
    distill_buffer: int = 4096  # frames of (crop, refined code) pairs the steps draw from
    distill_temperature: float = 2.0  # logits = y / t: the encoder's latent read as a bit's confidence
    # The teacher's search starts from its latent times this (refine_symbols' start_scale); 0: the seed
    # checkpoint card's refine_start_scale, so the teacher searches as `--refine` does for that model.
    distill_start_scale: float = 0.0
    # Searches per refined frame: the first from the teacher's latent, the others from it plus Gaussian
    # noise (distill.SEARCH_NOISE); the target of each bit is the share of searches that set it. 1: one
    # search, a hard target.
    distill_searches: int = 1
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = all cores
    # bf16 autocast. None ("auto"): where the hardware runs it fast (AMX or AVX512-BF16 CPUs, GPUs with
    # bf16), resolved at start and recorded; a CPU without bf16 units emulates it about 20x slower than
    # float32 (`docs/scripts/bf16_step_speed.py` on an AVX2 EPYC).
    bf16: bool | None = None
    log_every: int = 50
    val_every: int = 500
    checkpoint_minutes: float = 4.0
    cache_dir: str = ""  # where the crop pool is kept; empty: the run folder
    device: str = "cpu"  # or "cuda"; bf16 autocast on either
    init_from: str = ""  # warm start: a release checkpoint (.safetensors) whose weights seed the network

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ModelConfig.from_dict(d.get("model", {}))
        if "crop" in d:
            d["crop"] = tuple(d["crop"])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**d)


# TrainConfig fields that say where a run ran and how it reported, not what it learned: left out of
# the recipe that the model card records and that fair comparisons hold equal.
WHERE_NOT_WHAT = ("model", "cache_dir", "log_every", "checkpoint_minutes", "device", "threads")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Warmup-stable-decay: linear warmup, flat, then linear decay to 0 over the last `decay_fraction`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = cfg.steps * (1 - cfg.decay_fraction)
    if step < decay_start:
        return cfg.lr
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1.0, cfg.steps - decay_start))


def _convert(value: str, kind, key: str):
    """Parse a --set value as the field's type; a mismatch is a clear error, never a silent string."""
    import typing

    origin = typing.get_origin(kind) or kind
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind):
        if value.lower() in ("auto", "none", "null"):  # an optional field: None is its "decide at start"
            return None
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)]
        return _convert(value, kind, key)
    try:
        if kind is bool:
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return value
        if origin is list and not value.lstrip().startswith(("[", '"')):  # --set data=DIR: one folder
            return [value]
        parsed = json.loads(value)
        if origin in (list, tuple) and isinstance(parsed, list):
            return origin(parsed)
        if origin is dict and isinstance(parsed, dict):
            return parsed
        if origin is list and isinstance(parsed, str):  # --set data=DIR for a single folder
            return [parsed]
        raise ValueError
    except (ValueError, json.JSONDecodeError):
        name = getattr(kind, "__name__", str(kind))
        raise ValueError(f"--set {key}={value}: expected a value of type {name}") from None


def apply_overrides(cfg: TrainConfig, pairs: list[str]) -> TrainConfig:
    """Apply `key=value` overrides: `steps=100`, `model.encoder=convnext`, `model.encoder_args.dim=192`."""
    import typing

    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set {pair}: expected key=value")
        key, value = pair.split("=", 1)
        parts = key.split(".")
        if parts[0] == "model" and len(parts) >= 2:
            hints = typing.get_type_hints(ModelConfig)
            if parts[1] not in hints:
                raise ValueError(f"--set {key}: unknown model config key '{parts[1]}'")
            if len(parts) == 2:
                setattr(cfg.model, parts[1], _convert(value, hints[parts[1]], key))
            elif len(parts) == 3 and hints[parts[1]] is dict:
                try:
                    parsed = json.loads(value)
                except json.JSONDecodeError:
                    parsed = value
                getattr(cfg.model, parts[1])[parts[2]] = parsed
            else:
                raise ValueError(f"--set {key}: unknown key")
            continue
        hints = typing.get_type_hints(TrainConfig)
        if len(parts) != 1 or key not in hints or key == "model":
            raise ValueError(f"--set {key}: unknown training config key (known: {', '.join(sorted(hints))})")
        setattr(cfg, key, _convert(value, hints[key], key))
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Refuse a config that cannot train, before any folder is made or data read."""
    from compressor.registry import get_architecture

    get_architecture(cfg.model.encoder)
    get_architecture(cfg.model.decoder)
    for name in ("steps", "batch_size", "pool_size"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)}")
    if not cfg.data:
        raise ValueError("no training data: pass --data DIR")
    if cfg.freeze_decoder and not cfg.init_from:
        raise ValueError("freeze_decoder needs init_from: a decoder that is already trained")
    if cfg.freeze_encoder and not cfg.init_from:
        raise ValueError("freeze_encoder needs init_from: an encoder that is already trained")
    if cfg.snap < 0 or (cfg.snap and not cfg.freeze_encoder):
        raise ValueError("snap must be 0 or more, and needs freeze_encoder: the codes are the seed encoder's, snapped")
    if cfg.snap and cfg.init_from:
        from compressor.checkpoint import read_card

        if read_card(cfg.init_from).table_model_id is None:  # the id a checkpoint keeps when it gets a net
            raise ValueError(f"snap needs a seed with a context net, and {cfg.init_from} has none "
                             "(compressor fit-context --net)")
    if cfg.freeze_encoder and cfg.freeze_decoder:
        raise ValueError("freeze_encoder and freeze_decoder together leave no network to train")
    if cfg.distill_refine and not cfg.freeze_decoder:
        raise ValueError("distill_refine needs freeze_decoder: the refined codes are targets for a fixed decoder")
    if (cfg.distill_refine < 0 or cfg.distill_reuse <= 0 or cfg.distill_buffer <= 0 or cfg.distill_temperature <= 0
            or cfg.distill_start_scale < 0 or not 1 <= cfg.distill_searches <= 255):
        raise ValueError("distill_refine and distill_start_scale must be 0 or more; "
                         "distill_reuse, distill_buffer, distill_temperature positive; distill_searches 1 to 255")
    if cfg.surrogate_temperature <= 0:
        raise ValueError(f"surrogate_temperature must be positive, got {cfg.surrogate_temperature}")
    if len(cfg.crop) != 2 or min(cfg.crop) < 16:
        raise ValueError(f"crop must be two sides of at least 16 pixels, got {cfg.crop}")
