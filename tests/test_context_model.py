"""Context-adaptive coding: bit-exact round trips, format version 2, legacy ids, hostile payloads, fitting."""
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from compressor import bitstream, context_model, entropy_coder
from compressor.errors import BitstreamError, ModelError, ModelMismatchError
from tests.conftest import REPO, fitted_tables, structured_symbols

DATA = REPO / "tests" / "data"
TABLES = fitted_tables()
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def latents(draw, channels=14):
    """uint8 symbols (C, h, w) of any small grid: structured, biased noise or both."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**31))
    if draw(st.booleans()):
        return structured_symbols(seed, (channels, h, w), flip=draw(st.floats(0, 0.5)))
    return (np.random.default_rng(seed).random((channels, h, w)) < draw(st.floats(0, 1))).astype(np.uint8)


@PROPERTY
@given(symbols=latents(), prev_seed=st.integers(0, 2**31))
def test_round_trip_is_exact_spatial_and_temporal(symbols, prev_seed):
    payload = context_model.encode(symbols, TABLES)
    assert np.array_equal(context_model.decode(payload, TABLES, symbols.shape), symbols)
    prev = (np.random.default_rng(prev_seed).random(symbols.shape) < 0.5).astype(np.uint8)
    payload = context_model.encode(symbols, TABLES, prev=prev)
    assert np.array_equal(context_model.decode(payload, TABLES, symbols.shape, prev=prev), symbols)


def test_structured_symbols_cost_less_than_the_per_channel_table_and_ideal_length_matches():
    symbols = structured_symbols(1000)
    payload = context_model.encode(symbols, TABLES)
    cdf = np.array([[0, 32768, 65536]] * 14, np.int32)  # today's table at its best for balanced channels
    assert len(payload) < 0.8 * len(entropy_coder.encode(symbols, cdf))
    assert abs(len(payload) - context_model.code_bits(symbols, TABLES) / 8) <= 4


def test_temporal_table_uses_the_previous_frame():
    prev = structured_symbols(2000)
    cur = prev ^ (np.random.default_rng(0).random(prev.shape) < 0.03).astype(np.uint8)
    assert len(context_model.encode(cur, TABLES, prev=prev)) < 0.6 * len(context_model.encode(cur, TABLES))


def test_decoding_many_frames_together_equals_one_by_one():
    frames = [structured_symbols(i) for i in range(5)]
    prevs = [structured_symbols(10 + i) for i in range(5)]
    tables = context_model.Tables(TABLES)
    for p in (None, prevs):
        payloads = [context_model.encode(f, tables, prev=None if p is None else p[k]) for k, f in enumerate(frames)]
        together = context_model.decode_many(payloads, tables, (14, 8, 16), p)
        assert all(np.array_equal(a, b) for a, b in zip(together, frames))
    with pytest.raises(BitstreamError):
        context_model.decode_many([payloads[0], payloads[1][:-3]], tables, (14, 8, 16), prevs[:2])


def test_wavefront_order_decodes_in_c_plus_h_plus_w_minus_2_steps():
    g = context_model._geometry((14, 8, 16), context_model.SPATIAL)
    assert len(g.starts) - 1 == 36 and g.starts[-1] == 14 * 8 * 16


def test_layout_terms_must_be_decoded_before_their_symbol():
    with pytest.raises(ValueError, match="not decoded before"):
        context_model.Layout("bad", (("cur", (0, -1, 1)),))


def test_tables_are_uint16_in_range_and_smoothed_toward_the_channel():
    t = TABLES["spatial"]
    assert t.dtype == np.uint16 and t.shape == (14, 3**7) and t.min() >= 1
    only_ones = context_model.fit_tables([np.ones((14, 4, 4), np.uint8)])
    assert only_ones.min() >= 1  # clamped to 65535: 65536 would wrap to 0 in uint16, an impossible 1
    assert only_ones[0, 0] > 60000  # an unseen context (all neighbours 0) gets its channel's P(1)


def test_wrong_shapes_and_values_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        context_model.encode(np.zeros((14, 2, 2), np.int64), TABLES)
    with pytest.raises(ValueError, match="only 0 and 1"):
        context_model.encode(np.full((14, 2, 2), 3, np.uint8), TABLES)
    with pytest.raises(ValueError, match="prev has shape"):
        context_model.encode(np.zeros((14, 2, 2), np.uint8), TABLES, prev=np.zeros((14, 2, 3), np.uint8))
    with pytest.raises(BitstreamError, match="3 channels, the latent 14"):
        context_model.decode(b"", {"spatial": TABLES["spatial"][:3]}, (14, 2, 2))
    with pytest.raises(BitstreamError, match="expected uint16"):
        context_model.decode(b"", {"spatial": TABLES["spatial"].astype(np.int32)}, (14, 2, 2))
    with pytest.raises(ValueError, match="no temporal table"):
        context_model.encode(np.zeros((14, 2, 2), np.uint8), {"spatial": TABLES["spatial"]}, prev=np.zeros((14, 2, 2), np.uint8))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=300), temporal=st.booleans())
def test_garbage_payloads_give_symbols_or_bitstream_error(payload, temporal):
    prev = structured_symbols(5) if temporal else None
    try:
        out = context_model.decode(payload, TABLES, (14, 8, 16), prev=prev)
    except BitstreamError:
        return
    assert out.shape == (14, 8, 16) and out.dtype == np.uint8 and out.max() <= 1


def test_truncated_payloads_are_refused_or_decode_to_the_right_shape():
    symbols = structured_symbols(7)
    payload = context_model.encode(symbols, TABLES)
    refused = 0
    for n in range(len(payload)):
        try:
            assert context_model.decode(payload[:n], TABLES, symbols.shape).shape == symbols.shape
        except BitstreamError:
            refused += 1
    assert refused >= len(payload) // 2


# --- the codec: version 2 files -------------------------------------------------------------------
def test_a_checkpoint_without_tables_writes_per_channel_or_raw_only(tiny, frame):
    header, _ = bitstream.unpack(tiny.encode(frame))
    assert header.coding in ("channel", "raw") and tiny.card.context_tables is None and tiny.card.legacy_model_id is None
    header, _ = bitstream.unpack(tiny.encode(frame[:, :255]))  # not the standard frame: version 1
    assert header.version == 1


@PROPERTY
@given(symbols=latents())
def test_codec_keeps_the_shortest_payload_never_over_raw(tiny_ctx, symbols):
    data = tiny_ctx._pack(symbols, (16 * symbols.shape[1], 16 * symbols.shape[2]))
    header, payload = bitstream.unpack(data)
    lengths = [len(entropy_coder.encode(symbols, tiny_ctx._cdf)), len(context_model.encode(symbols, TABLES))]
    assert len(payload) == min(*lengths, entropy_coder.raw_size(symbols.size))
    assert len(payload) <= entropy_coder.raw_size(symbols.size)
    assert header.version == (4 if header.standard else 2 if header.context else 1)
    assert np.array_equal(tiny_ctx.decode_symbols(data)[0], symbols)


def test_structured_latent_is_coded_with_the_context_table(tiny_ctx):
    data = tiny_ctx._pack(structured_symbols(3), (128, 256))
    assert bitstream.unpack(data)[0].coding == "context" and data[1] >> 4 == 4 and len(data) < 5 + 180
    data = tiny_ctx._pack(structured_symbols(3, (14, 8, 15)), (128, 240))
    assert data[1] >> 4 == 2 and len(data) < 8 + 180


def test_model_id_covers_the_tables_and_legacy_id_serves_per_channel_files_only(tiny, tiny_ctx, frame, tmp_path):
    from compressor.checkpoint import save_with_context

    assert tiny_ctx.card.legacy_model_id == tiny.model_id != tiny_ctx.model_id
    v1_old = tiny.encode(frame)  # written before the tables existed
    assert np.array_equal(tiny_ctx.decode_symbols(v1_old)[0], tiny.decode_symbols(v1_old)[0])
    v2 = tiny_ctx._pack(structured_symbols(3), (128, 256))  # the table's coding, in a version-4 header
    header, payload = bitstream.unpack(v2)
    for standard in (False, True):  # a version-2 or version-4 header with the legacy id
        forged = bitstream.pack(dataclasses.replace(header, model_id=tiny.model_id, standard=standard), payload)
        with pytest.raises(ModelMismatchError):
            tiny_ctx.decode_symbols(forged)
    # Refitted tables give a new id: files of the old tables are refused, not garbled.
    refit = {k: np.clip(v.astype(np.int64) + 1000, 1, 65535).astype(np.uint16) for k, v in TABLES.items()}
    other = tmp_path / "refit.safetensors"
    save_with_context(tiny_ctx.card.path, other, refit, {})
    import compressor

    refitted = compressor.load(other)
    assert refitted.card.legacy_model_id == tiny.model_id and refitted.model_id != tiny_ctx.model_id
    with pytest.raises(ModelMismatchError):
        refitted.decode_symbols(v2)
    assert np.array_equal(refitted.decode_symbols(v1_old)[0], tiny.decode_symbols(v1_old)[0])


def test_tampered_tables_are_refused_on_load(tiny_ctx_path, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from compressor.model import load_model

    with safe_open(str(tiny_ctx_path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    table = tensors["context.spatial"].numpy().copy()
    table[0, 0] += 1
    tensors["context.spatial"] = torch.from_numpy(table)
    bad = tmp_path / "tampered.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(ModelError, match="model id"):
        load_model(bad)


def test_mutated_version_2_files_are_refused_or_decode(tiny_ctx):
    from tests.fuzz_decode import fix_check, mutate, one_input

    data = tiny_ctx._pack(structured_symbols(4), (128, 256))
    rng = np.random.default_rng(0)
    outcomes = {one_input(tiny_ctx, fix_check(mutate(data, rng))) for _ in range(200)}
    assert outcomes <= {"decoded", "rejected"} and "rejected" in outcomes


SCRIPT = """
import hashlib, sys, torch, numpy as np, compressor
torch.set_num_threads(int(sys.argv[1]))
codec = compressor.load(sys.argv[2])
rng = np.random.default_rng(0)
frames = [np.kron(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8)) for _ in range(33)]
files = codec.encode_batch(frames)
symbols = [codec.decode_symbols(f)[0].tobytes() for f in files]
print(sorted({f[1] >> 4 for f in files}), hashlib.sha256(b"".join(files) + b"".join(symbols)).hexdigest())
"""


def test_one_and_two_threads_and_batch_sizes_give_identical_bytes(tiny_ctx, tiny_ctx_path):
    outs = {subprocess.run([sys.executable, "-c", SCRIPT, str(t), str(tiny_ctx_path)], capture_output=True, text=True,
                           check=True).stdout for t in (1, 2)}
    assert len(outs) == 1
    rng = np.random.default_rng(0)
    frames = [np.kron(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8)) for _ in range(33)]
    assert tiny_ctx.encode_batch(frames) == [tiny_ctx.encode(f) for f in frames]


# --- files written before the context tables ----------------------------------------------------------
def _reference():
    return json.loads((DATA / "v1-reference.json").read_text())


def test_version_1_files_of_the_default_decode_bit_identically():
    import compressor
    from compressor.codec import Codec

    codec = compressor.load()
    fp32 = Codec(codec.model, codec.card, decode_precision="fp32")
    for name, ref in _reference().items():
        data = (DATA / name).read_bytes()
        assert data[1] >> 4 == 1 and len(data) == ref["bytes"]
        writer = int.from_bytes(data[2:4], "big")
        assert codec.card.accepts(writer, 1)
        symbols, _ = codec.decode_symbols(data)
        assert hashlib.sha256(np.ascontiguousarray(symbols).tobytes()).hexdigest() == ref["symbols_sha256"]
        assert np.asarray(compressor.decode(data)).shape == (128, 256, 3)  # found by its (legacy) id
        if writer in codec.card.former_model_ids:
            continue  # a later decoder reads the writer's symbols: its pixels are its own
        # Pixels: float32 decoding orders its sums by the CPU's kernels (AVX-512 against AMX machines), so
        # a pixel may round the other way; the symbols above are what is exact everywhere.
        pixels = fp32.decode_batch_arrays([data])[0].astype(np.int16)
        want = np.asarray(Image.open(DATA / ref["fp32_pixels"])).astype(np.int16)
        assert np.abs(pixels - want).max() <= 1 and (pixels == want).mean() > 0.99


def test_new_tables_on_the_default_drop_the_files_of_the_coding_it_carried(tmp_path):
    """fit-context's rewrite, rehearsed on a copy of the default: the network's own id is kept as the legacy
    id; files of a checkpoint whose coding it carried (`former_model_ids`) are refused once the coding
    changes, rather than decoded with the wrong tables."""
    import compressor
    from compressor.checkpoint import save_with_context
    from compressor.errors import ModelMismatchError

    default = compressor.load()
    if not default.card.former_model_ids:
        pytest.skip("the shipped default carries no other checkpoint's coding")
    path = tmp_path / "with-tables.safetensors"
    save_with_context(default.card.path, path, TABLES, {})
    codec = compressor.load(path)
    assert not codec.card.former_model_ids and codec.card.legacy_model_id == default.card.legacy_model_id
    former = [DATA / n for n in _reference() if int.from_bytes((DATA / n).read_bytes()[2:4], "big")
              in default.card.former_model_ids]
    assert former  # the v1 reference files were written by the former default
    for path in former:
        assert default.decode_symbols(path.read_bytes()) is not None
        with pytest.raises(ModelMismatchError):
            codec.decode_symbols(path.read_bytes())


def test_shipped_default_with_tables_writes_smaller_files():
    import compressor

    codec = compressor.load()
    if codec.card.context_tables is None:
        pytest.skip("the shipped default has no context tables yet (compressor fit-context)")
    data = codec.encode(REPO / "examples" / "kodim23.png")
    assert len(data) <= 229 and data[1] >> 4 in (1, 2, 3, 4)
    assert len(data) <= _reference()["v1-kodim23.bin"]["bytes"]


# --- fitting --------------------------------------------------------------------------------------
def test_sequence_pairs_follow_frame_numbers():
    from compressor.context_fit import sequence_pairs

    names = ["a_0010.jpg", "a_0012.jpg", "a_0014.jpg", "a_0020.jpg", "b_seq_000001_leftImg8bit.jpg",
             "b_seq_000002_leftImg8bit.jpg", "single_123.jpg"]
    files = [Path("/d") / n for n in names]
    pairs = {(files[i].name, files[j].name, k) for i, j, k in sequence_pairs(files)}
    assert pairs == {("a_0010.jpg", "a_0012.jpg", 1), ("a_0012.jpg", "a_0014.jpg", 1), ("a_0010.jpg", "a_0014.jpg", 2),
                     ("b_seq_000001_leftImg8bit.jpg", "b_seq_000002_leftImg8bit.jpg", 1)}


def test_fit_context_cli_writes_a_new_checkpoint_and_refuses_bad_input(tiny_path, tmp_path, capsys):
    from PIL import Image

    import compressor
    from compressor.checkpoint import read_card
    from compressor.cli import compressor_main

    folder = tmp_path / "seqs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    for i in range(6):
        Image.fromarray(np.roll(base, i, axis=1)).resize((300, 150), Image.BILINEAR).save(folder / f"clip_{i:04d}.png")
    out = tmp_path / "fitted.safetensors"
    before = tiny_path.read_bytes()
    assert compressor_main(["fit-context", str(tiny_path), "--images", str(folder), "--out", str(out)]) == 0
    assert tiny_path.read_bytes() == before
    card = read_card(out)
    entry = card.card["context"]
    assert entry["spatial"]["frames"] == 6 and entry["temporal"]["pairs"] == 5 + 4
    assert entry["folders"] == [f"{tmp_path.name}/seqs"] and str(tmp_path) not in json.dumps(card.card)
    assert card.legacy_model_id == compressor.load(tiny_path).model_id != card.model_id
    assert compressor.load(out).card.context_tables["temporal"].shape == (14, 3**7)
    capsys.readouterr()
    for argv, message in (
        ([str(tiny_path), "--images", str(folder), "--out", str(tiny_path)], "pass --in-place"),
        ([str(tiny_path), "--images", str(folder)], "give --out"),
        ([str(tiny_path), "--images", str(tmp_path / "nope"), "--out", str(out)], "not found"),
        ([str(tiny_path), "--images", str(folder), "--out", str(tmp_path / "x.bin")], ".safetensors"),
        ([str(tiny_path), "--images", str(folder), "--out", str(out), "--exclude", "*"], "no frames"),
    ):
        assert compressor_main(["fit-context", *argv]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert tiny_path.read_bytes() == before


def test_fit_context_on_photos_fits_no_temporal_table(tiny_path, tmp_path, capsys):
    """A folder without numbered sequences (photos) gets the spatial table alone; its clips code every frame
    alone and decode."""
    from PIL import Image

    import compressor
    from compressor.cli import compress_main, compressor_main, decompress_main

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("beach", "city", "forest"):
        Image.fromarray(rng.integers(0, 256, (150, 300, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    recorded = tmp_path / "recorded.safetensors"  # a card with results, as `eval --record` leaves it
    recorded.write_bytes(tiny_path.read_bytes())
    assert compressor_main(["eval", str(folder), "--model", str(recorded), "--record", "photos"]) == 0
    out = tmp_path / "fitted.safetensors"
    assert compressor_main(["fit-context", str(recorded), "--images", str(folder), "--out", str(out)]) == 0
    assert "no temporal table" in capsys.readouterr().out
    from compressor.checkpoint import read_card

    assert read_card(recorded).card["results"]["photos"] and not read_card(out).card["results"]  # the old coding's
    codec = compressor.load(out)
    assert codec.card.card["context"]["temporal"] is None and set(codec.card.context_tables) == {"spatial"}
    assert codec.name == "fitted"  # its own name, not its seed's
    archive, back = tmp_path / "c.bin", tmp_path / "back"
    assert compress_main([str(folder), str(archive), "--model", str(out), "-q"]) == 0
    assert decompress_main([str(archive), str(back), "--model", str(out), "-q"]) == 0
    assert len(list(back.iterdir())) == 3


def test_frames_keeps_runs_of_consecutive_files():
    from compressor.context_fit import RUN, select_files

    files = [Path(f"/d/x_{i:04d}.jpg") for i in range(100)]
    kept = select_files(files, 20, [])
    assert len(kept) == 20 and kept == sorted(kept) and kept[:RUN] == files[:RUN] and kept[RUN] != files[RUN]
    assert select_files(files, None, ["x_000*"]) == files[10:]


def test_info_and_decompress_read_version_2_files(tiny_ctx, tiny_ctx_path, tmp_path, capsys):
    from PIL import Image

    from compressor.cli import compressor_main, decompress_main

    path = tmp_path / "v2.bin"
    path.write_bytes(tiny_ctx._pack(structured_symbols(3), (128, 256)))
    assert compressor_main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == 4 and info["payload"] == "context-coded" and info["bytes"] == path.stat().st_size
    assert info["header_bytes"] == 5
    assert decompress_main([str(path), str(tmp_path / "v2.png"), "--model", str(tiny_ctx_path)]) == 0
    assert Image.open(tmp_path / "v2.png").size == (256, 128)
