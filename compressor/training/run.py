"""A training run from start to end: `train` (new or resumed, for a step count or a time budget) and the
speed probe that turns a time budget into a step count."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from compressor.errors import TrainingError
from compressor.training.config import TrainConfig
from compressor.training.state import STATE_FILE
from compressor.training.trainer import Trainer


def probe_rate(step_seconds: list[float]) -> float:
    """Steps per second over the speed probe's step times, leaving out the first third.

    Steps only (the save and plot that end run() are left out), and not the first third: those pay
    one-off costs (a GPU's kernel selection, allocator growth) and made an H200 look 20% slower than it
    was, so that run ended 95 s early.
    """
    timed = step_seconds[len(step_seconds) // 3 :]
    return len(timed) / max(1e-9, sum(timed))


def steps_for_budget(step_seconds: list[float], seconds_left: float) -> int:
    """How many more steps fit in `seconds_left`, at the probe's speed less a 5% margin (for later
    validations and saves). A function of its own so tests can fix it: it is the one place where a run
    depends on this machine's speed."""
    return int(probe_rate(step_seconds) * seconds_left * 0.95)


def fit_steps_to_time(trainer: Trainer, seconds: float, started: float) -> None:
    """Set the run's step count to what ends `seconds` after `started`, from a speed probe.

    The probe trains the first steps of the warmup, where the schedule does not depend on the step
    count, so the run is the one a fixed `--steps` of the result would give. For a rented or spot machine
    whose time is known but whose speed is not. Processes agree on the smallest count.
    """
    cfg = trainer.cfg
    cfg.steps = trainer.progress.step + _probe_steps(cfg, trainer.progress.step)
    trainer.run()
    rate = probe_rate(trainer.step_seconds)
    steps = torch.tensor(trainer.progress.step + steps_for_budget(trainer.step_seconds,
                                                                  seconds - (time.time() - started)))
    if trainer.world > 1:
        import torch.distributed as dist

        steps = steps.to(trainer.device)
        dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    cfg.steps = max(trainer.progress.step + 1, int(steps))
    if trainer.is_main:
        print(f"speed probe: {rate:.2f} steps/s -> {cfg.steps} steps", flush=True)


def _probe_steps(cfg: TrainConfig, step: int) -> int:
    """The speed probe's length from `step`: it must end inside the warmup (`fit_steps_to_time`)."""
    probe = max(2, min(300, cfg.warmup_steps // 2))
    if step + probe > cfg.warmup_steps:
        raise ValueError("a time budget needs a fresh run: its speed probe must fall inside the warmup")
    return probe


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, seconds: float | None = None) -> Trainer:
    """Train (or `resume`) the run in `run_dir`; with `seconds`, for that long instead of `cfg.steps`."""
    started = time.time()
    if seconds is not None and not resume:
        _probe_steps(cfg, 0)  # refused before the run folder is made
    trainer = Trainer(cfg, run_dir)
    state = Path(run_dir) / STATE_FILE
    if resume:
        trainer.load_state(state)
        if seconds is None and cfg.steps <= trainer.progress.step:
            raise TrainingError(f"the run in {run_dir} is at step {trainer.progress.step}: give --steps above it")
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
