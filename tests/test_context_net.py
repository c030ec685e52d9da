"""The context net: integer inference, bit-exact round trips, format version 3, old files, hostile payloads."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressor import bitstream, context_net, context_net_fit, entropy_coder
from compressor.errors import BitstreamError, ModelMismatchError
from tests.conftest import REPO, fitted_net, structured_symbols

NET = context_net.ContextNet(fitted_net())
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def latents(draw):
    h, w = draw(st.integers(1, 10)), draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2**31))
    if draw(st.booleans()):
        return structured_symbols(seed, (14, h, w), flip=draw(st.floats(0, 0.5)))
    return (np.random.default_rng(seed).random((14, h, w)) < draw(st.floats(0, 1))).astype(np.uint8)


@PROPERTY
@given(symbols=latents())
def test_round_trip_is_exact_on_any_grid(symbols):
    payload = context_net.encode(symbols, NET)
    assert np.array_equal(context_net.decode(payload, NET, symbols.shape), symbols)


def test_decoding_together_is_decoding_one_by_one():
    frames = [structured_symbols(i, flip=0.1) for i in range(33)]
    payloads = [context_net.encode(f, NET) for f in frames]
    together = context_net.decode_many(payloads, NET, (14, 8, 16))
    assert all(np.array_equal(a, b) for a, b in zip(together, frames))
    assert context_net.decode_many([], NET, (14, 8, 16)) == []


def test_coding_together_is_coding_one_by_one(monkeypatch, tiny_ctx):
    """Batched encoding (the codec's and the clip writer's path) writes each frame's own bytes, in passes of
    any size, and picks each frame's record as `encode_frame` alone does."""
    from compressor.clip import CONTEXT, NET as NET_RECORD, RAW, TEMPORAL
    from compressor.clip_coding import encode_frame, encode_frames

    frames = [structured_symbols(i, flip=0.1) for i in range(33)]
    alone = [context_net.encode(f, NET) for f in frames]
    assert context_net.encode_many(frames, NET) == alone
    monkeypatch.setattr(context_net, "TOKENS_PER_PASS", 3 * 8 * 16)  # passes of three frames
    assert context_net.encode_many(np.stack(frames), NET) == alone
    assert context_net.encode_many([], NET) == []
    with pytest.raises(ValueError, match="one latent shape"):
        context_net.encode_many([frames[0], frames[0][:, :4]], NET)

    cdf, tables = tiny_ctx._cdf, tiny_ctx._tables  # a real checkpoint's per-channel, context and temporal tables
    assert tables.arrays.get("temporal") is not None
    rng = np.random.default_rng(1)
    base = [structured_symbols(i, flip=f) for i, f in enumerate([0.03, 0.1, 0.03, 0.2, 0.0])]
    moved = [b ^ (rng.random(b.shape) < 0.01).astype(np.uint8) for b in base[::2]]  # 1% of bits changed
    mixed = base[:3] + moved[:2] + [structured_symbols(40, (14, 4, 6), flip=0.2)] + base[3:]  # one other shape
    prevs = [None, None, None, base[0], base[2], None, None, None]
    one_by_one = [encode_frame(s, cdf, tables, p, NET) for s, p in zip(mixed, prevs)]
    assert {kind for kind, _ in one_by_one} == {RAW, TEMPORAL, NET_RECORD}  # beside a net, the table is not tried
    assert encode_frames(mixed, cdf, tables, prevs, NET) == one_by_one
    without_net = [encode_frame(s, cdf, tables, p) for s, p in zip(mixed, prevs)]
    assert {kind for kind, _ in without_net} == {RAW, CONTEXT, TEMPORAL} and encode_frames(mixed, cdf, tables, prevs) == without_net
    assert encode_frames(mixed, cdf, None, None, NET) == [encode_frame(s, cdf, None, None, NET) for s in mixed]
    with pytest.raises(ValueError, match="previous frames"):
        encode_frames(mixed, cdf, tables, prevs[:2], NET)


