"""A few training steps of a tiny model on generated images, export, reload, code a frame; resume."""
import json
import time

import torch

import numpy as np
import pytest
from PIL import Image

import compressor
from compressor.model import ModelConfig
from compressor.training.config import TrainConfig, learning_rate
from compressor.training.export import export_release
from compressor.training.run import train
from compressor.training.state import _grown_blocks
from compressor.training.trainer import Trainer
from tests.conftest import TINY_VIT


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(6):
        yy, xx = np.mgrid[0:80, 0:120]
        img = np.stack([(xx * (i + 1)) % 256, (yy * 3) % 256, rng.integers(0, 256, (80, 120))], 2).astype(np.uint8)
        Image.fromarray(img).save(folder / ("sub" if i % 2 else ".") / f"im{i}.{'png' if i % 3 else 'jpg'}")
    return folder


def _config(folder, tmp_path, steps):
    return TrainConfig(model=ModelConfig.from_dict(TINY_VIT), data=[str(folder)], crop=(32, 64), pool_size=40,
                       batch_size=4, steps=steps, warmup_steps=2, log_every=2, val_every=4,
                       cache_dir=str(tmp_path / "cache"), bf16=True)


def _tiny_vit_sets(tmp_path, *settings):
    """`--set` arguments for `compressor train`: a tiny vit on 32x64 crops logging every step, then `settings`."""
    base = [f'model.encoder_args={json.dumps(TINY_VIT["encoder_args"])}',
            f'model.decoder_args={json.dumps(TINY_VIT["decoder_args"])}',
            "crop=[32, 64]", "pool_size=40", "log_every=1", f"cache_dir={tmp_path / 'cache'}", *settings]
    return [arg for setting in base for arg in ("--set", setting)]


def _seed_release(folder, tmp_path):
    """A 2-step tiny model exported as a release checkpoint, to warm-start from."""
    train(_config(folder, tmp_path, 2), tmp_path / "seed")
    export_release(tmp_path / "seed", tmp_path / "seed.safetensors", name="seed")
    return tmp_path / "seed.safetensors"


def test_train_export_load_and_code(image_folder, tmp_path, frame):
    run = tmp_path / "run"
    trainer = train(_config(image_folder, tmp_path, 6), run)
    assert trainer.progress.step == 6
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4, 6] and "val_psnr" in lines[1]
    assert all(np.isfinite(l["loss"]) for l in lines)
    out = tmp_path / "mine.safetensors"
    export_release(run, out, name="mine")
    codec = compressor.load(out)
    assert codec.training["steps"] == 6 and codec.training["frames_seen"] == 24
    assert codec.training["data"] == ["images"] and str(tmp_path) not in json.dumps(codec.card.card)  # no local paths
    image = codec.decode(codec.encode(frame))
    assert image.size == (256, 128)


def test_training_on_a_cpu_runs_attention_on_the_cpu_path(image_folder, tmp_path, monkeypatch):
    """Every bf16 pass, steps and validation alike (1.1-1.35x a step against the fused kernel's backward);
    the float32 sample figure takes the fused kernel whatever the context says."""
    from compressor import layers

    seen = []
    attend = layers.attend
    monkeypatch.setattr(layers, "attend", lambda *a, **kw: seen.append((a[0].dtype, layers._CPU_PATH.get()))
                        or attend(*a, **kw))
    train(_config(image_folder, tmp_path, 4), tmp_path / "run")
    assert {on_path for dtype, on_path in seen if dtype == torch.bfloat16} == {True}
    assert not layers._CPU_PATH.get()  # and the context is left behind


def test_the_last_step_is_always_logged_and_validated(image_folder, tmp_path):
    """A run ending off the log and validation grid (as `--minutes` runs do) still records its final
    weights' validation, so choosing between runs never rests on a stale one."""
    run = tmp_path / "run"
    train(_config(image_folder, tmp_path, 7), run)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4, 6, 7]
    assert ["val_psnr" in l for l in lines] == [False, True, False, True]
    assert np.isfinite(lines[-1]["val_psnr"]) and np.isfinite(lines[-1]["loss"])


def test_resume_continues_at_the_saved_step(image_folder, tmp_path):
    run = tmp_path / "run"
    first = train(_config(image_folder, tmp_path, 4), run)
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    resumed = Trainer(_config(image_folder, tmp_path, 8), run)
    resumed.load_state(run / "state.safetensors")
    assert resumed.progress.step == 4
    for k, v in resumed.model.state_dict().items():
        assert (v == weights[k]).all(), k
    assert resumed.opt.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    second = train(_config(image_folder, tmp_path, 8), run, resume=True)
    assert second.progress.step == 8


