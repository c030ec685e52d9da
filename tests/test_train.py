"""A few training steps of a tiny model on generated images, export, reload, code a frame; resume."""
import json

import numpy as np
import pytest
from PIL import Image

import compressor
from compressor.model import ModelConfig
from compressor.train import TrainConfig, Trainer, export_release, learning_rate, train
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


def test_train_export_load_and_code(image_folder, tmp_path, frame):
    run = tmp_path / "run"
    trainer = train(_config(image_folder, tmp_path, 6), run)
    assert trainer.step == 6
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [2, 4, 6] and "val_psnr" in lines[1]
    assert all(np.isfinite(l["loss"]) for l in lines)
    out = tmp_path / "mine.safetensors"
    export_release(run, out, name="mine")
    codec = compressor.load(out)
    assert codec.training["steps"] == 6 and codec.training["frames_seen"] == 24
    image = codec.decode(codec.encode(frame))
    assert image.size == (256, 128)


def test_resume_continues_at_the_saved_step(image_folder, tmp_path):
    run = tmp_path / "run"
    first = train(_config(image_folder, tmp_path, 4), run)
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    resumed = Trainer(_config(image_folder, tmp_path, 8), run)
    resumed.load_state(run / "state.safetensors")
    assert resumed.step == 4
    for k, v in resumed.model.state_dict().items():
        assert (v == weights[k]).all(), k
    assert resumed.opt.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    second = train(_config(image_folder, tmp_path, 8), run, resume=True)
    assert second.step == 8


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1000, warmup_steps=100, decay_fraction=0.2, lr=1e-3)
    assert learning_rate(cfg, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 500) == 1e-3
    assert learning_rate(cfg, 900) == pytest.approx(5e-4)
    assert learning_rate(cfg, 1000) == 0


def test_missing_or_empty_data_folder(tmp_path):
    from compressor.data import find_images

    with pytest.raises(FileNotFoundError, match="not found"):
        find_images([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        find_images([tmp_path / "empty"])


def test_unknown_config_keys_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"stpes": 3})
