"""Rate-distortion training: loss = MSE + rate_weight * bits-per-pixel, on random crops.

The network runs under bf16 autocast (AMX on these CPUs); the entropy model and the losses stay in
float32. On a CPU its attention runs as batched matmuls (`layers.cpu_attention_path`): PyTorch's fused
kernel, backward included, made a step 1.1-1.35x slower. The network and the entropy model have
separate optimizers (as in CompressAI), checked to hold disjoint parameters. The learning rate warms
up, stays flat, and decays linearly over the last `decay_fraction` of the steps (warmup-stable-decay),
so a run can be extended by resuming with more steps and still ends annealed.

Run state (weights, both optimizers, step, training time, and the hardware of each stretch of steps)
is one safetensors file, written atomically every few minutes; nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from compressor.data import CropSampler, build_pool, cover_frame, find_images, first_frame, split_files
from compressor.errors import TrainingError
from compressor.layers import TransformerBlock, cpu_attention_path
from compressor.model import CompressionModel, ModelConfig


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: list[str] = field(default_factory=lambda: ["../shared/data/train"])
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
    freeze_decoder: bool = False  # with init_from: train the encoder (and entropy model) against a fixed decoder
    freeze_encoder: bool = False  # with init_from: train the decoder (and entropy model) on a fixed encoder's codes
    # With freeze_decoder: fit the encoder by cross-entropy to the codes that this many refinement steps
    # (compressor.refine) find from the seed encoder's latents, not through the quantizer's surrogate.
    distill_refine: int = 0
    distill_reuse: int = 4  # each refined batch joins a buffer; one new batch every this many steps
    distill_buffer: int = 4096  # frames of (crop, refined code) pairs the steps draw from
    distill_temperature: float = 2.0  # logits = y / t: the encoder's latent read as a bit's confidence
    # The teacher's search starts from its latent times this (refine_symbols' start_scale); 0: the seed
    # checkpoint card's refine_start_scale, so the teacher searches as `--refine` does for that model.
    distill_start_scale: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = all cores
    bf16: bool = True
    log_every: int = 50
    val_every: int = 500
    checkpoint_minutes: float = 4.0
    cache_dir: str = "~/.cache/compressor"
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


@contextmanager
def _watch_for_stops():
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


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Warmup-stable-decay: linear warmup, flat, then linear decay to 0 over the last `decay_fraction`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = cfg.steps * (1 - cfg.decay_fraction)
    if step < decay_start:
        return cfg.lr
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1.0, cfg.steps - decay_start))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of float images in [0, 1] after rounding both to 8 bits: (B,)."""
    a8 = (a.clamp(0, 1) * 255).round()
    b8 = (b.clamp(0, 1) * 255).round()
    mse = ((a8 - b8) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


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


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.run_dir.glob("state.safetensors.tmp"):  # a write cut short by a crash
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
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.seed_start_scale = 1.0  # the seed checkpoint's refine_start_scale, read by warm_start
        if cfg.init_from:
            self.warm_start(cfg.init_from)
        if cfg.distill_refine:
            cfg.distill_start_scale = cfg.distill_start_scale or self.seed_start_scale  # recorded as resolved
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
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.95),
        )
        self.entropy_opt = torch.optim.Adam(entropy_params, lr=cfg.entropy_lr)
        self.net = self.model  # what the training step calls: the model, or its DDP wrapper
        if self.world > 1:
            import torch.distributed as dist
            from torch.nn.parallel import DistributedDataParallel

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.net = DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if cfg.distill_refine and self.world > 1:
            raise ValueError("distill_refine trains in one process (it does not synchronise the refined buffer)")
        self.distilled: dict[str, torch.Tensor] = {}  # ring buffer: crops and their refined codes, uint8
        self.distilled_frames = 0  # frames written into it since this process began (it is not saved)
        self.refined_frames = 0  # frames refined over all sessions of the run (saved with the state)
        # The teacher searches from the seed's encoder, kept frozen: searching from the student's own
        # latents fed back on itself (its growing margins leave the search fewer bits to flip) and
        # lost 0.2 dB on kodak-frames in 220 steps, where this fixed teacher gains (README, Training).
        self.teacher = None
        if cfg.distill_refine:
            import copy

            self.teacher = copy.deepcopy(self.model.encoder).eval().requires_grad_(False)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        # Where each stretch of steps ran: a run may move between machines (a lent GPU, then CPUs),
        # and the model card must say so rather than name only the last one.
        self.segments: list[dict] = []

    # --- data -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        cfg = self.cfg
        files = find_images(cfg.data)
        train_files, val_files = split_files(files)
        # The cache is keyed by the file list (paths, sizes, times) and the crop recipe, so other data
        # or settings never reuse a stale pool.
        listing = "\n".join(f"{f}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in train_files)
        digest = hashlib.sha1(listing.encode()).hexdigest()[:12]
        key = f"{digest}-{cfg.crop[0]}x{cfg.crop[1]}-{cfg.pool_size}-{cfg.seed}"
        cache = Path(os.path.expanduser(cfg.cache_dir)) / f"pool-{key}.npy"
        if self.world > 1 and not self.is_main:
            self._barrier()  # rank 0 cuts the pool and caches it
        if cache.exists():
            pool = np.load(cache)
        else:
            t = time.time()
            pool = build_pool(train_files, cfg.crop, cfg.pool_size, cfg.seed)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, pool)
            print(f"cut {len(pool)} crops from {len(train_files)} files in {time.time() - t:.0f} s", flush=True)
        if self.world > 1 and self.is_main:
            self._barrier()
        self.sampler = CropSampler(pool, cfg.batch_size, cfg.seed + self.step, self.device)
        if cfg.val_data:
            val_files = find_images(cfg.val_data)
        frames = []
        for f in val_files:
            try:
                frames.append(np.asarray(cover_frame(first_frame(f), cfg.crop)))
            except Exception as e:
                print(f"warning: skipped unreadable validation file {f}: {e}", flush=True)
        if not frames:
            raise ValueError("no readable validation images")
        self.val = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255  # (V, 3, H, W)
        self.data_facts = {"images": len(train_files), "validation_images": len(val_files), "pool": len(pool)}

    def _barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    # --- state ------------------------------------------------------------------------------
    def save_state(self) -> None:
        from safetensors.torch import save_file

        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        t1, m1 = _flatten_optimizer("opt", self.opt)
        t2, m2 = _flatten_optimizer("entropy_opt", self.entropy_opt)
        tensors.update(t1)
        tensors.update(t2)
        meta = {
            "step": str(self.step),
            "elapsed": str(self.elapsed),
            "segments": json.dumps(self.segments),
            "config": json.dumps(self.cfg.to_dict()),
            "opt": json.dumps(m1),
            "entropy_opt": json.dumps(m2),
            "warm_started_from": json.dumps(getattr(self, "warm_started_from", None)),
            "refined_frames": str(self.refined_frames),
        }
        path = self.run_dir / "state.safetensors"
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)

    def load_state(self, path: Path, *, weights_only: bool = False) -> None:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        self.step = int(meta["step"])
        self.elapsed = float(meta["elapsed"])
        # States saved before the count: one batch per `distill_reuse` steps, as the buffer refills.
        legacy = -(-self.step // self.cfg.distill_reuse) * self.cfg.batch_size if self.cfg.distill_refine else 0
        self.refined_frames = int(meta.get("refined_frames", legacy))
        lineage = json.loads(meta.get("warm_started_from", "null"))  # absent or null: not warm-started
        if lineage:
            self.warm_started_from = lineage
        self.segments = json.loads(meta["segments"]) if "segments" in meta else [  # states saved before segments
            {"hardware": self.hardware(), "first_step": 0, "last_step": self.step, "seconds": round(self.elapsed, 1)}]
        if weights_only:  # weights and progress, no optimizer state (export needs no optimizers)
            return
        self.opt.load_state_dict(_unflatten_optimizer("opt", tensors, json.loads(meta["opt"])))
        self.entropy_opt.load_state_dict(_unflatten_optimizer("entropy_opt", tensors, json.loads(meta["entropy_opt"])))

    def warm_start(self, path: str) -> None:
        """Seed encoder and decoder from a release checkpoint; the entropy model relearns in a few steps."""
        from compressor.checkpoint import load_model

        released, info = load_model(path)
        weights = {k: v for k, v in released.state_dict().items() if not k.startswith("bottleneck.")}
        try:
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
        except RuntimeError as e:  # a tensor of another shape: a wider or narrower model
            raise ValueError(f"{path} does not fit this model config ({str(e).strip().splitlines()[-1].strip()})") from None
        grown = _grown_blocks(self.model, [k for k in missing if not k.startswith("bottleneck.")])
        if unexpected or grown is None:
            raise ValueError(f"{path} does not fit this model config")
        for block in grown:  # deeper than the seed: the new blocks start as the identity
            for out in (block.attn.proj, block.mlp.fc2):
                torch.nn.init.zeros_(out.weight)
                torch.nn.init.zeros_(out.bias)
        self.seed_start_scale = info.refine_start_scale
        # The card must count the frames behind the seed weights too, or a warm-started model would
        # look as if it had learned from this run alone.
        seed = info.card.get("training", {})
        ancestors = seed.get("warm_started_from", {})  # already the sum over the seed's own seeds
        self.warm_started_from = {
            "name": info.name, "model_id": f"{info.model_id:04x}",
            "frames_seen": seed.get("frames_seen", 0) + ancestors.get("frames_seen", 0),
            "wall_time_s": seed.get("wall_time_s", 0) + ancestors.get("wall_time_s", 0),
            "hardware": seed.get("hardware", ""),
        }

    # --- loop -------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict:
        """One optimizer step; returns the step's loss terms as detached tensors.

        Nothing here waits for the device: reading a value (`.item()`) every step would stall a GPU's
        queue behind the CPU, so values are read, and checked for finiteness, once per log window.
        """
        cfg = self.cfg
        for opt in (self.opt, self.entropy_opt):
            for g in opt.param_groups:
                g["lr"] = learning_rate(cfg, self.step) * (cfg.entropy_lr / cfg.lr if opt is self.entropy_opt else 1)
        with cpu_attention_path():  # bf16 on a CPU: attention as batched matmuls, 1.1-1.35x a step
            if cfg.distill_refine:
                loss, mse, bpp = self._distill_loss(x)
            else:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                    out = self.net(x, cfg.surrogate_temperature)
                mse = torch.mean((out["reconstruction"].float() - x) ** 2)
                bpp = out["bits"].mean() / (x.shape[-2] * x.shape[-1])
                loss = mse + cfg.rate_weight * bpp
        self.opt.zero_grad(set_to_none=True)
        self.entropy_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
        self.opt.step()
        self.entropy_opt.step()
        self.step += 1
        return {"loss": loss.detach(), "mse": mse.detach(), "bpp": bpp.detach()}

    def _distill_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy of the encoder's bits against refined codes (the decoder is frozen).

        Refinement finds, per image, a code this decoder reconstructs better than the encoder's own
        (vit-long2: 14% of the bits differ, +0.8 dB on training crops); the straight-through gradient
        does not lead the encoder there, a per-bit target does. Every `distill_reuse` steps the batch
        `x` is refined, starting from the seed encoder's latent (`self.teacher`), and joins a buffer
        of the last `distill_buffer` frames; each step fits the encoder to a batch drawn from it. The
        entropy model learns the new codes' statistics from the same step (no rate gradient reaches
        the encoder: the rate is fixed at one bit per symbol before coding). Returns loss, the
        student code's MSE (for the log) and its bits per pixel.
        """
        from compressor.bottleneck import hard_sign
        from compressor.refine import refine_symbols

        cfg, model = self.cfg, self.model
        if self.step % cfg.distill_reuse == 0 or not self.distilled:
            with torch.no_grad():
                start = self.teacher(model.pad(x))  # (B, C, gh, gw), float32 as refine_symbols runs it
            refined = refine_symbols(model, x, steps=cfg.distill_refine, bf16=cfg.bf16, start=start,
                                     start_scale=cfg.distill_start_scale)  # uint8
            crops = (x * 255).round().to(torch.uint8)  # (B, 3, H, W)
            if not self.distilled:
                size = max(cfg.distill_buffer, x.shape[0])
                self.distilled = {"crops": crops.new_empty((size, *crops.shape[1:])),
                                  "codes": refined.new_empty((size, *refined.shape[1:]))}
            size = len(self.distilled["crops"])
            slots = (self.distilled_frames + torch.arange(x.shape[0], device=x.device)) % size
            self.distilled["crops"][slots] = crops
            self.distilled["codes"][slots] = refined
            self.distilled_frames += x.shape[0]
            self.refined_frames += x.shape[0]
        filled = min(self.distilled_frames, len(self.distilled["crops"]))
        pick = torch.from_numpy(self.sampler.rng.integers(0, filled, x.shape[0])).to(x.device)
        xb, target = self.distilled["crops"][pick].float() / 255, self.distilled["codes"][pick].float()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            y = model.encoder(model.pad(xb)).float()  # (B, C, gh, gw)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(y / cfg.distill_temperature, target)
        code = hard_sign(y.detach())  # (B, C, gh, gw) in {-1, +1}
        bpp = model.bottleneck.bits((code + 1) / 2).mean() / (xb.shape[-2] * xb.shape[-1])
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            out = model.decoder(code)[..., : xb.shape[-2], : xb.shape[-1]]
        mse = torch.mean((out.float() - xb) ** 2)
        return bce + cfg.rate_weight * bpp, mse, bpp

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
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16), cpu_attention_path():
                out = self.model(x)
            psnrs.append(psnr(out["reconstruction"].float(), x))
            bits.append(out["bits"])
        self.model.train()
        return {"val_psnr": torch.cat(psnrs).mean().item(), "val_bytes": torch.cat(bits).mean().item() / 8}

    def run(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        self.model.train()
        log = open(self.run_dir / "metrics.jsonl", "a") if self.is_main else None
        bar = tqdm(total=cfg.steps, initial=self.step, disable=None if self.is_main else True, dynamic_ncols=True,
                   unit="step")
        last_save = time.time()
        self.segments.append({"hardware": self.hardware(), "first_step": self.step, "last_step": self.step, "seconds": 0.0})
        segment_start = self.elapsed
        window: list[dict] = []
        self.step_seconds: list[float] = []  # wall time of each step of this call, for fit_steps_to_time
        t_last = time.time()
        last_step_seconds = 0.0
        with _watch_for_stops() as stopped:
            while self.step < cfg.steps:
                # Every process draws the same global batch and trains on its slice, so N processes with
                # batch B match one process with batch B.
                t_data = time.perf_counter()
                x = self.sampler.next_batch(self.rank, self.world)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                t_data = time.perf_counter() - t_data
                step = self.step
                window.append({**self.train_step(x), "step": step, "data_seconds": t_data})
                now = time.time()
                step_seconds = now - t_last
                if stopped:  # stopped (Ctrl-Z, SIGSTOP) during this step: the pause is not training time
                    step_seconds = min(step_seconds, last_step_seconds)
                    stopped.clear()
                window[-1]["seconds"] = step_seconds
                self.step_seconds.append(step_seconds)
                self.elapsed += step_seconds
                last_step_seconds = step_seconds
                t_last = now
                self.segments[-1].update(last_step=self.step, seconds=round(self.elapsed - segment_start, 1))
                bar.update(1)
                # The last step always logs and validates, so a run's end (and any choice between runs)
                # never rests on a validation up to `val_every` steps old.
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:  # every process reaches this together: the check is collective
                    self.check_finite(window)
                    terms = torch.stack([torch.stack([w["loss"], w["mse"], w["bpp"]]) for w in window]).float().mean(0)
                    loss, mse, bpp = terms.tolist()  # the one wait for the device in a log window
                    psnr_value = float(10 * math.log10(1 / max(mse, 1e-10)))
                    bar.set_postfix(loss=f"{loss:.5f}", bpp=f"{bpp:.4f}", psnr=f"{psnr_value:.2f}")
                    seconds = sum(w["seconds"] for w in window)  # wall clock: on a GPU, steps run ahead of it
                    rec = {"step": self.step, "lr": learning_rate(cfg, self.step), "elapsed": round(self.elapsed, 1),
                           "frames_per_s": round(len(window) * cfg.batch_size / max(1e-9, seconds), 1),
                           "loader_share": round(sum(w["data_seconds"] for w in window) / max(1e-9, seconds), 4),
                           "loss": loss, "mse": mse, "bpp": bpp, "psnr": psnr_value}
                    if self.is_main and (self.step % cfg.val_every == 0 or last):
                        rec.update(self.validate())
                        self.plot()
                        t_last = time.time()
                    if self.is_main:
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                        if bar.disable:
                            print(json.dumps(rec), flush=True)
                    window = []
                    # Saved only here, right after the check, so a saved state never holds a non-finite step.
                    if self.is_main and time.time() - last_save > cfg.checkpoint_minutes * 60:
                        self.save_state()
                        last_save = time.time()
                        t_last = last_save
        bar.close()  # the last step logged, so its window has been checked: the state below is finite
        if self.is_main:
            self.save_state()
            log.close()
            self.plot()

    def plot(self) -> None:
        """curves.png (loss, PSNR, bpp against steps) and reconstructions.png of validation frames."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = self.run_dir / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if rows:
            fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
            steps = [r["step"] for r in rows]
            axes[0].plot(steps, [r["psnr"] for r in rows], label="train")
            val = [r for r in rows if "val_psnr" in r]
            axes[0].plot([r["step"] for r in val], [r["val_psnr"] for r in val], "o-", label="validation")
            axes[0].set_ylabel("PSNR (dB)")
            axes[0].legend()
            axes[1].plot(steps, [r["bpp"] for r in rows])
            axes[1].set_ylabel("bits per pixel (estimated)")
            axes[2].semilogy(steps, [r["loss"] for r in rows])
            axes[2].set_ylabel("loss")
            for ax in axes:
                ax.set_xlabel("step")
                ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(self.run_dir / "curves.png", dpi=100)
            plt.close(fig)
        with torch.no_grad():
            self.model.eval()
            x = self.val[:4].to(self.device)
            rec = self.model(x)["reconstruction"].float().clamp(0, 1).cpu()
            self.model.train()
        fig, axes = plt.subplots(len(x), 2, figsize=(7, 1.9 * len(x)), squeeze=False)
        for i in range(len(x)):
            for j, img in enumerate((x[i].cpu(), rec[i])):
                axes[i][j].imshow(img.permute(1, 2, 0).numpy())
                axes[i][j].axis("off")
            axes[i][1].set_title(f"step {self.step}: {psnr(rec[i:i + 1], x[i:i + 1].cpu()).item():.2f} dB", fontsize=8)
        fig.tight_layout()
        fig.savefig(self.run_dir / "reconstructions.png", dpi=100)
        plt.close(fig)

    def hardware(self) -> str:
        """This process's machine, as the model card names it."""
        precision = "bf16 autocast" if self.cfg.bf16 else "fp32"
        device = getattr(self, "device", None)  # absent when export builds a bare Trainer
        if device is not None and device.type == "cuda":
            world = getattr(self, "world", 1)
            return f"{f'{world} x ' if world > 1 else ''}{torch.cuda.get_device_name(device)}, {precision}"
        return f"{platform.processor() or platform.machine()}, {self.cfg.threads} CPU thread(s), {precision}"

    def facts(self) -> dict:
        """Training facts for the model card."""
        return {
            "data": self.cfg.data,
            **getattr(self, "data_facts", {}),
            "crop": list(self.cfg.crop),
            "steps": self.step,
            "batch_size": self.cfg.batch_size,
            "frames_seen": self.step * self.cfg.batch_size,
            "wall_time_s": round(self.elapsed),
            # With distillation, how many of those frames were refined into targets (one batch per
            # `distill_reuse` steps, and one more after each resume refills the unsaved buffer).
            **({"refined_frames": self.refined_frames} if self.cfg.distill_refine else {}),
            "hardware": hardware_summary(self.segments) if self.segments else self.hardware(),
            "segments": merge_segments(self.segments),
            # Where and how often a run saves or logs is not part of what it learns.
            "recipe": {k: v for k, v in self.cfg.to_dict().items() if k not in WHERE_NOT_WHAT},
            **({"warm_started_from": self.warm_started_from} if getattr(self, "warm_started_from", None) else {}),
        }