def test_a_run_moved_between_machines_says_so_in_its_card(image_folder, tmp_path):
    """Each stretch of steps keeps the hardware it ran on (here: 1 thread, then 2); the recipe does not."""
    run = tmp_path / "run"
    cfg = _config(image_folder, tmp_path, 4)
    cfg.threads = 1
    train(cfg, run)
    cfg = _config(image_folder, tmp_path, 6)
    cfg.threads = 2
    train(cfg, run, resume=True)
    out = tmp_path / "moved.safetensors"
    export_release(run, out, name="moved")
    t = compressor.load(out).training
    assert [(s["first_step"], s["last_step"]) for s in t["segments"]] == [(0, 4), (4, 6)]
    assert "1 CPU thread(s)" in t["segments"][0]["hardware"] and "2 CPU thread(s)" in t["segments"][1]["hardware"]
    assert t["hardware"].startswith("steps 0-4 on ") and "; steps 4-6 on " in t["hardware"]
    assert "threads" not in t["recipe"] and "device" not in t["recipe"]
    assert abs(sum(s["seconds"] for s in t["segments"]) - t["wall_time_s"]) <= 1


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1000, warmup_steps=100, decay_fraction=0.2, lr=1e-3)
    assert learning_rate(cfg, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 500) == 1e-3
    assert learning_rate(cfg, 900) == pytest.approx(5e-4)
    assert learning_rate(cfg, 1000) == 0


def test_missing_or_empty_data_folder(tmp_path):
    from compressor.training.data import find_images

    with pytest.raises(FileNotFoundError, match="not found"):
        find_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        find_images([tmp_path / "empty"])


def test_data_folders_follow_links_once(tmp_path):
    """A data set of links to drives elsewhere is found (pathlib's rglob skips linked folders before Python
    3.13), a folder reached twice is read once, and a link back up the tree ends."""
    from compressor.training.data import find_images

    drive = tmp_path / "disk" / "drive1"
    drive.mkdir(parents=True)
    for name in ("b.png", "a.jpg", "notes.txt"):
        (drive / name).write_bytes(b"x")
    data = tmp_path / "data"
    data.mkdir()
    (data / "drive1").symlink_to(drive)
    (data / "again").symlink_to(drive)
    (drive / "up").symlink_to(tmp_path)  # a loop through the whole tree
    assert find_images([data]) == [data / "again" / "a.jpg", data / "again" / "b.png"]
    assert find_images([tmp_path / "disk"]) == [drive / "a.jpg", drive / "b.png"]


def test_unknown_config_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"stpes": 3})


def test_bf16_left_to_the_trainer_follows_the_hardware_and_is_recorded(image_folder, tmp_path, monkeypatch):
    """None ("auto"): bf16 autocast only where the hardware runs it fast, resolved once and saved as such."""
    from compressor.training import trainer as trainer_module
    from compressor.training.config import apply_overrides

    for fast in (True, False):
        monkeypatch.setattr(trainer_module, "fast_bf16", lambda device=None: fast)
        cfg = _config(image_folder, tmp_path, 2)
        cfg.bf16 = None
        assert Trainer(cfg, tmp_path / f"run-{fast}").cfg.bf16 is fast
    assert TrainConfig().bf16 is None
    assert apply_overrides(TrainConfig(bf16=True), ["bf16=auto"]).bf16 is None
    assert apply_overrides(TrainConfig(), ["bf16=true"]).bf16 is True  # asked for, kept even where it is slow


def test_overrides_are_type_checked():
    from compressor.training.config import apply_overrides

    cfg = apply_overrides(TrainConfig(), ["steps=12", "lr=1e-3", "bf16=false", "crop=[64, 128]",
                                          "model.encoder=convnext", "model.encoder_args.dims=[8, 16, 32]"])
    assert cfg.steps == 12 and cfg.lr == 1e-3 and cfg.bf16 is False and cfg.crop == (64, 128)
    assert cfg.model.encoder == "convnext" and cfg.model.encoder_args == {"dims": [8, 16, 32]}
    one, two = (apply_overrides(TrainConfig(), [f"data={v}"]).data for v in ("/x/train", '["/a", "/b"]'))
    assert one == ["/x/train"] and two == ["/a", "/b"]
    for bad, message in [("stpes=3", "unknown training config key"), ("steps=1.5", "type int"),
                         ("bf16=maybe", "type bool"), ("model.nope=1", "unknown model config key"), ("steps", "key=value")]:
        with pytest.raises(ValueError, match=message):
            apply_overrides(TrainConfig(), [bad])