def test_integer_net_codes_as_the_float_net_predicts():
    """Quantisation costs almost nothing: ideal bits of the integer net within 1% of the float twin's."""
    arrays = np.stack([structured_symbols(i, flip=0.03) for i in range(60)])
    fnet = context_net_fit.train(arrays[:40], steps=60, batch=512)
    inet = context_net.ContextNet(context_net_fit.quantise(fnet))
    x, own = context_net_fit.token_data(arrays[40:])
    with torch.no_grad():
        float_bits = torch.nn.functional.binary_cross_entropy_with_logits(
            fnet(x, own), (own > 0).float(), reduction="sum").item() / np.log(2)
    int_bits = sum(context_net.code_bits(inet, a) for a in arrays[40:])
    assert int_bits == pytest.approx(float_bits, rel=0.01)
    assert int_bits < 0.7 * arrays[40:].size  # structured symbols: well under a bit each


def test_a_temporal_twin_reads_the_previous_frame():
    """The temporal twin (docs/scripts/temporal_net_probe.py) sees the previous frame's window: on frames
    that mostly repeat their previous frame it codes in far fewer bits than the spatial twin."""
    rng = np.random.default_rng(0)
    prev = (rng.random((48, 14, 8, 16)) < 0.5).astype(np.uint8)  # no spatial structure at all
    cur = prev ^ (rng.random(prev.shape) < 0.05).astype(np.uint8)  # 5% of bits change
    x, own = context_net_fit.token_data(cur[32:], prev[32:])
    assert x.shape == (16 * 8 * 16, 17 * 14)

    def bits(net, x):
        with torch.no_grad():
            return torch.nn.functional.binary_cross_entropy_with_logits(
                net(x, own), (own > 0).float(), reduction="sum").item() / np.log(2)

    temporal = context_net_fit.train(cur[:32], prev=prev[:32], steps=150, batch=1024)
    spatial = context_net_fit.train(cur[:32], steps=150, batch=1024)
    assert bits(temporal, x) < 0.5 * cur[32:].size < 0.9 * bits(spatial, x[:, : 8 * 14])


def _integer_probabilities(t: dict, symbols: np.ndarray) -> np.ndarray:
    """The net of the module docstring in int64 arithmetic, each table indexed by floor(acc * 2^k + offset)
    clipped to the table: P(1) (C, h, w) of every cell of one frame given all its contexts (the encoder's view)."""
    t = {k: np.asarray(v).astype(np.int64) for k, v in t.items()}
    e1, e2, em, eo = (int(e) for e in t["exponents"])
    channels, h, w = symbols.shape

    def index(acc, k, half_range):  # floor(acc * 2^k + half_range + 1/2), exactly, by integer shifts
        i = (acc << k) + half_range if k >= 0 else (acc + (half_range << -k) + (1 << (-k - 1))) >> -k
        return np.clip(i, 0, 2 * half_range - 1)

    grid = context_net._signed(symbols[None], np.int64)
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    x = context_net._features(grid, context_net._neighbour_index(ii, jj, w))  # (hw, 8C)
    own = grid[0][:, ii + 2, jj + 2].T  # (hw, C)
    act = t["act"]
    h1 = act[index(x @ t["w1"].T + t["b1"], 6 - e1, 2048)]
    hid = act[index(h1 @ t["w2"].T + t["b2"], 6 - e2 - 8, 2048)]
    earlier = t["groups"][None, :] < t["groups"][:, None]  # (C, C'): what channel c reads of its token
    chain = np.einsum("ckd,nd->nck", t["prev"] * earlier[:, None, :], own)  # (hw, C, K)
    pre = (hid @ t["mix"].T + t["mix_bias"]).reshape(len(x), channels, -1) + chain
    z = act[index(pre, 6 - em - 8, 2048)]
    logit = z @ t["out"] + hid @ t["head"].T + t["out_bias"]
    return (t["sigmoid"][index(logit, 5 - eo - 8, 512)] / 65536).T.reshape(channels, h, w)


