"""Rate-distortion training: loss = MSE + rate_weight * bits-per-pixel, on random crops.

The network runs under bf16 autocast (AMX on these CPUs); the entropy model and the losses stay in
float32. On a CPU its attention runs as batched matmuls (`layers.cpu_attention_path`): PyTorch's fused
kernel, backward included, made a step 1.1-1.35x slower. The network and the entropy model have
separate optimizers (as in CompressAI), checked to hold disjoint parameters. The learning rate warms
up, stays flat, and decays linearly over the last `decay_fraction` of the steps (warmup-stable-decay),
so a run can be extended by resuming with more steps and still ends annealed.

Run state (weights, both optimizers, step, training time, and the hardware of each stretch of steps)
is one safetensors file, written atomically every few minutes (`state.py`); nothing is pickled.
Distillation's teacher and buffer live in `distill.py`, the config and schedule in `config.py`, the
pictures in `plots.py`, and `train` (a run from start to end, resumes and time budgets) in `run.py`.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from compressor.device import fast_bf16
from compressor.errors import TrainingError
from compressor.layers import cpu_attention_path
from compressor.metrics import psnr_batch
from compressor.model import CompressionModel
from compressor.training.config import TrainConfig, learning_rate
from compressor.training.data import CropSampler, cached_pool, find_images, split_files, validation_frames
from compressor.training.distill import Distiller
from compressor.training.plots import plot_curves, plot_reconstructions
from compressor.training.state import (STATE_FILE, Progress, hardware, read_state, save_state, training_facts,
                                       warm_start, watch_for_stops)


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob(f"*{STATE_FILE}*.tmp"):  # a write cut short by a crash
            stale.unlink()
        torch.manual_seed(cfg.seed)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by {self.world} processes")
        cfg.threads = cfg.threads or max(1, (os.cpu_count() or 1) // self.world)  # recorded as resolved
        torch.set_num_threads(cfg.threads)
        self.model = CompressionModel.from_config(cfg.model, trainable_entropy_model=True)
        # Convolutions run 2-3x faster channels-last under bf16 on these CPUs; attention models ignore it.
        self.channels_last = any(isinstance(m, torch.nn.Conv2d) for m in self.model.modules())
        self.device = torch.device(cfg.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.model.to(self.device)
        if cfg.bf16 is None:  # recorded as resolved
            cfg.bf16 = fast_bf16(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Over all resumes of this run; `segments` says where each stretch of steps ran, since a run
        # may move between machines and the model card must say so rather than name only the last one.
        self.progress = Progress()
        seed_start_scale = 1.0  # the seed checkpoint's refine_start_scale
        if cfg.init_from:
            seed_start_scale, self.progress.warm_started_from = warm_start(self.model, cfg.init_from)
        if cfg.distill_refine:
            cfg.distill_start_scale = cfg.distill_start_scale or seed_start_scale  # recorded as resolved
        self.opt, self.entropy_opt = self._optimizers()
        self.net = self.model  # what the training step calls: the model, or its DDP wrapper
        if self.world > 1:
            import torch.distributed as dist
            from torch.nn.parallel import DistributedDataParallel

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if cfg.distill_refine and self.world > 1:
            raise ValueError("distill_refine trains in one process (it does not synchronise the refined buffer)")
        self.distiller = Distiller(cfg, self.model) if cfg.distill_refine else None
        if cfg.snap and self.world > 1:  # its decoder pass bypasses the DDP wrapper, so nothing would sync
            raise ValueError("snap trains in one process")
        self.snap_net = _seed_context_net(cfg.init_from) if cfg.snap else None
        self.data_facts: dict = {}  # what prepare_data read, for the model card

    def _optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """AdamW for the network (no decay on gains and biases), Adam for the entropy model; frozen halves in neither."""
        cfg = self.cfg
        entropy_params = list(self.model.bottleneck.entropy_model.parameters())
        entropy_ids = {id(p) for p in entropy_params}
        frozen = list(self.model.decoder.parameters()) if cfg.freeze_decoder else []
        frozen += list(self.model.encoder.parameters()) if cfg.freeze_encoder else []
        for p in frozen:  # refit one half to the other, which stays bit for bit as it was
            p.requires_grad_(False)
        frozen_ids = {id(p) for p in frozen}
        net_params = [p for p in self.model.parameters() if id(p) not in entropy_ids | frozen_ids]
        assert len(net_params) + len(entropy_params) + len(frozen) == len(list(self.model.parameters()))
        decay = [p for p in net_params if p.ndim >= 2]
        no_decay = [p for p in net_params if p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.95),
        )
        return opt, torch.optim.Adam(entropy_params, lr=cfg.entropy_lr)

    # --- data -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        cfg = self.cfg
        files = find_images(cfg.data)
        if cfg.val_data:  # a validation set of its own: every training file trains
            train_files, val_files = files, find_images(cfg.val_data)
        else:
            train_files, val_files = split_files(files)
        if self.world > 1 and not self.is_main:
            self._barrier()  # rank 0 cuts the pool and caches it
        folder = Path(os.path.expanduser(cfg.cache_dir)) if cfg.cache_dir else self.run_dir
        pool = cached_pool(train_files, cfg.crop, cfg.pool_size, cfg.seed, folder, verbose=self.is_main)
        if self.world > 1 and self.is_main:
            self._barrier()
        self.sampler = CropSampler(pool, cfg.batch_size, cfg.seed + self.progress.step, self.device)
        self.val = validation_frames(val_files, cfg.crop)  # (V, 3, H, W)
        self.data_facts = {"images": len(train_files), "validation_images": len(val_files), "pool": len(pool)}

    def _barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    # --- state ------------------------------------------------------------------------------
    def save_state(self) -> None:
        save_state(self.run_dir / STATE_FILE, self.model, {"opt": self.opt, "entropy_opt": self.entropy_opt},
                   self.cfg, self.progress)

    def load_state(self, path: Path) -> None:
        saved = read_state(path, self.cfg, self.hardware())
        self.model.load_state_dict(saved.weights)
        self.progress = saved.progress
        self.opt.load_state_dict(saved.optimizers["opt"])
        self.entropy_opt.load_state_dict(saved.optimizers["entropy_opt"])

    # --- loop -------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict:
        """One optimizer step; returns the step's loss terms as detached tensors.

        Nothing here waits for the device: reading a value (`.item()`) every step would stall a GPU's
        queue behind the CPU, so values are read, and checked for finiteness, once per log window.
        """
        cfg = self.cfg
        for opt in (self.opt, self.entropy_opt):
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg, self.progress.step) * (cfg.entropy_lr / cfg.lr if opt is self.entropy_opt else 1)
        with cpu_attention_path():  # bf16 on a CPU: attention as batched matmuls, 1.1-1.35x a step
            if self.distiller is not None:
                loss, mse, bpp, refined = self.distiller.loss(self.model, x, self.progress.step, self.sampler.rng)
                self.progress.refined_frames += refined
            else:
                out = self.forward(x)
                mse = torch.mean((out["reconstruction"].float() - x) ** 2)
                bpp = out["bits"].mean() / (x.shape[-2] * x.shape[-1])
                loss = mse + cfg.rate_weight * bpp
        self.opt.zero_grad(set_to_none=True)
        self.entropy_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
        self.opt.step()
        self.entropy_opt.step()
        self.progress.step += 1
        return {"loss": loss.detach(), "mse": mse.detach(), "bpp": bpp.detach()}

    def forward(self, x: torch.Tensor, net=None) -> dict:
        """`net` (the training step's model or DDP wrapper; validation passes the bare model) forward under
        autocast; with `snap`, the decoder reads the frozen encoder's codes snapped by the seed's context
        net, as the release will encode them (`context_net.snap`)."""
        cfg = self.cfg
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            return (net or self.net)(x, cfg.surrogate_temperature, self._snapped if self.snap_net is not None else None)

    def _snapped(self, y: torch.Tensor) -> torch.Tensor:
        """The frozen encoder's latent (B, C, gh, gw) -> its code snapped by the seed's net, in {-1, +1}."""
        from compressor import context_net

        symbols = context_net.snap(self.snap_net, y.detach().cpu().numpy(), self.cfg.snap)
        return torch.from_numpy(symbols).to(y.device).float() * 2 - 1

    def check_finite(self, window: list[dict]) -> None:
        """Stop at a non-finite loss in the steps since the last check, before any state is saved from them."""
        if not window:
            return
        bad = ~torch.isfinite(torch.stack([w["loss"] for w in window]))
        finite = (~bad.any()).float()
        if self.world > 1:  # every process stops together, or none does
            import torch.distributed as dist

            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            first = window[int(bad.nonzero()[0]) if bad.any() else 0]["step"]  # else: another process's loss
            raise TrainingError(f"non-finite loss at step {first}; stopped, the last good state is kept")

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        psnrs, bits = [], []
        for i in range(0, len(self.val), 16):
            x = self.val[i : i + 16].to(self.device)
            with cpu_attention_path():
                out = self.forward(x, self.model)
            psnrs.append(psnr_batch(out["reconstruction"].float(), x))
            bits.append(out["bits"])
        self.model.train()
        return {"val_psnr": torch.cat(psnrs).mean().item(), "val_bytes": torch.cat(bits).mean().item() / 8}

    def run(self) -> None:
        from tqdm import tqdm

        cfg, progress = self.cfg, self.progress
        self.model.train()
        log = self._open_log() if self.is_main else None
        bar = tqdm(total=cfg.steps, initial=progress.step, disable=None if self.is_main else True, dynamic_ncols=True,
                   unit="step")
        last_save = time.time()
        progress.segments.append({"hardware": self.hardware(), "first_step": progress.step, "last_step": progress.step,
                                  "seconds": 0.0})
        segment_start = progress.elapsed
        window: list[dict] = []
        self.step_seconds: list[float] = []  # wall time of each step of this call, for fit_steps_to_time
        t_last = time.time()
        last_step_seconds = 0.0
        try:
            with watch_for_stops() as stopped:
                while progress.step < cfg.steps:
                    # Every process draws the same global batch and trains on its slice, so N processes with
                    # batch B match one process with batch B.
                    t_data = time.perf_counter()
                    x = self.sampler.next_batch(self.rank, self.world)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    t_data = time.perf_counter() - t_data
                    step = progress.step
                    window.append({**self.train_step(x), "step": step, "data_seconds": t_data})
                    now = time.time()
                    step_seconds = now - t_last
                    if stopped:  # stopped (Ctrl-Z, SIGSTOP) during this step: the pause is not training time
                        step_seconds = min(step_seconds, last_step_seconds)
                        stopped.clear()
                    window[-1]["seconds"] = step_seconds
                    self.step_seconds.append(step_seconds)
                    progress.elapsed += step_seconds
                    last_step_seconds = step_seconds
                    t_last = now
                    progress.segments[-1].update(last_step=progress.step, seconds=round(progress.elapsed - segment_start, 1))
                    bar.update(1)
                    # The last step always logs and validates, so a run's end (and any choice between runs)
                    # never rests on a validation up to `val_every` steps old.
                    last = progress.step == cfg.steps
                    if progress.step % cfg.log_every == 0 or last:  # every process reaches this together: the check is collective
                        if self._log_window(window, last, bar, log):
                            t_last = time.time()  # validation time is not a step's
                        window = []
                        # Saved only here, right after the check, so a saved state never holds a non-finite step.
                        if self.is_main and time.time() - last_save > cfg.checkpoint_minutes * 60:
                            self.save_state()
                            last_save = time.time()
                            t_last = last_save
        except KeyboardInterrupt:
            self._save_on_interrupt(window)
            raise
        finally:
            bar.close()
            if log is not None:
                log.close()
        if self.is_main:  # the last step logged, so its window has been checked: the state below is finite
            self.save_state()
            self.plot()

    def _save_on_interrupt(self, window: list[dict]) -> None:
        """Ctrl-C: keep the steps trained so far if they are finite (one process; with several, the state of
        the last check stands), so `--resume` goes on from here rather than from the last timed save."""
        if self.world > 1 or not self.is_main:
            return
        try:
            self.check_finite(window)  # one process: the check is not collective here
        except TrainingError:
            return
        self.save_state()
        print(f"\ninterrupted at step {self.progress.step}: state saved; --resume {self.run_dir} goes on from here",
              flush=True)

    def _open_log(self):
        """metrics.jsonl for appending, cut back to the steps the state holds: a run resumed after an
        interrupt, or a new run in an old folder, would otherwise log some steps twice."""
        path = self.run_dir / "metrics.jsonl"

        def held(line: str) -> bool:
            try:
                return json.loads(line).get("step", 0) <= self.progress.step
            except ValueError:  # a line cut short when the process was killed
                return False

        if path.exists():
            path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if held(line)))
        return open(path, "a")

    def _log_window(self, window: list[dict], last: bool, bar, log) -> bool:
        """Check the window's steps are finite and log their means; validate on validation steps (True then)."""
        cfg, step = self.cfg, self.progress.step
        self.check_finite(window)
        terms = torch.stack([torch.stack([w["loss"], w["mse"], w["bpp"]]) for w in window]).float().mean(0)
        loss, mse, bpp = terms.tolist()  # the one wait for the device in a log window
        psnr_value = float(10 * math.log10(1 / max(mse, 1e-10)))
        bar.set_postfix(loss=f"{loss:.5f}", bpp=f"{bpp:.4f}", psnr=f"{psnr_value:.2f}")
        seconds = sum(w["seconds"] for w in window)  # wall clock: on a GPU, steps run ahead of it
        rec = {"step": step, "lr": learning_rate(cfg, step), "elapsed": round(self.progress.elapsed, 1),
               "frames_per_s": round(len(window) * cfg.batch_size / max(1e-9, seconds), 1),
               "loader_share": round(sum(w["data_seconds"] for w in window) / max(1e-9, seconds), 4),
               "loss": loss, "mse": mse, "bpp": bpp, "psnr": psnr_value}
        validated = self.is_main and (step % cfg.val_every == 0 or last)
        if validated:
            rec.update(self.validate())
            self.plot()
        if self.is_main:
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if bar.disable:
                print(json.dumps(rec), flush=True)
        return validated

    def plot(self) -> None:
        plot_curves(self.run_dir)
        plot_reconstructions(self.run_dir, self.model, self.val, self.device, self.progress.step)

    def hardware(self) -> str:
        """This process's machine, as the model card names it."""
        return hardware(self.cfg, self.device, self.world)

    def facts(self) -> dict:
        """Training facts for the model card."""
        return training_facts(self.cfg, self.progress, self.hardware(), self.data_facts)


def _seed_context_net(path: str):
    """The context net of a warm start's seed checkpoint, which `snap` snaps its encoder's codes by."""
    from compressor import context_net
    from compressor.checkpoint import read_tensors

    _, info = read_tensors(path)  # check_config has refused a seed without a net
    return context_net.ContextNet(info.context_net)