def test_train_command_end_to_end(image_folder, tmp_path, capsys):
    from compressor.cli import compressor_main

    run = tmp_path / "run"
    tiny = ["--set", 'model.encoder_args={"dims": [8, 16, 32], "depths": [1, 1, 1]}',
            "--set", 'model.decoder_args={"dims": [32, 16, 8], "depths": [1, 1, 1]}',
            "--set", "crop=[32, 64]", "--set", "pool_size=20", "--set", "batch_size=2", "--set", "warmup_steps=1",
            "--set", "log_every=1", "--set", f"cache_dir={tmp_path / 'cache'}"]
    argv = ["train", "--encoder", "convnext", "--data", str(image_folder), "--steps", "2", "--out", str(run), *tiny]
    assert compressor_main(argv) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["encoder"] == saved["model"]["decoder"] == "convnext" and saved["steps"] == 2
    assert compressor_main(["train", "--resume", str(run), "--steps", "3"]) == 0
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    capsys.readouterr()
    assert compressor_main(argv) == 1  # the run exists: refuse to start over it
    assert "already holds a run" in capsys.readouterr().err
    assert compressor_main(["train", "--encoder", "nope", "--data", str(image_folder), "--out", str(tmp_path / "x")]) == 1
    assert "unknown architecture" in capsys.readouterr().err
    assert compressor_main(["export", str(run), str(tmp_path / "c.safetensors")]) == 0
    assert compressor.load(tmp_path / "c.safetensors").architecture == {"encoder": "convnext", "decoder": "convnext"}


def test_warm_start_from_a_release_checkpoint(image_folder, tmp_path):
    release = _seed_release(image_folder, tmp_path)
    cfg = _config(image_folder, tmp_path, 2)
    cfg.init_from = str(release)
    warm = Trainer(cfg, tmp_path / "run2")
    codec = compressor.load(release)
    for k, v in codec.model.encoder.state_dict().items():
        assert (warm.model.encoder.state_dict()[k] == v).all(), k
    cfg.model = ModelConfig.from_dict({**TINY_VIT, "decoder_args": {**TINY_VIT["decoder_args"], "dim": 64}})
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(cfg, tmp_path / "run3")


def test_a_deeper_model_grows_from_its_seed_as_the_same_function(image_folder, tmp_path):
    """Extra transformer blocks start as the identity, so the grown decoder first decodes as its seed;
    a missing weight that is not a whole new block still refuses the seed."""
    release = _seed_release(image_folder, tmp_path)
    cfg = _config(image_folder, tmp_path, 2)
    cfg.init_from = str(release)
    cfg.freeze_encoder = True
    deeper = {**TINY_VIT["decoder_args"], "depth": 3, "refine_depth": 2}
    cfg.model = ModelConfig.from_dict({**TINY_VIT, "decoder_args": deeper})
    grown = Trainer(cfg, tmp_path / "grown").model.eval()
    seed = compressor.load(release).model.eval()
    assert len(grown.decoder.blocks) == 3 and len(grown.decoder.refine) == 2
    latent = torch.randint(0, 2, (2, 14, 2, 4)).float() * 2 - 1
    with torch.no_grad():
        assert torch.equal(grown.decoder(latent), seed.decoder(latent))
    assert grown.decoder.blocks[2].mlp.fc2.weight.abs().sum() == 0
    assert grown.decoder.blocks[2].attn.qkv.weight.abs().sum() > 0  # only the residual outputs start at zero
    train(cfg, tmp_path / "grown")  # it trains, the new blocks leave zero, and the release rebuilds deeper
    export_release(tmp_path / "grown", tmp_path / "grown.safetensors", name="grown")
    codec = compressor.load(tmp_path / "grown.safetensors")
    assert len(codec.model.decoder.blocks) == 3
    assert codec.model.decoder.blocks[2].mlp.fc2.weight.abs().sum() > 0
    cfg.model = ModelConfig.from_dict({**TINY_VIT, "decoder_args": {**deeper, "refine_dim": 32}})
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(cfg, tmp_path / "wider")
    assert _grown_blocks(grown, ["decoder.blocks.2.norm1.weight"]) is None  # part of a block: not a growth
    assert _grown_blocks(grown, ["decoder.norm.weight"]) is None


def test_a_warm_started_model_counts_the_frames_behind_its_seed(image_folder, tmp_path):
    """Seed 2 steps x 4, then 3 steps x 4 warm, resumed to 4: the card says 16 frames, 8 of them the seed's."""
    cfg = _config(image_folder, tmp_path, 3)
    cfg.init_from = str(_seed_release(image_folder, tmp_path))
    cfg.surrogate_temperature = 4.0
    train(cfg, tmp_path / "warm")
    cfg.steps = 4
    train(cfg, tmp_path / "warm", resume=True)  # the lineage survives a resume
    export_release(tmp_path / "warm", tmp_path / "warm.safetensors", name="warm")
    seed, warm = compressor.load(tmp_path / "seed.safetensors"), compressor.load(tmp_path / "warm.safetensors")
    assert warm.training["frames_seen"] == 16
    assert warm.training["warm_started_from"]["frames_seen"] == 8
    assert warm.training["warm_started_from"]["model_id"] == f"{seed.model_id:04x}"
    assert warm.training["recipe"]["surrogate_temperature"] == 4.0
    assert "warm_started_from" not in seed.training