def fit_steps_to_time(trainer: Trainer, seconds: float, started: float) -> None:
    """Set the run's step count to what ends `seconds` after `started`, from a speed probe.

    The probe trains the first steps of the warmup, where the schedule does not depend on the step
    count, so the run is the one a fixed `--steps` of the result would give. For a lent or spot machine
    whose time is known but whose speed is not. Processes agree on the smallest count.
    """
    cfg = trainer.cfg
    probe = max(2, min(300, cfg.warmup_steps // 2))
    if trainer.step + probe > cfg.warmup_steps:
        raise ValueError("a time budget needs a fresh run: its speed probe must fall inside the warmup")
    cfg.steps = trainer.step + probe
    trainer.run()
    # Steps only (the save and plot that end run() are left out), and not the first third: those pay
    # one-off costs (a GPU's kernel selection, allocator growth) and made a lent H200 look 20% slower
    # than it was, so that run ended 95 s early. The margin below covers later validations and saves.
    timed = trainer.step_seconds[probe // 3 :]
    rate = len(timed) / max(1e-9, sum(timed))
    steps = torch.tensor(trainer.step + int(rate * (seconds - (time.time() - started)) * 0.95))
    if trainer.world > 1:
        import torch.distributed as dist

        steps = steps.to(trainer.device)
        dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    cfg.steps = max(trainer.step + 1, int(steps))
    if trainer.is_main:
        print(f"speed probe: {rate:.2f} steps/s -> {cfg.steps} steps", flush=True)


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False, seconds: float | None = None) -> Trainer:
    """Train (or `resume`) the run in `run_dir`; with `seconds`, for that long instead of `cfg.steps`."""
    started = time.time()
    trainer = Trainer(cfg, run_dir)
    state = Path(run_dir) / "state.safetensors"
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


def export_release(run_dir: str | Path, output: str | Path, *, name: str) -> int:
    """Freeze a run's entropy model into its table and write a release checkpoint; returns the model id.

    Weights are stored in float16 (half the size of float32, well under the 30 MB budget); the
    reported results must therefore be measured on the exported file, which `compressor eval
    --record` does.
    """
    from safetensors import SafetensorError, safe_open

    from compressor.checkpoint import save_release
    from compressor.layers import count_parameters

    state = Path(run_dir) / "state.safetensors"
    if not state.is_file():
        raise FileNotFoundError(f"no training state in {run_dir} (expected {state})")
    try:
        with safe_open(str(state), "pt") as f:
            meta = f.metadata() or {}
        cfg = TrainConfig.from_dict(json.loads(meta["config"]))
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:  # a file from elsewhere
        raise TrainingError(f"{state} is not a compressor training state ({type(e).__name__}: {e})") from None
    # No optimizers, data or process group are needed to export, and Trainer.__init__ would also tidy
    # the run folder under a run that may still be writing to it.
    trainer = Trainer.__new__(Trainer)
    trainer.cfg = cfg
    trainer.model = CompressionModel.from_config(cfg.model, trainable_entropy_model=True)
    trainer.load_state(state, weights_only=True)
    trainer.model.bottleneck.freeze()
    card = {
        "parameters": count_parameters(trainer.model.encoder) + count_parameters(trainer.model.decoder),
        "encoder_parameters": count_parameters(trainer.model.encoder),
        "decoder_parameters": count_parameters(trainer.model.decoder),
        "training": trainer.facts(),
        "licence": "weights trained on ImageNet samples, Cityscapes, CamVid, nuScenes and KITTI frames: "
                   "non-commercial research use only",
    }
    if cfg.freeze_encoder and Path(cfg.init_from).is_file():
        from compressor.checkpoint import read_card

        # The encoder is the seed's bit for bit, so the precision it was measured to encode at holds.
        seed = read_card(cfg.init_from).card
        if "encode_precision" in seed:
            card["encode_precision"] = seed["encode_precision"]
    return save_release(output, trainer.model, cfg.model, name=name, card=card, weight_dtype=torch.float16)


def _convert(value: str, kind, key: str):
    """Parse a --set value as the field's type; a mismatch is a clear error, never a silent string."""
    import typing

    origin = typing.get_origin(kind) or kind
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


def validate(cfg: TrainConfig) -> None:
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
    if cfg.freeze_encoder and cfg.freeze_decoder:
        raise ValueError("freeze_encoder and freeze_decoder together leave no network to train")
    if cfg.distill_refine and not cfg.freeze_decoder:
        raise ValueError("distill_refine needs freeze_decoder: the refined codes are targets for a fixed decoder")
    if (cfg.distill_refine < 0 or cfg.distill_reuse <= 0 or cfg.distill_buffer <= 0 or cfg.distill_temperature <= 0
            or cfg.distill_start_scale < 0):
        raise ValueError("distill_refine and distill_start_scale must be 0 or more; "
                         "distill_reuse, distill_buffer, distill_temperature positive")
    if cfg.surrogate_temperature <= 0:
        raise ValueError(f"surrogate_temperature must be positive, got {cfg.surrogate_temperature}")
    if len(cfg.crop) != 2 or min(cfg.crop) < 16:
        raise ValueError(f"crop must be two sides of at least 16 pixels, got {cfg.crop}")
