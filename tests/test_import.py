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


# Modules the core install lacks: an entry of None in sys.modules makes their import fail.
BLOCK_EXTRAS = ("import sys; sys.modules.update(dict.fromkeys(['compressai', 'tqdm', 'matplotlib', 'av', 'pillow_jxl', "
                "'scipy', 'onnx', 'onnxruntime']));")


def test_encode_and_decode_need_only_the_core_dependencies():
    code = (BLOCK_EXTRAS + "import numpy as np, compressor; data = compressor.encode(np.zeros((128, 256, 3), np.uint8)); "
            "print(len(data), compressor.decode(data).size)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) <= 232 and out[1:] == ["(256,", "128)"]


def test_commands_name_the_extra_they_need(tmp_path):
    code = BLOCK_EXTRAS + "from compressor.cli import compressor_main; sys.exit(compressor_main(sys.argv[1:]))"
    for argv, extra in ((["train", "--out", str(tmp_path / "run"), "--data", str(tmp_path)], "train"),
                        (["bench", "--out", str(tmp_path / "b"), "--images", str(tmp_path)], "bench"),
                        (["export-onnx", "vit.default", str(tmp_path / "o")], "onnx")):
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and f"pip install 'compressor[{extra}]'" in r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "b").exists() and not (tmp_path / "o").exists()