def test_two_process_gloo_run_matches_one_process(image_folder, tmp_path):
    """torchrun --nproc_per_node 2 with the same global batch ends at the same weights (within float error)."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    common = ["--encoder", "vit", "--data", str(image_folder), "--steps", "3",
              *_tiny_vit_sets(tmp_path, "batch_size=4", "warmup_steps=1", "bf16=false", "threads=1", "val_every=100")]
    single = subprocess.run([sys.executable, "-m", "compressor", "train", *common, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    # torchrun's own module: the console script is absent where torch comes from another environment
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    double = subprocess.run([*torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "compressor", "train",
                             *common, "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert double.returncode == 0, double.stderr[-2000:]
    a = load_file(str(tmp_path / "one" / "state.safetensors"))
    b = load_file(str(tmp_path / "two" / "state.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)
    steps = [json.loads(line)["step"] for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # only the main process logs


def test_video_files_are_training_data(tmp_path):
    """A short clip made here with PyAV is found, decoded into frames and cut into crops."""
    import av

    from compressor.training.data import build_pool, find_images, first_frame

    folder = tmp_path / "clips"
    folder.mkdir()
    with av.open(str(folder / "drive.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(12):
            img = np.zeros((64, 96, 3), np.uint8)
            img[:, (i * 8) % 96 :] = 200  # a moving edge, so frames differ
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    (folder / "broken.png").write_bytes(b"not a png")
    files = find_images([folder])
    assert [f.name for f in files] == ["broken.png", "drive.mp4"]
    pool = build_pool(files, (32, 64), total=8, seed=0, workers=1)
    assert pool.shape == (4, 32, 64, 3)  # the broken file is skipped, the clip gives 4 crops
    assert len({crop.tobytes() for crop in pool}) == 4
    assert first_frame(folder / "drive.mp4").size == (96, 64)
    with pytest.raises(ValueError, match="none of the 1 training files"):
        build_pool([folder / "broken.png"], (32, 64), total=2, seed=0, workers=1)


def _endless_run_argv(image_folder, tmp_path, run, *settings):
    """`compressor train` of a tiny model for 100,000 steps (tests stop it), logging every step."""
    import sys

    return [sys.executable, "-m", "compressor", "train", "--encoder", "vit", "--data", str(image_folder),
            "--steps", "100000", "--out", str(run), *_tiny_vit_sets(tmp_path, "batch_size=2", "threads=1", *settings)]


def _wait_for_lines(path, count, deadline):
    import time

    while time.time() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not reach {count} lines")


def test_a_stop_is_not_training_time(image_folder, tmp_path):
    """A run stopped (Ctrl-Z, SIGSTOP) and continued does not count the pause in its wall time."""
    import signal
    import subprocess
    import time

    run = tmp_path / "run"
    metrics = run / "metrics.jsonl"
    proc = subprocess.Popen(_endless_run_argv(image_folder, tmp_path, run), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        _wait_for_lines(metrics, 5, deadline)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(6)
        proc.send_signal(signal.SIGCONT)
        _wait_for_lines(metrics, len(metrics.read_text().splitlines()) + 5, deadline)
    finally:
        proc.kill()
        proc.wait()
    elapsed = [json.loads(line)["elapsed"] for line in metrics.read_text().splitlines()]
    assert max(b - a for a, b in zip(elapsed, elapsed[1:])) < 6.0  # steps take milliseconds; the stop took 6 s


def test_kill_and_resume(image_folder, tmp_path):
    """A run killed with SIGKILL leaves a loadable state; --resume continues from its step."""
    import subprocess
    import time

    from compressor.cli import compressor_main

    run = tmp_path / "run"
    argv = _endless_run_argv(image_folder, tmp_path, run, "checkpoint_minutes=0.002")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
            if len(lines) >= 5 and (run / "state.safetensors").exists():
                break
            time.sleep(0.2)
        proc.kill()
    finally:
        proc.wait()
    trainer = Trainer(TrainConfig.from_dict(json.loads((run / "config.json").read_text())), run)
    trainer.load_state(run / "state.safetensors")
    saved = trainer.progress.step
    assert saved >= 1  # the kill may leave a half-written .tmp beside it, never a broken state file
    assert compressor_main(["train", "--resume", str(run), "--steps", str(saved + 2), "--set", "log_every=1"]) == 0
    assert not list(run.glob("*.tmp"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-2:] == [saved + 1, saved + 2]


def test_ctrl_c_saves_the_steps_and_resume_logs_each_step_once(image_folder, tmp_path, monkeypatch, capsys):
    """Ctrl-C keeps the finite steps trained so far; a resume cuts the log back to them, so no step is
    logged twice (the steps after the state's were trained again, with other batches)."""
    cfg = _config(image_folder, tmp_path, 9)
    cfg.log_every, cfg.checkpoint_minutes = 1, 60  # no timed save: only the interrupt's
    run = tmp_path / "run"
    real_step = Trainer.train_step

    def interrupted(self, x):
        if self.progress.step == 5:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run)
    assert "interrupted at step 5: state saved" in capsys.readouterr().out
    monkeypatch.setattr(Trainer, "train_step", real_step)
    with open(run / "metrics.jsonl", "a") as log:  # as if steps past the state had been logged, then killed
        log.write(json.dumps({"step": 6, "loss": 1.0}) + "\n" + '{"step": 7, "lo')
    cfg.steps = 8
    resumed = train(cfg, run, resume=True)
    assert resumed.progress.step == 8
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]


