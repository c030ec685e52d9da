"""The bench end to end on two small images with a tiny model, and the classic-codec fitting."""
import json

import numpy as np
import pytest
from PIL import Image

from compressor.measure.bench import run_bench
from compressor.measure.classic import available_codecs, bare_size, fit
from compressor.metrics import ms_ssim, ms_ssim_scales, psnr


@pytest.fixture
def two_images(tmp_path, frame):
    d = tmp_path / "set"
    d.mkdir()
    Image.fromarray(frame).save(d / "a.png")
    Image.fromarray(np.ascontiguousarray(frame[:, ::-1])).save(d / "b.png")
    return d


def test_bench_writes_every_output(tiny_path, two_images, tmp_path):
    out = tmp_path / "out"
    records = run_bench([two_images], [str(tiny_path)], out, speed_frames=4, log=lambda *a: None)
    for name in ("results.json", "results.md", "rd.png", "visual.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    model = data["records"][0]
    for key in ("name", "images", "mean_bytes", "mean_psnr", "mean_ms_ssim", "encode_fps", "decode_fps", "params",
                "gflops", "per_image"):
        assert key in model
    assert model["images"] == "set" and len(model["per_image"]) == 2 and model["gflops"] > 0
    names = {r["name"] for r in records}
    assert "JPEG (file)" in names and "WebP (bare)" in names
    budgets = [p["bytes"] for p in model["per_image"]]
    for r in data["records"][1:]:
        for p, budget in zip(r["per_image"], budgets):
            assert p["bytes"] is None or p["bytes"] <= budget
    md = (out / "results.md").read_text()
    assert "### Architectures" in md and "| tiny | vit / vit |" in md and "| best classic (file) |" in md
    assert model["architecture"] == {"encoder": "vit", "decoder": "vit"} and model["training"]["steps"] == 0  # the tiny card says so


def test_every_model_meets_bare_avif_at_its_own_bytes(tiny_path, other_path, two_images, tmp_path):
    """Classic codecs get the first model's bytes; each model's lead is against AVIF given its own."""
    if not any(c.fmt == "AVIF" for c in available_codecs()):
        pytest.skip("this Pillow has no AVIF plugin")
    records = run_bench([two_images], [str(tiny_path), str(other_path)], tmp_path, speed_frames=4,
                        log=lambda *a: None)
    models = [r for r in records if r["kind"] == "model"]
    avif = next(r for r in records if r["name"] == "AVIF (bare)")
    assert [m["name"] for m in models] == ["tiny", "other"]
    assert models[0]["avif_at_own_bytes"]["mean_psnr"] == avif["mean_psnr"]  # the classic run's budget is tiny's
    for m in models:
        own = m["avif_at_own_bytes"]
        assert own["settings"] == next(c for c in available_codecs() if c.fmt == "AVIF").settings
        if own["fitted"] == m["count"]:
            assert own["lead_db"] == pytest.approx(m["mean_psnr"] - own["mean_psnr"])
            assert own["mean_bytes"] <= m["mean_bytes"]
    assert "vs AVIF" in (tmp_path / "results.md").read_text() or all(
        m["avif_at_own_bytes"]["lead_db"] is None for m in models)


def test_a_search_encodes_every_model_and_names_its_records(tiny_path, two_images, tmp_path):
    """`bench --flips R` (or --refine N): each model's files are those `eval --flips R` writes, its speed is the
    search's, its records say so, and the classic codecs get the searched files' bytes."""
    from compressor.measure.evaluate import evaluate_paths

    records = run_bench([two_images], [str(tiny_path)], tmp_path, speed_frames=4, flips=1, log=lambda *a: None)
    model = records[0]
    assert model["name"] == "tiny flips 1" and model["search"] == "flips 1"
    searched = evaluate_paths([two_images], str(tiny_path), flips=1)
    assert [p["bytes"] for p in model["per_image"]] == [p["bytes"] for p in searched["per_image"]]
    assert [p["psnr"] for p in model["per_image"]] == pytest.approx([p["psnr"] for p in searched["per_image"]])
    jpeg = next(r for r in records if r["name"] == "JPEG (file)")
    assert jpeg["budget"] == "per image, at most the bytes of tiny flips 1's file"
    assert all(p["bytes"] is None or p["bytes"] <= m["bytes"] for p, m in zip(jpeg["per_image"], model["per_image"]))
    assert "| tiny flips 1 |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("codec", available_codecs(), ids=lambda c: c.name)
def test_fit_never_exceeds_the_budget(codec, frame):
    for budget in (300, 2000):
        for bare in ([False, True] if codec.has_bare else [False]):
            r = fit(codec, frame, budget, bare=bare)
            if r is None:
                continue
            image = Image.fromarray(frame)
            if r.scale > 1:
                image = image.resize((256 // r.scale, 128 // r.scale), Image.LANCZOS)
            data = codec.encode(image, r.quality)
            size = bare_size(codec.fmt, data) if bare else len(data)
            assert size == r.bytes <= budget
            assert r.decoded.shape == frame.shape and r.psnr == psnr(frame, r.decoded)


def test_bare_is_smaller_than_file():
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for codec in available_codecs():
        if codec.has_bare:
            data = codec.encode(Image.fromarray(frame), codec.qualities[len(codec.qualities) // 2])
            assert 0 < bare_size(codec.fmt, data) <= len(data)


def test_ms_ssim_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)
    assert ms_ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0 < ms_ssim(a, noisy) < 0.99
    assert ms_ssim_scales(128, 256) == 4 and ms_ssim_scales(512, 768) == 5
    assert np.isnan(ms_ssim(a[:5], a[:5]))


def test_scaling_measures_time_and_memory_from_a_big_parent(tiny_path, tmp_path):
    """Each size runs in a child; its peak memory must be its own, not the bench's (which is large)."""
    from compressor.measure.scaling import run_scaling

    ballast = np.ones(400 * 2**20, np.uint8)  # the parent's peak resident set: at least 400 MB
    result = run_scaling([str(tiny_path)], tmp_path, threads=1, sizes=[(64, 128), (512, 1024)], log=lambda *a: None)
    del ballast
    rows = result["models"][str(tiny_path)]
    assert [r["size"] for r in rows] == ["64x128", "512x1024"]
    assert all(r["encode_s"] > 0 and r["decode_s"] > 0 for r in rows)
    # 2,048 tokens of global attention need tens of MB above the loaded model; far below the ballast
    assert 1 < rows[-1]["peak_mb"] < 300
    assert set(result["exponents"][str(tiny_path)]) == {"encode", "decode"}
    assert (tmp_path / "scaling.png").stat().st_size > 0 and (tmp_path / "scaling.json").exists()


def test_avif_runs_at_its_psnr_best_settings_and_records_them():
    from compressor.measure.classic import available_codecs

    avif = [c for c in available_codecs() if c.fmt == "AVIF"]
    if not avif:
        pytest.skip("this Pillow has no AVIF plugin")
    settings = avif[0].settings
    assert settings["speed"] <= 4
    assert settings.get("advanced", {}).get("tune") in ("psnr", None)  # None: libaom or the option is missing
    assert len(avif[0].encode(Image.fromarray(np.zeros((32, 64, 3), np.uint8)), 10)) > 0
