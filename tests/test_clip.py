"""Clip archives: the format (compressor.clip), random access, damage, and compress/decompress/info."""
import io
import json
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compressor import clip
from compressor.cli import compress_main, compressor_main, decompress_main
from tests.test_tokens import decoded_frames, make_clip


def build(records, interval=4, fps=20.0) -> bytes:
    f = io.BytesIO()
    w = clip.ClipWriter(f, clip.ClipHeader(0xABCD, 128, 256, fps, interval))
    for kind, payload in records:
        w.add(kind, payload)
    w.close()
    return f.getvalue()


RECORDS = [(clip.CHANNEL, bytes([i]) * (10 + i)) for i in range(9)] + [(clip.RAW, bytes(224))]


def test_format_round_trip():
    data = build(RECORDS)
    assert data[:4] == clip.MAGIC and data[0] != 0xCF and data[-4:] == clip.END_MAGIC
    reader = clip.ClipReader(io.BytesIO(data))
    h = reader.header
    assert (h.model_id, h.height, h.width, h.fps, h.keyframe_interval, h.frames) == (0xABCD, 128, 256, 20.0, 4, 10)
    assert [reader.record(i) for i in range(10)] == RECORDS
    assert [reader.keyframe_at_or_before(i) for i in (0, 3, 4, 9)] == [0, 3, 4, 9]  # no temporal records
    temporal = clip.ClipReader(io.BytesIO(build([(clip.CHANNEL, b"a")] + [(clip.TEMPORAL, b"b")] * 6)))
    assert [temporal.keyframe_at_or_before(i) for i in (0, 3, 4, 6)] == [0, 0, 4, 4]  # K = 4 bounds the chain
    overhead = clip.HEADER_SIZE + clip.TRAILER_SIZE + 10 * (clip.RECORD_HEADER_SIZE + 2)
    assert len(data) == overhead + sum(len(p) for _, p in RECORDS)


def test_damaged_record_damages_only_itself():
    data = bytearray(build(RECORDS))
    reader = clip.ClipReader(io.BytesIO(bytes(data)))
    data[int(reader.offsets[3]) + 5] ^= 0x10
    reader = clip.ClipReader(io.BytesIO(bytes(data)))
    with pytest.raises(clip.DamagedRecord, match="damaged"):
        reader.record(3)
    assert [reader.record(i) for i in range(10) if i != 3] == [r for i, r in enumerate(RECORDS) if i != 3]


def test_swapped_records_are_caught():
    """Each record's check covers its frame number, so records moved to another place fail."""
    data = bytearray(build([(clip.CHANNEL, b"x" * 20), (clip.CHANNEL, b"y" * 20)]))
    start = clip.HEADER_SIZE
    rec = clip.RECORD_HEADER_SIZE + 20
    data[start : start + 2 * rec] = data[start + rec : start + 2 * rec] + data[start : start + rec]
    reader = clip.ClipReader(io.BytesIO(bytes(data)))
    with pytest.raises(clip.DamagedRecord):
        reader.record(0)


def _reindex(data: bytes, lengths, count=None) -> bytes:
    """Replace the index and trailer with ones for `lengths` (valid CRC), to build hostile files."""
    n = len(lengths) if count is None else count
    reader_n = int.from_bytes(data[-12:-8], "big")
    body = data[: len(data) - clip.TRAILER_SIZE - 2 * reader_n]
    index = np.asarray(lengths, ">u2").tobytes()
    return body + index + n.to_bytes(4, "big") + zlib.crc32(index + n.to_bytes(4, "big")).to_bytes(4, "big") + clip.END_MAGIC


@pytest.mark.parametrize("damage, match", [
    (lambda d: d[:3], "bad magic"),
    (lambda d: d[:12], "truncated clip archive"),  # the magic intact, the header cut
    (lambda d: d[:10] + bytes([d[10] ^ 1]) + d[11:], "header"),
    (lambda d: d[:-1], "no index"),
    (lambda d: d[:-14] + bytes([d[-14] ^ 1]) + d[-13:], "index"),
    (lambda d: d[:-20], "index|no index"),
    (lambda d: _reindex(d, [40] * 10), "do not fill"),  # index pointing past the records
    (lambda d: _reindex(d, [2] * 10), "shorter than"),
    (lambda d: _reindex(d, [10] * 10, count=10**6), "does not fit|header says"),
    (lambda d: _reindex(d, [], count=0), "header says"),
])
def test_damaged_header_or_index_refused(damage, match):
    with pytest.raises(clip.ClipError, match=match):
        clip.ClipReader(io.BytesIO(damage(build(RECORDS))))