def test_resume_refusals_and_one_file_of_data(image_folder, tmp_path, capsys):
    from compressor.cli import compressor_main
    from compressor.errors import TrainingError
    from compressor.training.data import split_files

    run = tmp_path / "run"
    train(_config(image_folder, tmp_path, 4), run)
    for argv, message in ((["--steps", "3"], "at step 4"), (["--steps", "6", "--encoder", "cvit"], "keeps its architecture"),
                          (["--steps", "6", "--set", "batch_size=8"], "keeps its batch_size"),
                          (["--steps", "6", "--out", str(tmp_path / "other")], "drop --out")):
        assert compressor_main(["train", "--resume", str(run), *argv]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(TrainingError, match="val_data"):
        split_files([image_folder / "im0.jpg"])
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.png").write_bytes((image_folder / "sub" / "im1.png").read_bytes())
    assert compressor_main(["train", "--out", str(tmp_path / "r1"), "--data", str(one), "--steps", "2"]) == 1
    assert "val_data" in capsys.readouterr().err and not (tmp_path / "r1").exists()
    cfg = _config(one, tmp_path, 2)
    cfg.val_data = [str(image_folder)]  # a validation set of its own: the one file trains
    trainer = train(cfg, tmp_path / "r2")
    assert trainer.data_facts["images"] == 1 and trainer.data_facts["validation_images"] == 6


def test_sigterm_saves_the_run_as_ctrl_c_does(image_folder, tmp_path):
    """A scheduler's stop (SIGTERM) ends a run as Ctrl-C does: its steps saved, status 130, no temp file."""
    import signal
    import subprocess
    import time

    run = tmp_path / "run"
    proc = subprocess.Popen(_endless_run_argv(image_folder, tmp_path, run), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(run / "metrics.jsonl", 3, time.time() + 300)  # checkpoint_minutes=4: no timed save yet
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted at step" in out and "Traceback" not in err
    trainer = Trainer(TrainConfig.from_dict(json.loads((run / "config.json").read_text())), run)
    trainer.load_state(run / "state.safetensors")
    assert trainer.progress.step >= 3 and not list(run.glob("*.tmp"))


def test_non_finite_loss_stops_with_a_clear_error(image_folder, tmp_path):
    from compressor.errors import TrainingError

    trainer = Trainer(_config(image_folder, tmp_path, 4), tmp_path / "run")
    trainer.prepare_data()
    with torch.no_grad():
        trainer.model.decoder.head.bias.fill_(float("nan"))
    with pytest.raises(TrainingError, match="non-finite loss at step 0"):
        trainer.run()


def test_batches_are_the_same_wherever_the_pool_lives():
    """A pool kept on the device (a GPU's fast path, forced here on the CPU) gives the host path's batches."""
    from compressor.training.data import CropSampler

    pool = np.random.default_rng(1).integers(0, 256, (20, 8, 16, 3), dtype=np.uint8)
    host = CropSampler(pool.copy(), 6, seed=3, pool_on_device=False)
    device = CropSampler(pool.copy(), 6, seed=3, pool_on_device=True)
    assert device.device_pool is not None and host.device_pool is None
    for step in range(5):
        rank = step % 2  # a slice of the global batch, as under torchrun with 2 processes
        a, b = host.next_batch(rank, 2), device.next_batch(rank, 2)
        assert a.shape == (3, 3, 8, 16) and a.dtype == torch.float32
        assert torch.equal(a, b)
    # the flips are real: some batch holds a mirrored crop
    x = CropSampler(pool, 20, seed=0, pool_on_device=True).next_batch()
    crops = torch.from_numpy(pool).permute(0, 3, 1, 2).float() / 255
    assert any(not any(torch.equal(img, c) for c in crops) for img in x)


def test_a_time_budget_sets_the_step_count(image_folder, tmp_path, capsys, monkeypatch):
    """`--minutes`: a speed probe inside the warmup fixes the steps; the run then ends annealed at that step.

    The probe's verdict is fixed at 30 more steps, so the step count does not depend on this CPU's speed
    or load: 20 probe steps, then 30.
    """
    import compressor.training.run
    from compressor.cli import compressor_main

    monkeypatch.setattr(compressor.training.run, "steps_for_budget", lambda step_seconds, seconds_left: 30)
    run = tmp_path / "run"
    tiny = _tiny_vit_sets(tmp_path, "batch_size=4", "warmup_steps=40", "val_every=1000")
    assert compressor_main(["train", "--encoder", "vit", "--data", str(image_folder), "--minutes", "0.5",
                            "--out", str(run), *tiny]) == 0
    steps = json.loads((run / "config.json").read_text())["steps"]
    assert steps == 20 + 30 and f"steps/s -> {steps} steps" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == steps and rows[-1]["lr"] == 0.0  # annealed exactly at the fitted step
    for bad in (["--steps", "5", "--out", str(tmp_path / "x")], ["--resume", str(run)]):
        assert compressor_main(["train", "--data", str(image_folder), "--minutes", "1", *bad]) == 1
        assert "--minutes" in capsys.readouterr().err
    # a warmup too short for the probe is refused before the run folder is made
    assert compressor_main(["train", "--data", str(image_folder), "--minutes", "1", "--out", str(tmp_path / "w"),
                            "--set", "warmup_steps=1"]) == 1
    assert "speed probe" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_the_speed_probe_leaves_out_its_slow_first_steps():
    """A device whose first steps are slow (kernel selection, allocator growth) is timed on the rest."""
    from types import SimpleNamespace

    from compressor.training.run import fit_steps_to_time

    class SlowStart:  # a trainer whose first 5 steps take 1 s each and the rest 10 ms
        cfg = SimpleNamespace(warmup_steps=30, steps=0)
        progress = SimpleNamespace(step=0)
        world, is_main = 1, True

        def run(self):
            self.step_seconds = [1.0] * 5 + [0.01] * (self.cfg.steps - self.progress.step - 5)
            self.progress.step = self.cfg.steps

    trainer = SlowStart()
    fit_steps_to_time(trainer, seconds=10.0, started=time.time())
    assert trainer.progress.step == 15  # the probe: half the warmup
    assert 900 < trainer.cfg.steps < 15 + 10 * 100  # 100 steps/s for the ~10 s left, less the 5% margin


@pytest.mark.parametrize("frozen, moving", [("decoder", "encoder"), ("encoder", "decoder")])
def test_a_frozen_half_stays_bit_for_bit_and_the_other_moves(image_folder, tmp_path, frozen, moving):
    """freeze_decoder refits the encoder to a fixed decoder; freeze_encoder the decoder to fixed codes."""
    from compressor.training.config import check_config

    cfg = _config(image_folder, tmp_path, 3)
    cfg.init_from, cfg.surrogate_temperature = str(_seed_release(image_folder, tmp_path)), 32.0
    setattr(cfg, f"freeze_{frozen}", True)
    trained = train(cfg, tmp_path / "refit").model
    seed = compressor.load(tmp_path / "seed.safetensors").model
    for k, v in getattr(seed, frozen).state_dict().items():
        assert torch.equal(getattr(trained, frozen).state_dict()[k].float(), v), k
    assert any(not torch.equal(getattr(trained, moving).state_dict()[k].float(), v)
               for k, v in getattr(seed, moving).state_dict().items())
    setattr(cfg, f"freeze_{moving}", True)
    with pytest.raises(ValueError, match="no network to train"):
        check_config(cfg)
    setattr(cfg, f"freeze_{moving}", False)
    cfg.init_from = ""
    with pytest.raises(ValueError, match="init_from"):
        check_config(cfg)


def test_a_fixed_encoder_keeps_its_seeds_encode_precision(image_folder, tmp_path):
    """The card's encode_precision and refine_start_scale are facts about the encoder: a decoder fine-tuned
    on a seed's fixed codes carries them; a run that trains the encoder does not."""
    from compressor.checkpoint import read_card, update_card

    seed = _seed_release(image_folder, tmp_path)
    update_card(seed, {**read_card(seed).card, "encode_precision": "bf16", "refine_start_scale": 0.25})
    for frozen in ("encoder", "decoder"):
        cfg = _config(image_folder, tmp_path, 2)
        cfg.init_from = str(seed)
        setattr(cfg, f"freeze_{frozen}", True)
        train(cfg, tmp_path / frozen)
        export_release(tmp_path / frozen, tmp_path / f"{frozen}.safetensors", name=frozen)
    assert read_card(tmp_path / "encoder.safetensors").card.get("encode_precision") == "bf16"
    assert read_card(tmp_path / "encoder.safetensors").refine_start_scale == 0.25
    assert "encode_precision" not in read_card(tmp_path / "decoder.safetensors").card
    assert "refine_start_scale" not in read_card(tmp_path / "decoder.safetensors").card


def test_distillation_fits_the_encoder_to_refined_codes(image_folder, tmp_path):
    """distill_refine: the encoder learns the codes refinement finds for its frozen decoder."""
    from compressor.training.config import check_config

    cfg = _config(image_folder, tmp_path, 40)
    cfg.init_from, cfg.freeze_decoder, cfg.lr = str(_seed_release(image_folder, tmp_path)), True, 3e-3
    cfg.distill_refine, cfg.distill_reuse = 10, 1000  # one refined batch, refitted 30 times
    trainer = Trainer(cfg, tmp_path / "distil")
    trainer.prepare_data()
    x = trainer.sampler.next_batch()
    decoder = {k: v.clone() for k, v in trainer.model.decoder.state_dict().items()}
    encoder = {k: v.clone() for k, v in trainer.model.encoder.state_dict().items()}
    with torch.no_grad():
        own = trainer.model.encode_symbols(x)
    losses = [trainer.train_step(x)["loss"].item() for _ in range(30)]
    crops, codes = trainer.distiller.buffer["crops"][:4].float() / 255, trainer.distiller.buffer["codes"][:4]
    assert torch.equal(crops, (x * 255).round() / 255) and trainer.distiller.frames == 4  # refined once
    assert trainer.facts()["refined_frames"] == 4
    assert (codes != own).float().mean() > 0.01  # refinement moved bits: there is something to learn
    with torch.no_grad():
        after = trainer.model.encode_symbols(x)
    assert (after == codes).float().mean() > (own == codes).float().mean() + 0.01  # measured: 0.953 -> 0.980
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, decoder[k]) for k, v in trainer.model.decoder.state_dict().items())
    assert all(torch.equal(v, encoder[k]) for k, v in trainer.distiller.teacher.state_dict().items())  # the seed's, frozen
    cfg.freeze_decoder = False
    with pytest.raises(ValueError, match="freeze_decoder"):
        check_config(cfg)


