"""A training run from start to end: `train` (new or resumed, for a step count or a time budget) and the
speed probe that turns a time budget into a step count."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from compressor.training.config import TrainConfig
from compressor.training.state import STATE_FILE
from compressor.training.trainer import Trainer


def fit_steps_to_time(trainer: Trainer, seconds: float, started: float) -> None:
    """Set the run's step count to what ends `seconds` after `started`, from a speed probe.

    The probe trains the first steps of the warmup, where the schedule does not depend on the step
    count, so the run is the one a fixed `--steps` of the result would give. For a lent or spot machine
    whose time is known but whose speed is not. Processes agree on the smallest count.
    """
    cfg = trainer.cfg
    probe = max(2, min(300, cfg.warmup_steps // 2))
    if trainer.progress.step + probe > cfg.warmup_steps:
        raise ValueError("a time budget needs a fresh run: its speed probe must fall inside the warmup")
    cfg.steps = trainer.progress.step + probe
    trainer.run()
    # Steps only (the save and plot that end run() are left out), and not the first third: those pay
    # one-off costs (a GPU's kernel selection, allocator growth) and made a lent H200 look 20% slower
    # than it was, so that run ended 95 s early. The margin below covers later validations and saves.
    timed = trainer.step_seconds[probe // 3 :]
    rate = len(timed) / max(1e-9, sum(timed))
    steps = torch.tensor(trainer.progress.step + int(rate * (seconds - (time.time() - started)) * 0.95))
    if trainer.world > 1:
        import torch.distributed as dist

        steps = steps.to(trainer.device)
        dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    cfg.steps = max(trainer.progress.step + 1, int(steps))
    if trainer.is_main:
        print(f"speed probe: {rate:.2f} steps/s -> {cfg.steps} steps", flush=True)


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, seconds: float | None = None) -> Trainer:
    """Train (or `resume`) the run in `run_dir`; with `seconds`, for that long instead of `cfg.steps`."""
    started = time.time()
    trainer = Trainer(cfg, run_dir)
    state = Path(run_dir) / STATE_FILE
    if resume:
        trainer.load_state(state)
    config = Path(run_dir) / "config.json"
    if trainer.is_main:
        config.write_text(json.dumps(cfg.to_dict(), indent=2))
    trainer.prepare_data()
    try:
        if seconds is not None:
            fit_steps_to_time(trainer, seconds, started)
            if trainer.is_main:  # the step count it settled on, for --resume
                config.write_text(json.dumps(cfg.to_dict(), indent=2))
        trainer.run()
    finally:
        if trainer.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
    return trainer