def test_zero_frame_clip_refused():
    f = io.BytesIO()
    w = clip.ClipWriter(f, clip.ClipHeader(1, 128, 256, None, 30))
    with pytest.raises(clip.ClipError, match="at least one frame"):
        w.close()
    body = clip.ClipHeader(1, 128, 256, None, 30, 0).pack()
    data = body + (0).to_bytes(4, "big") + zlib.crc32((0).to_bytes(4, "big")).to_bytes(4, "big") + clip.END_MAGIC
    with pytest.raises(clip.ClipError, match="no frames"):
        clip.ClipReader(io.BytesIO(data))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_never_crashes(data):
    """Random byte changes, cuts and insertions: a ClipError, a DamagedRecord, or the right records."""
    blob = bytearray(build(RECORDS))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del blob[pos : pos + data.draw(st.integers(1, 40))]
        else:
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=40))
    try:
        reader = clip.ClipReader(io.BytesIO(bytes(blob)))
    except clip.ClipError:
        return
    assert len(reader) <= 2 * len(RECORDS) + 100
    for i in range(len(reader)):
        try:
            kind, payload = reader.record(i)
        except clip.ClipError:
            continue
        assert kind in clip.KIND_NAMES


# --- through the codec and the CLI -----------------------------------------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=14)


def _frames_dir(path):
    from PIL import Image

    return {p.name: np.asarray(Image.open(p)) for p in sorted(path.iterdir())}


def test_clip_round_trip_and_random_access(tmp_path, video, tiny, tiny_path, capsys):
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_path), "--keyframe-interval", "5", "-q"]) == 0
    reader = clip.ClipReader(open(archive, "rb"))
    assert len(reader) == 14 and reader.header.keyframe_interval == 5 and reader.header.fps == 20.0
    assert max(reader.record_size(i) for i in range(14)) <= clip.RECORD_HEADER_SIZE + 224

    full = tmp_path / "full"
    assert decompress_main([str(archive), str(full), "--model", str(tiny_path), "-q"]) == 0
    frames = _frames_dir(full)
    assert len(frames) == 14
    want = tiny.from_tokens(tiny.tokens(decoded_frames(video)))
    assert all(np.array_equal(frames[f"frame_{i:06d}.png"], want[i]) for i in range(14))

    capsys.readouterr()
    assert decompress_main([str(archive), str(tmp_path / "nope"), "-q"]) == 1  # not a shipped model: say which
    assert "not a shipped model" in capsys.readouterr().err
    part2 = tmp_path / "part2"
    assert decompress_main([str(archive), str(part2), "--frames", "7:11", "--model", str(tiny_path), "-q"]) == 0
    got = _frames_dir(part2)
    assert sorted(got) == [f"frame_{i:06d}.png" for i in range(7, 11)]
    assert all(np.array_equal(got[k], frames[k]) for k in got)

    mkv = tmp_path / "part.mkv"
    assert decompress_main([str(archive), str(mkv), "--frames", ":3", "--model", str(tiny_path), "-q"]) == 0
    assert np.array_equal(decoded_frames(mkv), want[:3])

    capsys.readouterr()
    assert compressor_main(["info", str(archive), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 14 and info["fps"] == 20.0 and info["keyframe_interval"] == 5
    assert info["bytes"] == archive.stat().st_size and info["bytes_per_frame"] == round(info["bytes"] / 14, 2)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(archive.read_bytes()[:-9])  # the index's end lost: one line naming the file
    assert compressor_main(["info", str(cut)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cut}: truncated or damaged clip archive" in err


def test_clip_from_a_folder(tmp_path, tiny, tiny_path, frame):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(frame, 8 * i, axis=1)).save(folder / f"{i:03d}.png")
    archive = tmp_path / "c.bin"
    assert compress_main([str(folder), str(archive), "--model", str(tiny_path), "--fps", "10", "-q"]) == 0
    out = tmp_path / "out"
    assert decompress_main([str(archive), str(out), "--model", str(tiny_path), "-q"]) == 0
    got = _frames_dir(out)
    want = tiny.from_tokens(tiny.tokens([np.roll(frame, 8 * i, axis=1) for i in range(3)]))
    assert all(np.array_equal(got[f"frame_{i:06d}.png"], want[i]) for i in range(3))
    header = clip.ClipReader(open(archive, "rb")).header
    assert header.fps == 10.0 and header.keyframe_interval == 10  # the default K: random access decodes <= 10 records


def _decompress_damaged(archive, offset: int, flip: int, model, capsys):
    """XOR byte `offset` of `archive` with `flip` into bad.bin beside it, decompress that into a folder
    `out` beside it (which must report the damage: exit status 1) -> (bad.bin, out, stderr)."""
    data = bytearray(archive.read_bytes())
    data[offset] ^= flip
    bad, out = archive.parent / "bad.bin", archive.parent / "out"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    assert decompress_main([str(bad), str(out), "--model", str(model), "-q"]) == 1
    return bad, out, capsys.readouterr().err


def test_damaged_frame_is_named_and_the_rest_written(tmp_path, video, tiny_path, capsys):
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_path), "-q"]) == 0
    reader = clip.ClipReader(io.BytesIO(archive.read_bytes()))
    bad, out, err = _decompress_damaged(archive, int(reader.offsets[6]) + 10, 0xFF, tiny_path, capsys)
    assert "frame 6: damaged record" in err and "Traceback" not in err
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 13 and "frame_000006.png" not in names
    video_out = tmp_path / "out.mkv"
    assert decompress_main([str(bad), str(video_out), "--model", str(tiny_path), "-q"]) == 1
    frames = decoded_frames(video_out)
    assert len(frames) == 14 and (frames[6] == 128).all()