def test_the_teacher_searches_from_the_seed_cards_start_scale(image_folder, tmp_path):
    """distill_start_scale 0 takes the seed card's refine_start_scale, as `--refine` does; a value overrides."""
    from compressor.checkpoint import update_card
    from compressor.search import refine_symbols

    seed = _seed_release(image_folder, tmp_path)
    update_card(seed, {**compressor.load(seed).card.card, "refine_start_scale": 0.25})
    cfg = _config(image_folder, tmp_path, 4)
    cfg.init_from, cfg.freeze_decoder, cfg.distill_refine = str(seed), True, 10
    trainer = Trainer(cfg, tmp_path / "distil")
    assert trainer.cfg.distill_start_scale == 0.25  # resolved, so the recipe records what ran
    trainer.prepare_data()
    x = trainer.sampler.next_batch()
    with torch.no_grad():
        start = trainer.distiller.teacher(trainer.model.pad(x))
    expected = {s: refine_symbols(trainer.model, x, steps=10, bf16=cfg.bf16, start=start, start_scale=s)
                for s in (0.25, 1.0)}
    trainer.train_step(x)
    assert torch.equal(trainer.distiller.buffer["codes"][:4], expected[0.25])
    assert not torch.equal(expected[0.25], expected[1.0])  # the scale changes what the search finds
    cfg = _config(image_folder, tmp_path, 4)
    cfg.init_from, cfg.freeze_decoder, cfg.distill_refine, cfg.distill_start_scale = str(seed), True, 10, 0.5
    assert Trainer(cfg, tmp_path / "distil2").cfg.distill_start_scale == 0.5


