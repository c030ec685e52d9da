"""A run's state on disk and the facts it keeps: weights, both optimizers, progress and provenance.

    RUN_DIR/state.safetensors   tensors: model.* (weights), opt.* and entropy_opt.* (optimizer state)
                                metadata: config, step, elapsed, segments, refined_frames,
                                warm_started_from, and each optimizer's scalars and param groups

Progress is counted over every resume: `segments` says where each stretch of steps ran (a run may
move between machines), `warm_started_from` the frames and time behind a seed checkpoint. Both end up
in the model card (`training_facts`). Nothing is pickled.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from compressor.atomic import write_atomic
from compressor.device import cpu_name
from compressor.layers import TransformerBlock
from compressor.training.config import WHERE_NOT_WHAT, TrainConfig

STATE_FILE = "state.safetensors"


@dataclass
class Progress:
    """How far a run has come, over all its resumes."""

    step: int = 0
    elapsed: float = 0.0  # training seconds
    segments: list[dict] = field(default_factory=list)  # {hardware, first_step, last_step, seconds}
    refined_frames: int = 0  # frames distillation refined into targets
    warm_started_from: dict | None = None  # the seed checkpoint: name, id, frames and time behind it


@dataclass
class SavedState:
    """A state file read back: its config, weights (without the `model.` prefix), progress and optimizers."""

    config: TrainConfig
    weights: dict[str, torch.Tensor]
    progress: Progress
    optimizers: dict[str, dict]  # name -> a state_dict for torch.optim.Optimizer.load_state_dict


def merge_segments(segments: list[dict]) -> list[dict]:
    """Consecutive stretches on the same hardware as one (every resume starts a stretch); empty ones dropped."""
    merged: list[dict] = []
    for seg in [s for s in segments if s["last_step"] > s["first_step"]] or segments[-1:]:
        if merged and merged[-1]["hardware"] == seg["hardware"]:
            merged[-1] = {**merged[-1], "last_step": seg["last_step"],
                          "seconds": round(merged[-1]["seconds"] + seg["seconds"], 1)}
        else:
            merged.append(dict(seg))
    return merged


def hardware_summary(segments: list[dict]) -> str:
    """One machine's name, or each machine with its steps when a run moved between them."""
    merged = merge_segments(segments)
    if len(merged) == 1:
        return merged[0]["hardware"]
    return "; ".join(f"steps {m['first_step']}-{m['last_step']} on {m['hardware']}" for m in merged)


def hardware(cfg: TrainConfig, device: torch.device | None = None, world: int = 1) -> str:
    """A process's machine, as the model card names it (the CPU when no device is given)."""
    precision = "bf16 autocast" if cfg.bf16 else "fp32"
    if device is not None and device.type == "cuda":
        return f"{f'{world} x ' if world > 1 else ''}{torch.cuda.get_device_name(device)}, {precision}"
    return f"{cpu_name()}, {cfg.threads} CPU thread(s), {precision}"


def training_facts(cfg: TrainConfig, progress: Progress, machine: str, data_facts: dict | None = None) -> dict:
    """Training facts for the model card; `machine` names the hardware of a run that kept no segments."""
    return {
        "data": cfg.data,
        **(data_facts or {}),
        "crop": list(cfg.crop),
        "steps": progress.step,
        "batch_size": cfg.batch_size,
        "frames_seen": progress.step * cfg.batch_size,
        "wall_time_s": round(progress.elapsed),
        # With distillation, how many of those frames were refined into targets (one batch per
        # `distill_reuse` steps, and one more after each resume refills the unsaved buffer).
        **({"refined_frames": progress.refined_frames} if cfg.distill_refine else {}),
        "hardware": hardware_summary(progress.segments) if progress.segments else machine,
        "segments": merge_segments(progress.segments),
        # Where and how often a run saves or logs is not part of what it learns.
        "recipe": {k: v for k, v in cfg.to_dict().items() if k not in WHERE_NOT_WHAT},
        **({"warm_started_from": progress.warm_started_from} if progress.warm_started_from else {}),
    }


