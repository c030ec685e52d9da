"""The Python API: every input type, sizes, batching, the raw fallback and model identity."""
import numpy as np
import pytest
import torch
from PIL import Image

import compressor
from compressor import bitstream
from compressor.errors import BitstreamError, ImageError, ModelMismatchError


def test_each_input_type_gives_the_same_bytes(tiny, frame, tmp_path):
    path = tmp_path / "frame.png"
    Image.fromarray(frame).save(path)
    expected = tiny.encode(frame)
    assert compressor.encode(path, model=tiny) == expected
    assert compressor.encode(str(path), model=tiny) == expected
    assert compressor.encode(Image.fromarray(frame), model=tiny) == expected
    tensor = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    assert compressor.encode(tensor, model=tiny) == expected
    assert compressor.encode(frame.astype(np.float32) / 255, model=tiny) == expected
    # uint8 tensors are 0-255, in torchvision.io.read_image's (3, H, W) layout
    assert compressor.encode(torch.from_numpy(frame).permute(2, 0, 1), model=tiny) == expected


def test_floats_on_another_scale_are_refused_not_clipped_to_white(tiny, frame):
    for bad in (frame.astype(np.float64), torch.from_numpy(frame).permute(2, 0, 1).float(),
                frame.astype(np.float32) / 255 - 1):
        with pytest.raises(ImageError, match=r"\[0, 1\]"):
            tiny.encode(bad)
    # a network's small overshoot is still clipped, as before
    over = frame.astype(np.float32) / 255 * 1.02 - 0.01
    assert tiny.encode(over) == tiny.encode(np.clip(np.round(over * 255), 0, 255).astype(np.uint8))


def test_decode_takes_a_path_and_refuses_what_is_not_bytes(tiny_path, frame, tmp_path):
    codec = compressor.load(tiny_path)
    data = codec.encode(frame)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    expected = np.asarray(codec.decode(data))
    for source in (path, str(path), bytearray(data), memoryview(data)):
        assert np.array_equal(np.asarray(compressor.decode(source, model=codec)), expected)
    with pytest.raises(BitstreamError, match="not found"):
        compressor.decode(tmp_path / "missing.bin", model=codec)
    with pytest.raises(TypeError, match="bytes or a path"):
        compressor.decode(12, model=codec)  # bytes(12) would be twelve zero bytes
    with pytest.raises(TypeError, match="list of images"):
        codec.encode_batch(str(path))
    with pytest.raises(TypeError, match="list of .bin"):
        codec.decode_batch(data)


def test_decode_returns_pil_at_original_size(tiny, frame):
    for h, w in [(128, 256), (37, 53), (1, 1), (200, 17)]:
        img = frame[:h, :w] if h <= 128 and w <= 256 else np.resize(frame, (h, w, 3))
        out = compressor.decode(tiny.encode(img), model=tiny)
        assert isinstance(out, Image.Image) and out.size == (w, h) and out.mode == "RGB"


def test_a_128x256_frame_never_exceeds_224_payload_bytes_in_a_5_byte_header(tiny):
    rng = np.random.default_rng(0)
    for _ in range(5):
        data = tiny.encode(rng.integers(0, 256, (128, 256, 3), dtype=np.uint8))
        header, payload = bitstream.unpack(data)
        assert len(data) - len(payload) == 5 and header.version == 4 and header.standard
        assert len(payload) <= 224 and len(data) <= 229
    other = bitstream.unpack(tiny.encode(rng.integers(0, 256, (128, 255, 3), dtype=np.uint8)))[0]
    assert not other.standard and other.version in (1, 2, 3)  # any other size: the 8-byte header