def test_float_arithmetic_gives_the_integer_nets_probabilities():
    """ContextNet folds each layer's power-of-two scale and table offset into its weights and biases and
    computes in floats (the first layer in float32 where its sums fit, the rest in float64): every
    probability equals the integer definition's, for a fitted net, the default's, and the default's with
    a first layer scaled past float32's exact range."""
    import compressor

    default = compressor.load("vit.default").card.context_net
    wide = dict(default, exponents=np.array([-4, *np.asarray(default["exponents"])[1:]], np.int32))
    assert context_net.ContextNet(default).x_dtype == np.float32
    assert context_net.ContextNet(wide).x_dtype == np.float64
    for tensors in (fitted_net(), default, wide):
        net = context_net.ContextNet(tensors)
        for seed, shape in [(0, (14, 8, 16)), (1, (14, 3, 5)), (2, (14, 12, 20))]:
            symbols = structured_symbols(seed, shape, flip=0.2)
            order = context_net._order(shape, net.groups).flat
            expected = _integer_probabilities(tensors, symbols).reshape(-1)[order]
            assert np.array_equal(context_net.probabilities(net, symbols[None])[0], expected)


def test_accumulators_stay_exact_and_bad_nets_are_refused():
    tensors = fitted_net()
    context_net.check_exact(tensors)  # bounds below 2^50
    big = dict(tensors, w2=np.full_like(tensors["w2"], 2047), act=np.full(tensors["act"].shape, 2**40, np.int64))
    with pytest.raises(ValueError, match="exact"):
        context_net.check_exact(big)
    with pytest.raises(BitstreamError, match="exact"):  # refused on load too: decoding could not be exact
        context_net.ContextNet(big)
    with pytest.raises(BitstreamError, match="exponents"):  # sums exact, but scaled by 2^46 they would not be
        context_net.ContextNet(dict(tensors, exponents=np.array([-40, 10, 10, 10], np.int32)))
    with pytest.raises(BitstreamError, match="missing"):
        context_net.ContextNet({k: v for k, v in tensors.items() if k != "w1"})
    with pytest.raises(BitstreamError, match="do not fit"):
        context_net.ContextNet(dict(tensors, head=tensors["head"][:5]))
    with pytest.raises(BitstreamError, match="sigmoid"):
        context_net.ContextNet(dict(tensors, sigmoid=np.zeros_like(tensors["sigmoid"])))


def test_hostile_payloads_decode_or_fail_cleanly():
    rng = np.random.default_rng(0)
    good = context_net.encode(structured_symbols(1), NET)
    for payload in [b"", b"\x00", good[:-3], good + b"\x01\x02\x03\x04", bytes(rng.integers(0, 256, 300, dtype=np.uint8))]:
        try:
            out = context_net.decode(payload, NET, (14, 8, 16))
        except BitstreamError:
            continue
        assert out.shape == (14, 8, 16) and out.dtype == np.uint8


_SCRIPT = """
import hashlib, sys, numpy as np
from compressor import context_net
from tests.conftest import structured_symbols
net = context_net.ContextNet(dict(np.load(sys.argv[1])))
frames = [structured_symbols(i, (14, 16, 24), flip=0.2) for i in range(32)]
p = context_net.probabilities(net, np.stack(frames))
one = np.concatenate([context_net.probabilities(net, f[None]) for f in frames])
assert np.array_equal(p, one)
sys.stdout.write(hashlib.sha256(p.tobytes()).hexdigest())
"""


def test_probabilities_are_bit_identical_across_threads_and_batch_sizes(tmp_path):
    import os

    np.savez(tmp_path / "net.npz", **fitted_net())  # one net: training it again on other threads may differ
    runs = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        runs.add(subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "net.npz")], cwd=REPO, env=env,
                                capture_output=True, text=True, check=True).stdout)
    assert len(runs) == 1 and len(next(iter(runs))) == 64


