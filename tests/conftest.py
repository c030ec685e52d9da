"""Shared fixtures: a tiny untrained model saved as a real release checkpoint, and data paths.

The evaluation frames are found through one environment variable, COMPRESSOR_TEST_DATA (the data
folder holding eval/), with ../shared/data beside the checkout as its default; tests that need them
skip where they are absent.
"""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = Path(os.environ.get("COMPRESSOR_TEST_DATA", REPO.parent / "shared" / "data"))
TINY_VIT = {
    "encoder": "vit",
    "decoder": "vit",
    "encoder_args": {"dim": 32, "depth": 1, "heads": 2},
    "decoder_args": {"dim": 32, "depth": 1, "heads": 2, "refine_dim": 16, "refine_depth": 1, "refine_heads": 1},
}


def make_release(path: Path, config: dict = TINY_VIT, seed: int = 0, name: str = "tiny") -> Path:
    import torch

    from compressor.checkpoint import save_release
    from compressor.model import CompressionModel, ModelConfig

    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict(config)
    model = CompressionModel.from_config(cfg)
    # A skewed table, so entropy coding really compresses and the raw fallback is exercised separately.
    model.bottleneck.cdf[:, 1] = torch.linspace(9000, 56000, model.latent_channels).round().to(torch.int32)
    save_release(path, model, cfg, name=name, card={"parameters": 0, "training": {"steps": 0}})
    return path


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def other_path(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("ckpt") / "other.safetensors", seed=1, name="other")


@pytest.fixture(scope="session")
def tiny(tiny_path):
    import compressor

    return compressor.load(tiny_path)


@pytest.fixture
def frame() -> np.ndarray:
    """A 128x256 uint8 test frame with structure (gradients and edges), deterministic."""
    yy, xx = np.mgrid[0:128, 0:256]
    r = (xx * 255 // 255) % 256
    g = (yy * 2) % 256
    b = ((xx // 32 + yy // 32) % 2) * 200 + 20
    return np.stack([r, g, b], axis=2).astype(np.uint8)


def eval_dir(name: str) -> Path:
    path = TEST_DATA / "eval" / name
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path}")
    return path