def test_raw_fallback_when_coding_would_not_pay(tiny, frame):
    # Force symbols the skewed table finds improbable: every channel's unlikely symbol.
    improbable = (tiny._cdf[:, 1] < 32768).astype(np.uint8) ^ 1  # (14,)
    symbols = np.repeat(improbable[:, None, None], 128, axis=1).reshape(14, 8, 16)
    data = tiny._pack(symbols, (128, 256))
    header, payload = bitstream.unpack(data)
    assert header.raw and len(payload) == 224
    decoded, size = tiny.decode_symbols(data)
    np.testing.assert_array_equal(decoded, symbols)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compress_decompress_equals_eval_forward(tiny_path, frame, precision):
    from compressor.model import load_model
    from compressor.codec import Codec
    from compressor.layers import cpu_attention_path

    codec = Codec(*load_model(tiny_path), decode_precision=precision)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    symbols = codec.model.encode_symbols(x)
    # Decoding runs attention on the CPU path (bf16 only; float32 keeps the fused kernel either way).
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"), cpu_attention_path():
        expected = codec.model.decode_symbols(symbols, (128, 256))
    expected = (expected * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    got = np.asarray(codec.decode(codec.encode(frame)))
    np.testing.assert_array_equal(got, expected)


def test_bf16_decode_is_within_rounding_of_fp32(tiny_path, frame):
    from compressor.model import load_model
    from compressor.codec import Codec

    fp32 = Codec(*load_model(tiny_path), decode_precision="fp32")
    bf16 = Codec(*load_model(tiny_path), decode_precision="bf16")
    data = fp32.encode(frame)
    assert bf16.encode(frame) == data  # the encoder is float32 in both (the tiny card does not ask for bf16)
    diff = np.abs(np.asarray(fp32.decode(data), np.int16) - np.asarray(bf16.decode(data), np.int16))
    assert diff.mean() < 2 and diff.max() <= 16


def test_encode_precision_follows_the_card_where_the_cpu_has_bf16_units(tiny_path, frame, monkeypatch):
    """auto: bf16 only for a card that asks for it, on a CPU with bf16 units; explicit values override."""
    import compressor.codec as codec_module
    from compressor.layers import cpu_attention_path
    from compressor.model import load_model
    from compressor.codec import Codec

    def codec(card_says=None, **kw):
        model, card = load_model(tiny_path)
        if card_says:
            card.card["encode_precision"] = card_says
        return Codec(model, card, **kw)

    frames = [np.random.default_rng(i).integers(0, 256, (128, 256, 3), dtype=np.uint8) for i in range(8)]
    fp32 = codec(encode_precision="fp32")
    bf16 = codec(encode_precision="bf16")
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), cpu_attention_path():
        want = fp32.model.encode_symbols(x).numpy()
    got = np.stack([bf16.encode_symbols(f) for f in frames])
    np.testing.assert_array_equal(got, want)  # the encoder under bf16 autocast, attention as decoding runs it
    # The tiny model's margins are small: bf16 rounding moves some signs, so the bytes tell the two apart.
    assert bf16.encode_batch(frames) != fp32.encode_batch(frames)
    np.testing.assert_array_equal(np.stack([bf16.decode_symbols(d)[0] for d in bf16.encode_batch(frames)]), want)
    for fast in (True, False):
        monkeypatch.setattr(codec_module, "fast_bf16", lambda device=None: fast)
        assert codec("bf16").encode_precision == ("bf16" if fast else "fp32")
        assert codec().encode_precision == "fp32"  # a card that does not ask stays float32
        assert codec("bf16", encode_precision="fp32").encode_precision == "fp32"
    with pytest.raises(ValueError, match="encode_precision"):
        codec(encode_precision="fp16")


def test_batch_equals_single(tiny, frame):
    frames = [frame, frame[::-1].copy(), frame[:, ::-1].copy(), frame[:64, :100].copy()]
    batch = tiny.encode_batch(frames)
    assert batch == [tiny.encode(f) for f in frames]
    decoded = tiny.decode_batch_arrays(batch)
    for d, data in zip(decoded, batch):
        np.testing.assert_array_equal(d, np.asarray(tiny.decode(data)))


def test_other_weights_refuse_the_file(tiny, other_path, frame):
    other = compressor.load(other_path)
    assert other.model_id != tiny.model_id
    with pytest.raises(ModelMismatchError, match="written by model"):
        other.decode(tiny.encode(frame))