def test_the_net_codes_on_one_blas_thread(monkeypatch):
    """encode_many and decode_many run numpy's BLAS on one thread (a spinning second thread slowed the
    torch pass after them), and leave the setting as they found it."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    trunk = context_net.ContextNet.trunk

    def watched(self, x):
        seen.append(blas_threads())
        return trunk(self, x)

    monkeypatch.setattr(context_net.ContextNet, "trunk", watched)
    frames = [structured_symbols(i, flip=0.1) for i in range(4)]
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        payloads = context_net.encode_many(frames, NET)
        decoded = context_net.decode_many(payloads, NET, (14, 8, 16))
        after = blas_threads()
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames))
    assert len(seen) > 1 and all(s <= {1} for s in seen) and after == before


def test_snapping_flips_only_unsure_bits_that_the_net_finds_cheaper():
    """context_net.snap: a cell leaves its sign only where the flip saves bits under the net (given the plain
    code) and |y| < c x those bits; c = 0 is the plain code; more c, more flips and fewer bits; any batch."""
    rng = np.random.default_rng(0)
    latent = (np.stack([structured_symbols(i, flip=0.1) for i in range(40)]) * 2.0 - 1) * rng.exponential(2, (40, 14, 8, 16))
    plain = (latent >= 0).astype(np.uint8)
    p = np.empty((40, 14 * 8 * 16))
    p[:, context_net._order((14, 8, 16), NET.groups).flat] = context_net.probabilities(NET, plain)
    p_keep = np.where(plain == 1, p.reshape(plain.shape), 1 - p.reshape(plain.shape))
    saved = np.log2(1 - p_keep) - np.log2(p_keep)
    assert np.array_equal(context_net.snap(NET, latent, 0.0), plain)
    flips, bits = [], []
    for c in (0.5, 2.0, 8.0):
        snapped = context_net.snap(NET, latent, c)
        moved = snapped != plain
        assert np.array_equal(moved, (saved > 0) & (np.abs(latent) < c * saved))
        assert np.array_equal(context_net.snap(NET, latent[3:4], c), snapped[3:4])  # a frame alone, as in a batch
        flips.append(moved.mean())
        bits.append(sum(context_net.code_bits(NET, s) for s in snapped))
    assert 0 < flips[0] < flips[1] < flips[2]
    assert bits[0] < sum(context_net.code_bits(NET, s) for s in plain) and bits[2] < bits[0]


# --- the codec: version 3 ---------------------------------------------------------------------------
def test_codec_writes_the_net_where_it_is_shortest(tiny_net):
    frames = [np.kron(np.random.default_rng(i).integers(0, 256, (8, 16, 3), dtype=np.uint8),
                      np.ones((16, 16, 1), np.uint8)) for i in range(6)]
    datas = tiny_net.encode_batch(frames)
    assert {d[1] >> 4 for d in datas} == {4} and all(len(d) <= 229 for d in datas)
    for d, f in zip(datas, frames):
        header, payload = bitstream.unpack(d)
        symbols, _ = tiny_net.decode_symbols(d)
        assert np.array_equal(symbols, tiny_net.encode_symbols(f))
        if header.net:  # never longer than the per-channel coding (the table is not tried beside a net)
            assert len(payload) <= len(entropy_coder.encode(symbols, tiny_net._cdf))
    assert [np.asarray(x).shape for x in tiny_net.decode_batch(datas)] == [(128, 256, 3)] * 6


def test_files_of_the_tables_alone_still_decode_and_new_ones_need_the_net(tiny_net, tiny_ctx, frame):
    """`fit-context --net --keep-tables`: the checkpoint's table id is the id it had before the net, so
    version-1 and version-2 files written then still decode; a version-3 file under that id is refused."""
    assert tiny_net.card.table_model_id == tiny_ctx.model_id != tiny_net.model_id
    old = tiny_ctx.encode(frame)
    assert np.array_equal(tiny_net.decode_symbols(old)[0], tiny_ctx.decode_symbols(old)[0])
    header, payload = bitstream.unpack(tiny_net._pack(tiny_net.encode_symbols(frame), (128, 256)))
    forged = bitstream.pack(bitstream.Header(tiny_ctx.model_id, 128, 256, raw=False, net=True), payload)
    with pytest.raises(ModelMismatchError):
        tiny_net.decode(forged)
    with pytest.raises(BitstreamError, match="no context net"):
        tiny_ctx.decode(bitstream.pack(bitstream.Header(tiny_ctx.model_id, 128, 256, raw=False, net=True), payload))


def test_a_net_altered_in_the_file_is_refused(tiny_net_path, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from compressor.checkpoint import read_tensors
    from compressor.errors import ModelError

    with safe_open(str(tiny_net_path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["context.net.w1"] = tensors["context.net.w1"].clone()
    tensors["context.net.w1"][0, 0] += 1
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match="altered"):
        read_tensors(tmp_path / "bad.safetensors")


def test_version_3_header_round_trips_and_rejects_raw():
    header = bitstream.Header(0x1234, 128, 256, raw=False, net=True)
    data = bitstream.pack(header, b"abc")
    assert data[1] >> 4 == 3 and bitstream.unpack(data) == (header, b"abc")
    with pytest.raises(ValueError):
        bitstream.Header(0x1234, 128, 256, raw=True, net=True)
    bad = bytearray(data)
    bad[1] |= bitstream.FLAG_RAW
    with pytest.raises(BitstreamError, match="raw flag"):
        bitstream.unpack(bytes(bad))


# --- the shipped models: files written before the net, and with it ----------------------------------
def _reference(version: int = 2):
    return json.loads((REPO / "tests" / "data" / f"v{version}-reference.json").read_text())


def _sha(symbols) -> str:
    return hashlib.sha256(np.ascontiguousarray(symbols).tobytes()).hexdigest()


def _read_clip(codec, path):
    """A clip archive's model id, its coding (tables, net) for this codec, its records and decoded symbols."""
    from compressor.archive import coding_for
    from compressor.clip import ClipReader
    from compressor.clip_coding import decode_frame

    with open(path, "rb") as f:
        reader, prev, records, frames = ClipReader(f), None, [], []
        tables, net = coding_for(codec, reader.header.model_id)
        for i in range(len(reader)):
            records.append(reader.record(i))
            prev = decode_frame(*records[-1], codec._cdf, (14, 8, 16), tables, prev, net)
            frames.append(prev)
    return reader.header.model_id, (tables, net), records, np.stack(frames)


