"""Optional dependencies: the install extra that brings each, and a one-line error when it is missing.

Encoding and decoding need only the core dependencies; training, the bench and video input need extras
(pyproject.toml's [project.optional-dependencies]).
"""
from __future__ import annotations

import importlib
import warnings

from compressor.errors import MissingExtraError

# module -> (pip package, the extra that installs it)
EXTRAS = {
    "compressai": ("compressai", "train"),
    "tqdm": ("tqdm", "train"),
    "matplotlib": ("matplotlib", "train"),
    "av": ("av", "video"),
    "pillow_jxl": ("pillow-jxl-plugin", "bench"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
}


def need(module: str, what: str, extra: str | None = None):
    """Import `module` for `what` ("training", "video input"), or raise a one-line MissingExtraError."""
    try:
        with warnings.catch_warnings():  # compressai's import calls torch.jit.script, deprecated in torch 2.x
            warnings.simplefilter("ignore", FutureWarning)
            return importlib.import_module(module)
    except ImportError:
        package, default_extra = EXTRAS[module]
        raise MissingExtraError(f"{what} needs {package}, which is not installed: "
                                f"pip install 'compressor[{extra or default_extra}]'") from None