def test_several_searches_a_frame_give_each_bit_the_share_that_set_it(image_folder, tmp_path):
    """distill_searches K: the first search is the single search's, the others start from noise around it,
    and the buffer counts the searches that set each bit (the target is that count / K)."""
    from compressor.training.config import check_config

    seed = _seed_release(image_folder, tmp_path)
    codes = {}
    for k in (1, 3):
        torch.manual_seed(0)
        cfg = _config(image_folder, tmp_path, 4)
        cfg.init_from, cfg.freeze_decoder, cfg.distill_refine, cfg.distill_searches = str(seed), True, 10, k
        trainer = Trainer(cfg, tmp_path / f"searches{k}")
        trainer.prepare_data()
        x = trainer.sampler.next_batch()
        trainer.train_step(x)
        codes[k] = trainer.distiller.buffer["codes"][: len(x)].clone()
    assert set(codes[1].unique().tolist()) == {0, 1} and codes[3].max() == 3
    assert ((codes[3] > 0) & (codes[3] < 3)).any()  # the searches disagree somewhere: those bits get 1/3 or 2/3
    assert (codes[3] == 3 * codes[1]).float().mean() > 0.8  # mostly where the single search put them
    cfg.distill_searches = 0
    with pytest.raises(ValueError, match="distill_searches"):
        check_config(cfg)