def test_unknown_model_id_without_model_is_refused(tiny, frame):
    with pytest.raises(ModelMismatchError, match=r"not a shipped model.*decompress --model.*model=FILE"):
        compressor.decode(tiny.encode(frame))


def test_damaged_files_are_refused(tiny, frame):
    data = tiny.encode(frame)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            tiny.decode(data[:n])
    rng = np.random.default_rng(0)
    for _ in range(200):
        damaged = bytearray(data)
        damaged[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        try:
            out = tiny.decode(bytes(damaged))
        except BitstreamError:
            continue
        assert out.size == (256, 128)  # the rare undetected damage still yields the right size


def test_bad_images_give_image_errors(tiny, tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError, match="cannot read"):
        tiny.encode(tmp_path / "text.png")
    with pytest.raises(ImageError, match="not found"):
        tiny.encode(tmp_path / "missing.png")
    with pytest.raises(ImageError):
        tiny.encode(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError):
        tiny.encode(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="limit"):
        tiny.encode(np.zeros((4096, 4097, 3), np.uint8))


def test_grayscale_rgba_and_16_bit_inputs(tiny, frame, tmp_path):
    gray = frame[:, :, 0]
    assert tiny.encode(gray) == tiny.encode(np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.concatenate([frame, np.full((128, 256, 1), 7, np.uint8)], axis=2)
    assert tiny.encode(Image.fromarray(rgba, "RGBA")) == tiny.encode(frame)
    sixteen = tmp_path / "g16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(sixteen)
    assert tiny.encode(sixteen) == tiny.encode(gray)


def test_metadata(tiny):
    assert tiny.architecture == {"encoder": "vit", "decoder": "vit"}
    assert tiny.parameters > 0 and tiny.name == "tiny"
    assert f"{tiny.model_id:04x}" in repr(tiny)


def test_devices_are_checked_with_a_clear_error(tiny_path):
    from compressor.codec import check_device

    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        check_device("meta")
    with pytest.raises(ValueError, match="not a device"):
        check_device("gpu0")
    if not torch.cuda.is_available():  # a CompressorError, as every user error of the library is
        with pytest.raises(compressor.CompressorError, match="sees no CUDA GPU"):
            compressor.load(tiny_path, device="cuda")
    assert compressor.load(tiny_path, device="cpu") is compressor.load(tiny_path)  # one cache entry per device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_files_move_between_cpu_and_gpu(tiny_path):
    """GPU-written files decode on the CPU and back, within rounding; sizes and batching as on the CPU."""
    from compressor.metrics import psnr

    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (128, 256, 3), dtype=np.uint8) for _ in range(40)]
    frames.append(rng.integers(0, 256, (300, 700, 3), dtype=np.uint8))  # overlapping windows
    cpu, gpu = compressor.load(tiny_path), compressor.load(tiny_path, device="cuda")
    assert gpu.batch > cpu.batch
    for writer, reader in ((cpu, gpu), (gpu, cpu)):
        datas = writer.encode_batch(frames)
        for f, data, a, b in zip(frames, datas, writer.decode_batch_arrays(datas), reader.decode_batch_arrays(datas)):
            assert a.shape == b.shape == f.shape
            assert abs(psnr(f, a) - psnr(f, b)) < 0.05
    same = [c == g for c, g in zip(cpu.encode_batch(frames), gpu.encode_batch(frames))]
    assert np.mean(same) > 0.5  # float32 on both: most frames give the very same bytes
    refined = gpu.encode(frames[0], refine=3)
    assert psnr(frames[0], np.asarray(cpu.decode(refined))) >= psnr(frames[0], np.asarray(cpu.decode(cpu.encode(frames[0])))) - 0.05


def test_the_cpu_is_named_with_the_vector_units_its_speed_depends_on():
    from compressor.device import cpu_name, vector_units

    assert vector_units({"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16"}) == "AMX"
    assert vector_units({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 BF16"
    assert vector_units({"avx2", "avx512f"}) == "AVX-512"
    assert vector_units({"sse2", "avx2"}) == "AVX2"
    assert vector_units({"neon"}) == ""
    assert cpu_name() and "\n" not in cpu_name()