@pytest.mark.parametrize("case", ["header", "index", "range", "same", "nonempty", "zero_frames", "format", "image",
                                  "refine", "weight_alone", "weight_no_tables", "no_tile", "no_overlap"])
def test_clip_cli_errors_one_line(tmp_path, video, tiny_path, capsys, case):
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_path), "-q"]) == 0
    data = archive.read_bytes()
    out = tmp_path / "out"
    if case == "header":
        archive.write_bytes(data[:8] + bytes([data[8] ^ 4]) + data[9:])
        argv, main = [str(archive), str(out), "--model", str(tiny_path)], decompress_main
    elif case == "index":
        archive.write_bytes(data[:-16] + bytes([data[-16] ^ 4]) + data[-15:])
        argv, main = [str(archive), str(out), "--model", str(tiny_path)], decompress_main
    elif case == "range":
        argv, main = [str(archive), str(out), "--frames", "10:99", "--model", str(tiny_path)], decompress_main
    elif case == "same":
        argv, main = [str(video), str(video), "--model", str(tiny_path)], compress_main
    elif case == "nonempty":
        out.mkdir()
        (out / "keep").write_text("x")
        argv, main = [str(archive), str(out), "--model", str(tiny_path)], decompress_main
    elif case == "zero_frames":
        empty = tmp_path / "empty"
        empty.mkdir()
        argv, main = [str(empty), str(tmp_path / "e.bin"), "--model", str(tiny_path)], compress_main
    elif case == "format":
        argv, main = [str(archive), str(tmp_path / "out.webm"), "--model", str(tiny_path)], decompress_main
    elif case in ("refine", "weight_alone", "weight_no_tables", "no_tile", "no_overlap"):  # what a clip does not take
        extra = {"refine": ["--refine", "2"], "weight_alone": ["--rate-weight", "1e-5"],
                 "weight_no_tables": ["--flips", "1", "--rate-weight", "1e-5"], "no_tile": ["--no-tile"],
                 "no_overlap": ["--no-overlap"]}[case]
        argv, main = [str(video), str(tmp_path / "c2.bin"), "--model", str(tiny_path), *extra], compress_main
    else:  # one image cannot hold a clip
        argv, main = [str(archive), str(tmp_path / "out.png"), "--model", str(tiny_path)], decompress_main
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert case == "nonempty" or not out.exists()


def test_info_still_describes_bin_files(tmp_path, tiny, frame, capsys):
    path = tmp_path / "a.bin"
    path.write_bytes(tiny.encode(frame))
    assert compressor_main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == "128x256"


# --- temporal records (a checkpoint with context tables) -------------------------------------------
def test_frame_coding_round_trip_all_kinds():
    from compressor.clip_coding import decode_frame, encode_frame
    from tests.conftest import fitted_tables, structured_symbols

    tables, cdf = fitted_tables(), np.array([[0, 30000, 65536]] * 14, np.int32)
    prev = structured_symbols(1)
    for symbols, p in ((structured_symbols(1), prev), (structured_symbols(2), None), (prev ^ 1, prev)):
        kind, payload = encode_frame(symbols, cdf, tables, p)
        assert len(payload) <= 224
        assert np.array_equal(decode_frame(kind, payload, cdf, symbols.shape, tables, p), symbols)
    kind, payload = encode_frame(prev, cdf, tables, prev)  # the same frame again: temporal is shortest
    assert kind == clip.TEMPORAL
    with pytest.raises(clip.ClipError, match="previous frame"):
        decode_frame(kind, payload, cdf, prev.shape, tables, None)
    with pytest.raises(clip.ClipError, match="no temporal table"):
        decode_frame(kind, payload, cdf, prev.shape, None, prev)