def test_refined_frames_count_the_refill_after_a_resume(image_folder, tmp_path):
    """The buffer is not saved: a resumed run refines a batch at once, and the card counts it."""
    cfg = _config(image_folder, tmp_path, 3)  # batch 4
    cfg.init_from, cfg.freeze_decoder = str(_seed_release(image_folder, tmp_path)), True
    cfg.distill_refine, cfg.distill_reuse = 2, 2
    run = tmp_path / "distil"
    assert train(cfg, run).facts()["refined_frames"] == 8  # steps 0 and 2
    cfg.steps = 4
    resumed = train(cfg, run, resume=True)  # step 3 refills the buffer
    assert resumed.progress.step == 4 and resumed.facts()["refined_frames"] == 12


def test_the_crop_pool_is_sized_to_the_data_and_kept_in_the_run_folder(image_folder, tmp_path, capsys, monkeypatch):
    """Six images and the default pool of 16,000 cut 64 crops each, into the run folder, and say so."""
    from compressor.training.data import MAX_CROPS_PER_FILE

    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # nothing may land under ~/.cache
    cfg = _config(image_folder, tmp_path, 1)
    cfg.cache_dir, cfg.pool_size = "", 16000
    train(cfg, tmp_path / "run")
    out = capsys.readouterr().out
    pools = list((tmp_path / "run").glob("crops-*.npy"))
    assert len(pools) == 1 and f"wrote {pools[0]}" in out
    assert np.load(pools[0], mmap_mode="r").shape[0] == MAX_CROPS_PER_FILE * 5  # one of the six is held out for validation
    assert not (tmp_path / "home" / ".cache" / "compressor").exists()  # (matplotlib keeps its font list there)
    cfg.steps = 2
    train(cfg, tmp_path / "run", resume=True)
    assert f"read {MAX_CROPS_PER_FILE * 5} crops from {pools[0]}" in capsys.readouterr().out


def test_a_snap_run_trains_on_snapped_codes_and_its_release_reads_the_seeds_files(image_folder, tmp_path,
                                                                                   tiny_net_path, frame):
    """snap: the decoder trains on the seed encoder's codes snapped by the seed's context net; the release
    encodes by the same rule, carries the seed's coding, and decodes the seed's files to the same symbols."""
    from compressor import context_net
    from compressor.checkpoint import read_card
    from compressor.training.config import check_config

    cfg = _config(image_folder, tmp_path, 2)
    cfg.init_from, cfg.freeze_encoder, cfg.snap = str(tiny_net_path), True, 50.0
    trainer = Trainer(cfg, tmp_path / "probe")
    trainer.prepare_data()
    x = trainer.sampler.next_batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = trainer.model.encoder(x).float().numpy()
    snapped = context_net.snap(trainer.snap_net, y, cfg.snap)
    assert (snapped != (y >= 0)).any()  # the rule moved some bits, and the decoder reads exactly those
    assert np.array_equal(trainer.forward(x)["symbols"].numpy(), snapped)

    train(cfg, tmp_path / "snap")
    export_release(tmp_path / "snap", tmp_path / "snap.safetensors", name="snap")
    seed, release = compressor.load(tiny_net_path), compressor.load(tmp_path / "snap.safetensors")
    card = read_card(tmp_path / "snap.safetensors")
    assert card.card["snap"] == 50.0 and seed.model_id in card.former_model_ids != release.model_id
    assert np.array_equal(release._cdf, seed._cdf) and release._net is not None
    for key, value in seed.card.context_net.items():
        assert np.array_equal(release.card.context_net[key], value), key
    data = seed.encode(frame)  # a file the seed wrote: the same symbols, now read by the new decoder
    assert np.array_equal(release.decode_symbols(data)[0], seed.decode_symbols(data)[0])
    assert np.asarray(release.decode(data)).shape == frame.shape
    plain, ours = seed.encode_symbols(frame), release.encode_symbols(frame)
    assert not np.array_equal(plain, ours) and np.array_equal(release.decode_symbols(release.encode(frame))[0], ours)

    cfg.freeze_encoder = False
    with pytest.raises(ValueError, match="snap"):
        check_config(cfg)
    cfg.freeze_encoder, cfg.init_from = True, str(_seed_release(image_folder, tmp_path))  # a seed without a net
    with pytest.raises(ValueError, match="context net"):
        check_config(cfg)  # refused before any run folder is made
