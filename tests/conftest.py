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


def structured_symbols(seed: int, shape=(14, 8, 16), flip: float = 0.05) -> np.ndarray:
    """uint8 symbols (C, h, w) with structure a context model can use: blocks of equal bits plus a few flips."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    blocks = rng.integers(0, 2, (c, -(-h // 4), -(-w // 4)), dtype=np.uint8)
    s = np.kron(blocks, np.ones((1, 4, 4), np.uint8))[:, :h, :w]
    return (s ^ (rng.random(shape) < flip)).astype(np.uint8)


def fitted_tables(channels: int = 14) -> dict:
    """Spatial and temporal tables fitted on structured symbols and on pairs of them a few flips apart."""
    from compressor import context_model

    arrays = [structured_symbols(i, (channels, 8, 16)) for i in range(40)]
    moved = [a ^ (np.random.default_rng(100 + i).random(a.shape) < 0.05).astype(np.uint8) for i, a in enumerate(arrays)]
    return {"spatial": context_model.fit_tables(arrays), "temporal": context_model.fit_temporal(list(zip(arrays, moved)))}


def make_context_release(path: Path, seed: int = 0, name: str = "tiny-ctx") -> Path:
    """The tiny model of `make_release` with context tables added (as `compressor fit-context` adds them)."""
    from compressor.checkpoint import save_with_context

    plain = make_release(path.with_name(path.stem + "-plain.safetensors"), seed=seed, name=name)
    save_with_context(plain, path, fitted_tables(), {"context": {"folders": ["tests"]}})
    return path


def fitted_net(channels: int = 14, steps: int = 40) -> dict:
    """A small context net's integer tensors, trained briefly on structured symbols (`context_net_fit`)."""
    from compressor import context_net_fit

    arrays = np.stack([structured_symbols(i, (channels, 8, 16)) for i in range(40)])
    return context_net_fit.quantise(context_net_fit.train(arrays, steps=steps, batch=512))


def make_net_release(path: Path, seed: int = 0, name: str = "tiny-net") -> Path:
    """The tiny model with context tables, and then a context net added (`compressor fit-context --net
    --keep-tables`): its table id is `make_context_release`'s model id."""
    from compressor.checkpoint import save_with_context

    tables = make_context_release(path.with_name(path.stem + "-tables.safetensors"), seed=seed, name=name)
    save_with_context(tables, path, fitted_tables(), {"context": {"folders": ["tests"]}}, context_net=fitted_net())
    return path


@pytest.fixture(scope="session")
def tiny_net_path(tmp_path_factory) -> Path:
    return make_net_release(tmp_path_factory.mktemp("ckpt") / "tiny-net.safetensors")


@pytest.fixture(scope="session")
def tiny_net(tiny_net_path):
    import compressor

    return compressor.load(tiny_net_path)


@pytest.fixture(scope="session")
def tiny_ctx_path(tmp_path_factory) -> Path:
    return make_context_release(tmp_path_factory.mktemp("ckpt") / "tiny-ctx.safetensors")


@pytest.fixture(scope="session")
def tiny_ctx(tiny_ctx_path):
    import compressor

    return compressor.load(tiny_ctx_path)


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