@contextmanager
def watch_for_stops():
    """Yields a list that gains an entry each time the process is continued after a stop (SIGCONT).

    A stopped process cannot see the stop itself, only the continue; the step it lands in is counted
    as long as the step before, so a run paused for an hour does not report an hour of training.
    """
    import signal
    import threading

    continued: list[float] = []
    if not hasattr(signal, "SIGCONT") or threading.current_thread() is not threading.main_thread():
        yield continued  # no signals here: stops are counted as training time
        return
    previous = signal.signal(signal.SIGCONT, lambda *_: continued.append(time.time()))
    try:
        yield continued
    finally:
        signal.signal(signal.SIGCONT, previous)


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, v in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[key] = v
    for name, v in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer],
               cfg: TrainConfig, progress: Progress) -> None:
    """Write the run's state atomically: a crash mid-write leaves the previous state whole."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "step": str(progress.step),
        "elapsed": str(progress.elapsed),
        "segments": json.dumps(progress.segments),
        "config": json.dumps(cfg.to_dict()),
        "warm_started_from": json.dumps(progress.warm_started_from),
        "refined_frames": str(progress.refined_frames),
    }
    for name, opt in optimizers.items():
        opt_tensors, opt_meta = _flatten_optimizer(name, opt)
        tensors.update(opt_tensors)
        meta[name] = json.dumps(opt_meta)
    write_atomic(path, writer=lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_state(path: Path, cfg: TrainConfig | None = None, machine: str | None = None) -> SavedState:
    """Read a state file. `cfg` (default: the saved one) and `machine` (default: this CPU) fill in what
    states saved before a field existed lack: the refined-frame count and the segments."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = cfg or TrainConfig.from_dict(json.loads(meta["config"]))
    step, elapsed = int(meta["step"]), float(meta["elapsed"])
    # States saved before the count: one batch per `distill_reuse` steps, as the buffer refills.
    legacy = -(-step // cfg.distill_reuse) * cfg.batch_size if cfg.distill_refine else 0
    segments = json.loads(meta["segments"]) if "segments" in meta else [  # states saved before segments
        {"hardware": machine or hardware(cfg), "first_step": 0, "last_step": step, "seconds": round(elapsed, 1)}]
    progress = Progress(step=step, elapsed=elapsed, segments=segments,
                        refined_frames=int(meta.get("refined_frames", legacy)),
                        # absent or null: not warm-started
                        warm_started_from=json.loads(meta.get("warm_started_from", "null")) or None)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optimizers = {name: _unflatten_optimizer(name, tensors, json.loads(meta[name]))
                  for name in ("opt", "entropy_opt") if name in meta}
    return SavedState(config=cfg, weights=weights, progress=progress, optimizers=optimizers)


def _grown_blocks(model: torch.nn.Module, missing: list[str]) -> list[TransformerBlock] | None:
    """The transformer blocks a warm start left wholly unset (the model is deeper than its seed), or
    None if some other weight is missing, which means the seed does not fit the config."""
    blocks = {name: m for name, m in model.named_modules() if isinstance(m, TransformerBlock)}
    owners = {next((b for b in blocks if key.startswith(b + ".")), None) for key in missing}
    if None in owners:
        return None
    grown = [blocks[b] for b in sorted(owners)]
    unset = {f"{b}.{k}" for b in owners for k in blocks[b].state_dict()}
    return grown if unset == set(missing) else None


def warm_start(model: torch.nn.Module, path: str) -> tuple[float, dict]:
    """Seed encoder and decoder from a release checkpoint; the entropy model relearns in a few steps.

    Returns the seed's refine_start_scale and its lineage for `Progress.warm_started_from`.
    """
    from compressor.model import load_model

    released, info = load_model(path)
    weights = {k: v for k, v in released.state_dict().items() if not k.startswith("bottleneck.")}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # a tensor of another shape: a wider or narrower model
        raise ValueError(f"{path} does not fit this model config ({str(e).strip().splitlines()[-1].strip()})") from None
    grown = _grown_blocks(model, [k for k in missing if not k.startswith("bottleneck.")])
    if unexpected or grown is None:
        raise ValueError(f"{path} does not fit this model config")
    for block in grown:  # deeper than the seed: the new blocks start as the identity
        for out in (block.attn.proj, block.mlp.fc2):
            torch.nn.init.zeros_(out.weight)
            torch.nn.init.zeros_(out.bias)
    # The card must count the frames behind the seed weights too, or a warm-started model would
    # look as if it had learned from this run alone.
    seed = info.card.get("training", {})
    ancestors = seed.get("warm_started_from", {})  # already the sum over the seed's own seeds
    from compressor.zoo import SHIPPED

    # A zoo name ("vit.default") names whatever is shipped at the time; the seed's file name stays its name.
    name = Path(path).stem if info.name in SHIPPED else info.name
    return info.refine_start_scale, {
        "name": name, "model_id": f"{info.model_id:04x}",
        "frames_seen": seed.get("frames_seen", 0) + ancestors.get("frames_seen", 0),
        "wall_time_s": seed.get("wall_time_s", 0) + ancestors.get("wall_time_s", 0),
        "hardware": seed.get("hardware", ""),
    }
