"""The command line end to end: compress, decompress, info, models, eval, and how errors look."""
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from compressor.zoo import DEFAULT_MODEL
from compressor.cli import compress_main, compressor_main, decompress_main

BIN = Path(sys.executable).parent


@pytest.fixture
def frame_png(tmp_path, frame):
    path = tmp_path / "frame.png"
    Image.fromarray(frame).save(path)
    return path


def test_round_trip(tiny_path, frame_png, tmp_path, capsys):
    out_bin, out_png = tmp_path / "f.bin", tmp_path / "f-decoded.png"
    assert compress_main([str(frame_png), str(out_bin), "--model", str(tiny_path)]) == 0
    assert "bytes" in capsys.readouterr().out
    assert decompress_main([str(out_bin), str(out_png), "--model", str(tiny_path)]) == 0
    assert Image.open(out_png).size == (256, 128)
    capsys.readouterr()
    assert compressor_main(["info", str(out_bin), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size"] == "128x256" and info["header_bytes"] == 5 and info["bytes"] == out_bin.stat().st_size


def test_large_images_are_tiled_in_overlapping_windows_unless_told_not_to(tiny_path, tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(big)
    cases = (([], True, True), (["--no-overlap"], True, False), (["--no-tile"], False, False))
    for i, (flag, tiled, overlap) in enumerate(cases):
        out_bin = tmp_path / f"big{i}.bin"
        assert compress_main([str(big), str(out_bin), "--model", str(tiny_path), *flag]) == 0
        capsys.readouterr()
        assert compressor_main(["info", str(out_bin), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["tiled"], info["overlap"]) == (tiled, overlap)
        assert decompress_main([str(out_bin), str(tmp_path / f"big{i}.png"), "--model", str(tiny_path)]) == 0


def _fails(capsys, fn, argv, pattern):
    assert fn(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert pattern in err and "Traceback" not in err


def test_errors_are_one_line_and_leave_no_file(tiny_path, frame_png, tmp_path, capsys):
    out = tmp_path / "out.bin"
    _fails(capsys, compress_main, [str(tmp_path / "missing.png"), str(out), "--model", str(tiny_path)], "not found")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    _fails(capsys, compress_main, [str(tmp_path / "junk.png"), str(out), "--model", str(tiny_path)], "cannot read")
    _fails(capsys, compress_main, [str(frame_png), str(out), "--model", "no-such-model"], "unknown model")
    (tmp_path / "bad.bin").write_bytes(b"\xcf\x10\x00")
    _fails(capsys, decompress_main, [str(tmp_path / "bad.bin"), str(tmp_path / "o.png"), "--model", str(tiny_path)],
           "truncated")
    assert not out.exists() and not (tmp_path / "o.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin", "frame.png", "junk.png"]


def test_never_overwrites_the_input(tiny_path, frame_png, capsys):
    before = frame_png.read_bytes()
    _fails(capsys, compress_main, [str(frame_png), str(frame_png), "--model", str(tiny_path)], "is the input")
    assert frame_png.read_bytes() == before


def test_compress_refuses_an_output_named_as_an_image_or_video(tiny_path, frame_png, tmp_path, capsys):
    for name in ("out.png", "out.JPG", "out.mp4"):  # a swapped command: `compress in.png out.png`
        _fails(capsys, compress_main, [str(frame_png), str(tmp_path / name), "--model", str(tiny_path)], "name it .bin")
    _fails(capsys, compress_main, [str(tmp_path), str(tmp_path / "clip.mkv"), "--model", str(tiny_path)], "name it .bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]
    compress_main([str(frame_png), str(tmp_path / "out.cmp"), "--model", str(tiny_path), "-q"])  # any other name
    assert (tmp_path / "out.cmp").stat().st_size > 0


def test_truncated_bin_leaves_existing_output_untouched(tiny_path, frame_png, tmp_path, capsys):
    good = tmp_path / "f.bin"
    compress_main([str(frame_png), str(good), "--model", str(tiny_path), "-q"])
    data = good.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-5])
    target = tmp_path / "existing.png"
    target.write_bytes(b"keep me")
    _fails(capsys, decompress_main, [str(tmp_path / "cut.bin"), str(target), "--model", str(tiny_path)], "error")
    assert target.read_bytes() == b"keep me"


def test_wrong_model_is_refused(tiny_path, other_path, frame_png, tmp_path, capsys):
    out = tmp_path / "f.bin"
    compress_main([str(frame_png), str(out), "--model", str(tiny_path), "-q"])
    _fails(capsys, decompress_main, [str(out), str(tmp_path / "o.png"), "--model", str(other_path)], "written by model")


def test_eval_prints_bytes_and_psnr(tiny_path, frame_png, tmp_path, capsys):
    assert compressor_main(["eval", str(frame_png), "--model", str(tiny_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 1 and result["max_bytes"] <= 232 and 0 < result["mean_psnr"] < 99
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(tiny_path.read_bytes())
    assert compressor_main(["eval", str(frame_png), "--model", str(copy), "--json", "--record", "one"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1  # stdout stays one JSON document
    import compressor

    assert compressor.load(copy).results["one"]["images"] == 1  # the rewritten file, not the cached codec
    _fails(capsys, compressor_main, ["eval", str(frame_png), "--record", "x"], "name the checkpoint with --model")
    _fails(capsys, compressor_main, ["eval", str(frame_png), "--model", str(copy), "--record", ""], "needs a set name")


def test_console_scripts_are_installed(tiny_path, frame_png, tmp_path):
    out = tmp_path / "s.bin"
    r = subprocess.run([str(BIN / "compress"), str(frame_png), str(out), "--model", str(tiny_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(BIN / "decompress"), str(out), str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "is the input" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([str(BIN / "compressor"), "models"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip()
    lines = r.stdout.splitlines()  # a header, the default first and saying so, one line per model: one screen
    assert lines[1].startswith(f"{DEFAULT_MODEL} ") and lines[1].endswith("(default)") and " dB" in lines[1]
    assert len(lines) <= 24 and max(map(len, lines)) <= 100
    r = subprocess.run([str(BIN / "compressor"), "models", "--json"], capture_output=True, text=True)
    cards = json.loads(r.stdout)
    assert [c["name"] for c in cards][0] == DEFAULT_MODEL and "/work/" not in r.stdout and '"path"' not in r.stdout


def test_outputs_get_the_umasks_permissions_not_the_temp_files(tiny_path, frame_png, tmp_path):
    old = os.umask(0o022)
    try:
        out_bin, out_png = tmp_path / "f.bin", tmp_path / "f.png"
        assert compress_main([str(frame_png), str(out_bin), "--model", str(tiny_path), "-q"]) == 0
        assert decompress_main([str(out_bin), str(out_png), "--model", str(tiny_path), "-q"]) == 0
        assert stat.S_IMODE(out_bin.stat().st_mode) == 0o644 and stat.S_IMODE(out_png.stat().st_mode) == 0o644
        out_bin.chmod(0o640)  # an existing file keeps its own
        assert compress_main([str(frame_png), str(out_bin), "--model", str(tiny_path), "-q"]) == 0
        assert stat.S_IMODE(out_bin.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_target_that_is_not_a_regular_file_is_written_into_not_replaced(tiny_path, frame_png, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert compress_main([str(frame_png), str(fifo), "--model", str(tiny_path), "-q"]) == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a file renamed over it
    assert got and got[0][:1] == b"\xcf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png", "pipe"]


def test_more_user_errors_are_one_line(tiny_path, frame_png, tmp_path, capsys):
    good = tmp_path / "f.bin"
    compress_main([str(frame_png), str(good), "--model", str(tiny_path), "-q"])
    _fails(capsys, decompress_main, [str(good), str(tmp_path / "o.psd"), "--model", str(tiny_path)], "cannot write PSD")
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.safetensors").write_bytes(b"not a state")
    _fails(capsys, compressor_main, ["export", str(run), str(run / "state.safetensors")], "refusing to overwrite")
    assert (run / "state.safetensors").read_bytes() == b"not a state"
    _fails(capsys, compressor_main, ["export", str(run), str(tmp_path / "out.safetensors")], "not a compressor training state")
    _fails(capsys, compressor_main, ["export", str(run), str(tmp_path / "nodir" / "o.safetensors")], "does not exist")
    (tmp_path / "list.json").write_text("[1, 2]")
    _fails(capsys, compressor_main, ["train", "--out", str(tmp_path / "r1"), "--config", str(tmp_path / "list.json")],
           "JSON object")
    _fails(capsys, compressor_main, ["train", "--out", str(tmp_path / "r2"), "--data", str(tmp_path / "nodata")],
           "training data not found")
    (tmp_path / "nodata").mkdir()
    _fails(capsys, compressor_main, ["train", "--out", str(tmp_path / "r2"), "--data", str(tmp_path / "nodata")],
           "no images or videos")
    (tmp_path / "nodata").rmdir()
    _fails(capsys, compressor_main, ["bench", "--images", str(tmp_path / "noimages"), "--out", str(tmp_path / "b")],
           "image folder not found")
    (tmp_path / "empty").mkdir()
    _fails(capsys, compressor_main, ["bench", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "b")],
           "no images in")
    _fails(capsys, compressor_main, ["bench", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "list.json")],
           "no images in")
    _fails(capsys, compressor_main, ["bench", "--images", str(tmp_path), "--out", str(tmp_path / "list.json")],
           "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "f.bin", "frame.png", "list.json", "run"]
    for argv in (["speed", "--batch", "0"], ["speed", "--frames", "0"], ["speed", "--repeats", "0"],
                 ["speed", "--threads", "0"], ["bench", "--images", ".", "--out", "b", "--threads", "0"],
                 ["train", "--out", str(tmp_path / "r3"), "--steps", "0"]):  # 0 steps is no run, not the default
        with pytest.raises(SystemExit) as stop:
            compressor_main(argv)
        assert stop.value.code == 2 and "must be 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "r3").exists()
    for minutes in ("inf", "nan", "0"):
        with pytest.raises(SystemExit) as stop:
            compressor_main(["train", "--out", str(tmp_path / "r3"), "--minutes", minutes])
        assert stop.value.code == 2 and "finite number above 0" in capsys.readouterr().err
    for weight in ("inf", "nan", "-1"):
        with pytest.raises(SystemExit) as stop:
            compress_main([str(tmp_path / "frame.png"), str(tmp_path / "w.bin"), "--flips", "1", "--rate-weight", weight])
        assert stop.value.code == 2 and "finite" in capsys.readouterr().err
