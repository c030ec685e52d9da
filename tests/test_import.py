import subprocess
import sys


def test_import_is_light():
    """`import compressor` loads neither torch nor torchvision nor compressai (design.md: imports)."""
    code = "import sys, compressor; print(*(m in sys.modules for m in ('torch', 'torchvision', 'compressai')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_encode_path_does_not_import_compressai_or_torchvision(tmp_path):
    code = ("import sys, numpy as np, compressor; c = compressor.load('vit.default'); "
            "c.decode(c.encode(np.zeros((128, 256, 3), np.uint8))); "
            "print(*(m in sys.modules for m in ('torchvision', 'compressai')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