def _as_written_by(data: bytes, model_id: int) -> bytes:
    """A file with its header's model id replaced: the default may be a later checkpoint that carries the
    writer's encoder and coding bit for bit (`ModelCard.former_model_ids`), and then writes the same payload."""
    import dataclasses

    header, payload = bitstream.unpack(data)
    return bitstream.pack(dataclasses.replace(header, model_id=model_id), payload)


def test_version_2_files_and_clips_of_the_default_decode_bit_identically():
    import compressor

    codec = compressor.load()
    for name, ref in _reference().items():
        data = (REPO / "tests" / "data" / name).read_bytes()
        assert len(data) == ref["bytes"]
        if name.endswith("clip.bin"):
            model_id, (_, net), _, symbols = _read_clip(codec, REPO / "tests" / "data" / name)
            assert model_id == int(ref["model_id"], 16)  # written before the net: its id is the table id
            assert net is None or model_id in codec.card.former_model_ids  # (a later default carries that coding)
        else:
            assert data[1] >> 4 == 2 and codec.card.accepts(int.from_bytes(data[2:4], "big"), 2)
            symbols, _ = codec.decode_symbols(data)
            assert np.asarray(compressor.decode(data)).shape == (128, 256, 3)  # found by its table id
        assert _sha(symbols) == ref["symbols_sha256"]


def test_version_3_files_and_clips_of_the_default_decode_and_are_written_again_byte_for_byte():
    """Files the default wrote with its net (tests/data/v3-*): they decode to the same symbols, and coding
    those symbols again gives the same bytes, so a change to the net's integer arithmetic cannot pass."""
    import compressor
    from compressor.clip import KIND_NAMES
    from compressor.clip_coding import encode_frame, encode_frames

    codec = compressor.load()
    for name, ref in _reference(3).items():
        data = (REPO / "tests" / "data" / name).read_bytes()
        assert len(data) == ref["bytes"] and codec.card.accepts(int(ref["model_id"], 16), 3)
        if name.endswith("clip.bin"):
            _, (tables, net), records, symbols = _read_clip(codec, REPO / "tests" / "data" / name)
            assert {KIND_NAMES[k] for k, _ in records} == set(ref["records"]) == {"net", "temporal"}
            prevs = [None] + list(symbols[:-1])
            again = [encode_frame(s, codec._cdf, tables, prev=p, net=net) for s, p in zip(symbols, prevs)]
            assert again == records == encode_frames(list(symbols), codec._cdf, tables, prevs, net)
        else:  # written again: the same payload, now in version 4's 5-byte header (tests/data/v4-*)
            assert data[1] >> 4 == 3
            symbols, size = codec.decode_symbols(data)
            again = _as_written_by(codec._pack(symbols, size), int(ref["model_id"], 16))
            assert again == (REPO / "tests" / "data" / name.replace("v3-", "v4-")).read_bytes()
            assert bitstream.unpack(again)[1] == bitstream.unpack(data)[1] and len(again) == len(data) - 3
        assert _sha(symbols) == ref["symbols_sha256"]


