"""Encoder-side search (refine and flips): never worse than the encoder's code, same format, opt-in."""
import numpy as np
import pytest
import torch

import compressor
from compressor import bitstream
from compressor.cli import compress_main
from compressor.metrics import psnr
from compressor.search import refine_symbols


def _decoded_error(model, symbols, x):
    with torch.inference_mode():
        out = model.decode_symbols(symbols, tuple(x.shape[-2:]))
    return (out - x).pow(2).mean(dim=(1, 2, 3))


def test_refined_code_is_never_worse_and_differs(tiny, frame):
    rng = np.random.default_rng(0)
    frames = np.stack([frame, rng.integers(0, 256, frame.shape, dtype=np.uint8)])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (2, 3, 128, 256)
    model = tiny.model
    plain = model.encode_symbols(x)
    refined = refine_symbols(model, x, steps=10)
    assert refined.dtype == torch.uint8 and refined.shape == plain.shape == (2, 14, 8, 16)
    before, after = _decoded_error(model, plain, x), _decoded_error(model, refined, x)
    assert torch.all(after <= before)
    assert after.sum() < before.sum() and (refined != plain).any()


def test_zero_steps_is_the_encoder_code(tiny, frame):
    x = torch.from_numpy(frame[None]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(refine_symbols(tiny.model, x, steps=0), tiny.model.encode_symbols(x))
    assert tiny.encode(frame, refine=0) == tiny.encode(frame)


def test_refined_files_decode_with_the_same_model(tiny, frame):
    odd = frame[:100, :200]  # not a multiple of 16: padding and cropping in the loop too
    for image in (frame, odd):
        data = tiny.encode(image, refine=5)
        out = np.asarray(tiny.decode(data))
        assert out.shape == image.shape
        assert psnr(image, out) >= psnr(image, np.asarray(tiny.decode(tiny.encode(image)))) - 0.05
    datas = tiny.encode_batch([frame, odd, frame], refine=3)
    assert [compressor.decode(d, model=tiny).size for d in datas] == [(256, 128), (200, 100), (256, 128)]


def test_negative_steps_are_refused(tiny, frame, tmp_path):
    with pytest.raises(ValueError):
        tiny.encode(frame, refine=-1)
    src = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(frame).save(src)
    with pytest.raises(SystemExit) as e:
        compress_main([str(src), str(tmp_path / "a.bin"), "--refine", "-2"])
    assert e.value.code == 2 and not (tmp_path / "a.bin").exists()


def test_the_search_starts_at_the_scale_the_card_sets(tiny, frame):
    """The codec scales the encoder's latent by its card's `refine_start_scale` before the search."""
    x = torch.from_numpy(frame[None]).permute(0, 3, 1, 2).float() / 255
    bf16 = tiny.decode_precision == "bf16"
    want = {s: tiny._pack(refine_symbols(tiny.model, x, steps=5, bf16=bf16, start_scale=s)[0].numpy(), frame.shape[:2])
            for s in (1.0, 0.05)}
    assert tiny.encode(frame, refine=5) == want[1.0] != want[0.05]
    assert tiny.refine_start_scale == 1.0  # no scale in its card
    tiny.refine_start_scale = 0.05
    try:
        assert tiny.encode(frame, refine=5) == want[0.05]
    finally:
        tiny.refine_start_scale = 1.0
    default = compressor.load("vit.default")
    assert default.card.card["refine_start_scale"] == default.refine_start_scale == 0.25  # distilled: wide margins


# --- flips: greedy bit-flip rounds ------------------------------------------------------------------
def _frames_tensor(frame):
    rng = np.random.default_rng(1)
    frames = np.stack([frame, rng.integers(0, 256, frame.shape, dtype=np.uint8), frame[::-1].copy()])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (3, 3, 128, 256)


def test_flip_rounds_are_never_worse_and_touch_only_the_least_sure_bits(tiny, frame):
    from compressor.search import FLIP_CANDIDATES, FLIP_SHARE, flip_symbols

    x = _frames_tensor(frame)
    model = tiny.model
    with torch.inference_mode():
        y = model.encode_latent(x).float()  # (3, 14, 8, 16)
    plain = model.encode_symbols(x)
    rounds = 3
    flipped = flip_symbols(model, x, rounds=rounds)
    assert flipped.dtype == torch.uint8 and flipped.shape == plain.shape
    before, after = _decoded_error(model, plain, x), _decoded_error(model, flipped, x)
    assert torch.all(after <= before) and after.sum() < before.sum()
    changed = (flipped != plain).flatten(1)  # (3, 1792)
    bits = changed.shape[1]
    assert changed.sum(1).max() <= rounds * round(FLIP_SHARE * bits) and changed.any()
    margin = y.abs().flatten(1)
    threshold = margin.kthvalue(round(FLIP_CANDIDATES * bits), dim=1, keepdim=True).values
    assert not (changed & (margin > threshold)).any()  # confident bits are never flipped


def test_flips_stop_once_no_frame_has_a_flip_left(tiny, frame, monkeypatch):
    from compressor import search

    x = _frames_tensor(frame)
    passes = []
    real = search._decode_keeping_best
    monkeypatch.setattr(search, "_decode_keeping_best", lambda *a, **k: passes.append(1) or real(*a, **k))
    endless = search.flip_symbols(tiny.model, x, rounds=10**9)
    # each round flips up to 16 of the 179 candidate bits, each bit once: at most 12 rounds can flip any
    assert len(passes) <= 13
    assert torch.equal(endless, search.flip_symbols(tiny.model, x, rounds=len(passes)))


def test_zero_rounds_is_the_plain_code_and_flips_reach_the_file(tiny, frame):
    from compressor.search import flip_symbols

    x = torch.from_numpy(frame[None]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(flip_symbols(tiny.model, x, rounds=0), tiny.model.encode_symbols(x))
    assert tiny.encode(frame, flips=0) == tiny.encode(frame)
    bf16 = tiny.decode_precision == "bf16"
    want = tiny._pack(flip_symbols(tiny.model, x, rounds=2, bf16=bf16)[0].numpy(), frame.shape[:2])
    assert tiny.encode(frame, flips=2) == want != tiny.encode(frame)


def test_flipped_files_decode_at_any_size_and_through_tiles(tiny, frame):
    odd = frame[:100, :200]
    big = np.random.default_rng(3).integers(0, 256, (160, 300, 3), dtype=np.uint8)  # coded in windows
    for image in (frame, odd, big):
        data = tiny.encode(image, flips=2)
        out = np.asarray(tiny.decode(data))
        assert out.shape == image.shape
        assert psnr(image, out) >= psnr(image, np.asarray(tiny.decode(tiny.encode(image)))) - 0.01
    assert bitstream.unpack(tiny.encode(big, flips=1))[0].tiled


def test_flips_and_refine_are_one_or_the_other(tiny, frame, tmp_path):
    with pytest.raises(ValueError, match="choose one"):
        tiny.encode(frame, refine=3, flips=1)
    with pytest.raises(ValueError):
        tiny.encode(frame, flips=-1)
    src = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(frame).save(src)
    for argv in (["--refine", "3", "--flips", "1"], ["--flips", "-1"]):
        with pytest.raises(SystemExit) as e:
            compress_main([str(src), str(tmp_path / "a.bin"), *argv])
        assert e.value.code == 2 and not (tmp_path / "a.bin").exists()
    assert compress_main([str(src), str(tmp_path / "a.bin"), "--flips", "1", "--model", "vit.default", "-q"]) == 0
    assert compressor.decode((tmp_path / "a.bin").read_bytes()).size == (256, 128)


# --- rate-aware flips: error + rate_weight * bits under the context tables ---------------------------
def test_rate_aware_flips_trade_error_for_bits_and_never_lose_on_their_score(tiny_ctx, frame):
    from compressor.context_rate import ContextRate
    from compressor.search import flip_symbols

    x = _frames_tensor(frame)
    model = tiny_ctx.model
    rate = ContextRate(tiny_ctx.card.context_tables["spatial"])
    plain = model.encode_symbols(x)
    weight = 1e-4  # large: bits matter more than error here
    chosen = flip_symbols(model, x, rounds=4, rate=rate, rate_weight=weight)

    def score(symbols):
        with torch.inference_mode():
            out = model.decode_symbols(symbols, tuple(x.shape[-2:])).clamp(0, 1)
        return (out - x).pow(2).mean(dim=(1, 2, 3)) + weight * rate.bits(symbols)

    assert torch.all(score(chosen) <= score(plain) + 1e-7)
    assert torch.all(rate.bits(chosen) <= rate.bits(plain)) and rate.bits(chosen).sum() < rate.bits(plain).sum()
    assert torch.equal(flip_symbols(model, x, rounds=4, rate=rate, rate_weight=0.0), flip_symbols(model, x, rounds=4))


def test_rate_aware_refinement_descends_error_plus_weighted_bits(tiny, frame):
    """refine_symbols with a differentiable rate (here: every symbol costs -log2 P, P(1) = 0.1): the kept
    code is never worse than the encoder's by error + weight * bits, and it is cheaper."""
    x = _frames_tensor(frame)
    model = tiny.model
    cost = torch.tensor([-np.log2(0.9), -np.log2(0.1)])  # bits of a 0, of a 1

    def rate(signed):  # (B, C, h, w) in {-1, +1}, differentiable -> (B,) bits
        ones = (signed + 1) / 2
        return (ones * cost[1] + (1 - ones) * cost[0]).flatten(1).sum(1)

    def score(symbols):
        return _decoded_error(model, symbols, x) + weight * rate(symbols.float() * 2 - 1)

    plain = model.encode_symbols(x)
    weight = 2e-4  # large: bits matter more than error here
    chosen = refine_symbols(model, x, steps=10, rate=rate, rate_weight=weight)
    assert torch.all(score(chosen) <= score(plain) + 1e-7)
    assert rate(chosen.float() * 2 - 1).sum() < rate(plain.float() * 2 - 1).sum()
    assert torch.equal(refine_symbols(model, x, steps=10, rate=rate, rate_weight=0.0), refine_symbols(model, x, steps=10))


def test_rate_weight_reaches_the_file_and_needs_flips_and_tables(tiny_ctx, tiny, frame):
    small = tiny_ctx.encode(frame, flips=4, rate_weight=1e-4)
    assert len(small) <= len(tiny_ctx.encode(frame, flips=4))
    assert np.asarray(tiny_ctx.decode(small)).shape == frame.shape
    with pytest.raises(ValueError, match="flips"):
        tiny_ctx.encode(frame, rate_weight=1e-6)
    with pytest.raises(ValueError, match="no context tables"):
        tiny.encode(frame, flips=1, rate_weight=1e-6)


def test_compress_takes_a_rate_weight_only_with_flips(tiny_ctx_path, frame, tmp_path):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(frame).save(src)
    out = tmp_path / "a.bin"
    assert compress_main([str(src), str(out), "--model", str(tiny_ctx_path), "--rate-weight", "1e-6"]) == 1
    assert not out.exists()
    with pytest.raises(SystemExit) as e:
        compress_main([str(src), str(out), "--model", str(tiny_ctx_path), "--flips", "2", "--rate-weight", "-1"])
    assert e.value.code == 2 and not out.exists()
    argv = [str(src), str(out), "--model", str(tiny_ctx_path), "--flips", "2", "--rate-weight", "1e-4", "-q"]
    assert compress_main(argv) == 0
    assert out.read_bytes() == compressor.load(tiny_ctx_path).encode(frame, flips=2, rate_weight=1e-4)