def test_temporal_clip_random_access_and_damage(tmp_path, tiny_ctx, tiny_ctx_path, capsys):
    video = make_clip(tmp_path / "still.mp4", frames=10, motion=0)
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    reader = clip.ClipReader(open(archive, "rb"))
    kinds = [reader.kind(i) for i in range(10)]
    assert all(kinds[i] != clip.TEMPORAL for i in (0, 4, 8)) and clip.TEMPORAL in kinds
    full = tmp_path / "full"
    assert decompress_main([str(archive), str(full), "--model", str(tiny_ctx_path), "-q"]) == 0
    frames = _frames_dir(full)
    want = tiny_ctx.from_tokens(tiny_ctx.tokens(decoded_frames(video)))
    assert all(np.array_equal(frames[f"frame_{i:06d}.png"], want[i]) for i in range(10))
    for a, b in ((6, 7), (5, 9), (3, 5)):
        part = tmp_path / f"part{a}"
        assert decompress_main([str(archive), str(part), "--frames", f"{a}:{b}", "--model", str(tiny_ctx_path), "-q"]) == 0
        got = _frames_dir(part)
        assert sorted(got) == [f"frame_{i:06d}.png" for i in range(a, b)] and all(np.array_equal(got[k], frames[k]) for k in got)

    first_temporal = kinds.index(clip.TEMPORAL, 4)
    _, out, err = _decompress_damaged(archive, int(reader.offsets[first_temporal]) + 3, 0x01, tiny_ctx_path, capsys)
    lost = [first_temporal]  # and the temporal records after it, up to the next record coded alone
    while lost[-1] + 1 < 10 and kinds[lost[-1] + 1] == clip.TEMPORAL:
        lost.append(lost[-1] + 1)
    assert f"frame {first_temporal}: damaged record" in err and "Traceback" not in err
    names = {p.name for p in out.iterdir()}
    assert names == {f"frame_{i:06d}.png" for i in range(10) if i not in lost}  # from the next keyframe on, fine