def test_the_defaults_older_clips_and_files_decompress_from_the_command_line(tmp_path):
    """`decompress` of every reference file and clip (written by this default or by a checkpoint whose coding
    it carries): found from the header, decoded to the reference symbols' frames, exit status 0."""
    from PIL import Image

    from compressor.cli import decompress_main

    for version in (2, 3, 4):
        for name, ref in _reference(version).items():
            out = tmp_path / (name.replace(".bin", "") + ("" if name.endswith("clip.bin") else ".png"))
            assert decompress_main([str(REPO / "tests" / "data" / name), str(out), "-q"]) == 0, name
            first = sorted(out.iterdir())[0] if out.is_dir() else out
            assert Image.open(first).size == (256, 128)


def test_version_4_files_of_the_default_decode_and_are_written_again_byte_for_byte():
    """The default's 128x256 files in the 5-byte header (tests/data/v4-*): found from the header alone,
    decoded to the reference symbols, and written again to the same bytes."""
    import compressor

    codec = compressor.load()
    for name, ref in _reference(4).items():
        data = (REPO / "tests" / "data" / name).read_bytes()
        header, _ = bitstream.unpack(data)
        assert len(data) == ref["bytes"] and header.version == 4 and header.coding == "net"
        assert header.model_id == int(ref["model_id"], 16) and codec.card.accepts(header.model_id, 3)
        symbols, size = codec.decode_symbols(data)
        assert size == (128, 256) and _sha(symbols) == ref["symbols_sha256"]
        assert _as_written_by(codec._pack(symbols, size), header.model_id) == data
        assert np.asarray(compressor.decode(data)).shape == (128, 256, 3)  # the model found from the header


def test_every_shipped_model_has_a_net_and_the_default_writes_smaller_files():
    """The five shipped checkpoints got their nets by one recipe (examples/fit_net_shipped.sh), their
    own tables kept; the default's version-3 file of kodim23 is smaller than its version-2 file."""
    import compressor
    from compressor.zoo import shipped_models

    for name in shipped_models():
        card = compressor.load(name).card
        assert card.context_net is not None and card.table_model_id is not None, name
        assert card.card["context"]["net"]["steps"] == 5000 and card.card["context"]["net"]["crops_per_file"] == 3
    data = compressor.load().encode(REPO / "examples" / "kodim23.png")
    assert data[1] == 0x43 and len(data) < _reference()["v2-kodim23.bin"]["bytes"] - 3


def test_fit_context_net_keeps_the_tables_and_their_files(tiny_ctx, tiny_ctx_path, tmp_path, capsys):
    """`fit-context --net --keep-tables` on a folder without sequences: tables bit for bit, the old id kept
    as the table id, a version-3 capable checkpoint; --keep-tables alone is refused in one line."""
    from PIL import Image

    from compressor.checkpoint import read_card
    from compressor.cli import compressor_main

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (150, 300, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    out = tmp_path / "net.safetensors"
    argv = ["fit-context", str(tiny_ctx_path), "--images", str(folder), "--out", str(out), "--net", "--keep-tables",
            "--crops", "1", "--net-steps", "5"]
    assert compressor_main(argv) == 0
    card = read_card(out)
    assert card.table_model_id == tiny_ctx.model_id != card.model_id
    assert card.card["context"]["net"]["frames"] == 8 and card.card["context"]["net"]["crops_per_file"] == 1
    import compressor

    codec = compressor.load(out)
    assert all(np.array_equal(codec.card.context_tables[k], tiny_ctx.card.context_tables[k]) for k in ("spatial", "temporal"))
    old = tiny_ctx.encode(np.asarray(Image.open(folder / "p0.png")))
    assert np.array_equal(codec.decode_symbols(old)[0], tiny_ctx.decode_symbols(old)[0])
    capsys.readouterr()
    assert compressor_main(argv[:-6] + ["--keep-tables"]) == 1  # without --net
    err = capsys.readouterr().err
    assert "give --net" in err and len(err.strip().splitlines()) == 1
