"""What the entropy-coding probes in this folder share: their data arguments and their evaluation frames."""
from __future__ import annotations

import argparse

import numpy as np

from compressor.images import to_rgb_array
from compressor.measure.evaluate import expand_paths


def data_parser(*, train_required: bool = True, eval_required: bool = True) -> argparse.ArgumentParser:
    """--model (a shipped name or a checkpoint), --train and --eval (folders), as every probe here takes them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit.default")
    ap.add_argument("--train", nargs="+", required=train_required, default=None if train_required else [])
    ap.add_argument("--eval", nargs="+", required=eval_required, default=None if eval_required else [])
    return ap


def eval_frames(folder: str) -> np.ndarray:
    """uint8 (N, H, W, 3): one evaluation folder's images as they are (the frame sets are 128x256)."""
    return np.stack([to_rgb_array(f) for f in expand_paths([folder])])