def test_searched_clips_decode_and_the_rate_weight_makes_them_smaller(tmp_path, tiny_ctx, tiny_ctx_path):
    """`compress clip --flips R [--rate-weight W]`: records of the searched codes, which decode like any
    clip; a large weight under the temporal table gives fewer bytes than the plain archive."""
    video = make_clip(tmp_path / "slow.mp4", frames=10, motion=1)
    sizes = {}
    for name, extra in (("plain", []), ("flips", ["--flips", "2"]), ("rate", ["--flips", "2", "--rate-weight", "1e-3"])):
        archive = tmp_path / f"{name}.bin"
        argv = [str(video), str(archive), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q", *extra]
        assert compress_main(argv) == 0
        out = tmp_path / name
        assert decompress_main([str(archive), str(out), "--model", str(tiny_ctx_path), "-q"]) == 0
        assert len(_frames_dir(out)) == 10
        sizes[name] = archive.stat().st_size
    assert sizes["rate"] < sizes["plain"]


def test_the_clip_search_scores_each_frame_under_the_table_its_record_uses(tiny_ctx, frame):
    """flip_clip_symbols: keyframes under the spatial table, the others under the temporal one given the
    previous frame's plain code; each frame's code never scores worse than its plain code there."""
    import torch

    from compressor.context_model import TEMPORAL
    from compressor.context_rate import ContextRate
    from compressor.search import flip_clip_symbols, flip_symbols

    frames = np.stack([np.roll(frame, 4 * i, axis=1) for i in range(4)])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    model, tables = tiny_ctx.model, tiny_ctx._tables.arrays
    latent = model.encode_latent(model.pad(x)).detach()
    keyframe = torch.tensor([True, False, False, True])
    weight = 1e-4
    codes = flip_clip_symbols(model, x, rounds=3, latent=latent, keyframe=keyframe, tables=tables, rate_weight=weight)
    plain = (latent >= 0).to(torch.uint8)
    for i in range(4):
        rate = (ContextRate(tables["spatial"]) if keyframe[i] else
                ContextRate(tables["temporal"], layout=TEMPORAL, prev=plain[i - 1 : i].expand(2, -1, -1, -1)))
        with torch.inference_mode():
            out = model.decode_symbols(torch.stack([codes[i], plain[i]]), (128, 256)).clamp(0, 1)
        score = (out - x[i]).pow(2).mean(dim=(1, 2, 3)) + weight * rate.bits(torch.stack([codes[i], plain[i]]))
        assert score[0] <= score[1] + 1e-7
    assert torch.equal(flip_clip_symbols(model, x, rounds=3, latent=latent, keyframe=keyframe),
                       flip_symbols(model, x, rounds=3, latent=latent))
    with pytest.raises(ValueError, match="off a keyframe"):
        flip_clip_symbols(model, x[1:], rounds=1, latent=latent[1:], keyframe=keyframe[1:], tables=tables, rate_weight=weight)


def test_seeded_fuzz_run_has_no_crash_or_hang():
    """A short run of `tests/fuzz_clip.py` (the long one runs under a memory limit)."""
    from compressor.context_model import Tables
    from tests.conftest import fitted_tables
    from tests.fuzz_clip import run

    result = run(np.array([[0, 30000, 65536]] * 14, np.int32), Tables(fitted_tables()), iterations=600, seed=1, hang_s=30.0)
    assert result["crashes"] == 0 and result["hangs"] == 0, result["crash_examples"]
    assert result["rejected"] > 0 and result["opened"] > 0


def test_clip_of_the_checkpoint_before_its_tables_still_decodes(tmp_path, tiny_ctx, tiny_ctx_path):
    """Context tables change a checkpoint's id, not its network: a clip written under the legacy id decodes."""
    plain = tiny_ctx_path.with_name(tiny_ctx_path.stem + "-plain.safetensors")  # conftest.make_context_release
    video = make_clip(tmp_path / "v.mp4", frames=4)
    archive = tmp_path / "c.bin"
    assert compress_main([str(video), str(archive), "--model", str(plain), "-q"]) == 0
    assert clip.ClipReader(open(archive, "rb")).header.model_id == tiny_ctx.card.legacy_model_id
    a, b = tmp_path / "a", tmp_path / "b"
    assert decompress_main([str(archive), str(a), "--model", str(plain), "-q"]) == 0
    assert decompress_main([str(archive), str(b), "--model", str(tiny_ctx_path), "-q"]) == 0
    assert _frames_dir(a).keys() == _frames_dir(b).keys()
    assert all(np.array_equal(x, y) for x, y in zip(_frames_dir(a).values(), _frames_dir(b).values()))


def test_fuzzing_archives_with_net_records_finds_no_crash_or_hang():
    from compressor.context_model import Tables
    from compressor.context_net import ContextNet
    from tests.conftest import fitted_net, fitted_tables
    from tests.fuzz_clip import run, seed_records

    cdf, tables, net = np.array([[0, 30000, 65536]] * 14, np.int32), Tables(fitted_tables()), ContextNet(fitted_net())
    assert clip.NET in {kind for kind, _ in seed_records(cdf, tables, net=net)}
    result = run(cdf, tables, iterations=150, seed=2, hang_s=30.0, net=net)
    assert result["crashes"] == 0 and result["hangs"] == 0, result["crash_examples"]
    assert result["rejected"] > 0 and result["opened"] > 0


def test_clip_of_the_checkpoint_before_its_net_still_decodes(tmp_path, tiny_net, tiny_net_path):
    """A context net changes a checkpoint's id, not its tables: a clip written under the table id decodes,
    and a clip of the net's checkpoint decodes the same frames."""
    tables_only = tiny_net_path.with_name(tiny_net_path.stem + "-tables.safetensors")  # conftest.make_net_release
    video = make_clip(tmp_path / "v.mp4", frames=4)
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    assert compress_main([str(video), str(old), "--model", str(tables_only), "-q"]) == 0
    assert compress_main([str(video), str(new), "--model", str(tiny_net_path), "-q"]) == 0
    assert clip.ClipReader(open(old, "rb")).header.model_id == tiny_net.card.table_model_id
    outs = {}
    for name, archive, model in (("a", old, tables_only), ("b", old, tiny_net_path), ("c", new, tiny_net_path)):
        assert decompress_main([str(archive), str(tmp_path / name), "--model", str(model), "-q"]) == 0
        outs[name] = _frames_dir(tmp_path / name)
    assert outs["a"].keys() == outs["b"].keys() == outs["c"].keys()
    for x in ("b", "c"):
        assert all(np.array_equal(p, q) for p, q in zip(outs["a"].values(), outs[x].values()))
