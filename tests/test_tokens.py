"""Tokens: the bit layout, Codec.tokens/from_tokens, `compressor tokens` / `frames`, and the ONNX export."""
import json
import subprocess
import sys

import numpy as np
import pytest

from compressor.cli import compressor_main
from compressor import TokenFileError
from compressor.tokens import symbols_from_tokens, tokens_from_symbols


def make_clip(path, frames: int = 12, size=(128, 256), fps: int = 20, motion: int = 4):
    """A short H.264 clip of a pattern moving `motion` pixels a frame, written with PyAV."""
    import av

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            rgb = np.stack([(xx + motion * t) % 256, (yy * 2) % 256, ((xx // 32 + yy // 32 + motion * t // 4) % 2) * 200 + 20], 2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded_frames(path):
    from compressor.frames import expand_inputs, iter_frames

    return np.stack([f for _, f in iter_frames(expand_inputs([path]), (128, 256))])


def test_layout_bit_k_is_channel_k():
    symbols = np.zeros((1, 14, 8, 16), np.uint8)
    symbols[0, 3, 2, 5] = 1
    symbols[0, 13, 0, 0] = 1
    tokens = tokens_from_symbols(symbols)
    assert tokens.dtype == np.uint16 and tokens.shape == (1, 8, 16)
    assert tokens[0, 2, 5] == 8 and tokens[0, 0, 0] == 1 << 13 and tokens.sum() == 8 + (1 << 13)


def test_symbols_round_trip_and_range_check():
    rng = np.random.default_rng(0)
    symbols = rng.integers(0, 2, (5, 14, 8, 16), dtype=np.uint8)
    assert np.array_equal(symbols_from_tokens(tokens_from_symbols(symbols), 14), symbols)
    with pytest.raises(TokenFileError, match="0..16383"):
        symbols_from_tokens(np.full((1, 8, 16), 1 << 14, np.uint16), 14)


def test_codec_tokens_match_the_bin_path(tiny, frame):
    frames = np.stack([frame, frame[::-1].copy(), frame[:, ::-1].copy()])
    tokens = tiny.tokens(frames)
    assert tokens.shape == (3, 8, 16) and tokens.dtype == np.uint16 and tokens.max() < 1 << 14
    for f, t in zip(frames, tokens):
        assert np.array_equal(symbols_from_tokens(t[None], 14)[0], tiny.encode_symbols(f))
    back = tiny.from_tokens(tokens)
    assert back.shape == (3, 128, 256, 3) and back.dtype == np.uint8
    # the same pixels as decoding the .bin files
    assert np.array_equal(back, np.stack(tiny.decode_batch_arrays(tiny.encode_batch(list(frames)))))


def test_batch_functions_refuse_one_image(tiny, frame, tmp_path):
    """One image is not a batch of its pixel rows (an (H, W, 3) array) or of its channels ((3, H, W))."""
    import torch
    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "a.png")
    one = [str(tmp_path / "a.png"), Image.fromarray(frame), frame, torch.from_numpy(frame).permute(2, 0, 1)]
    for fn in (tiny.tokens, tiny.encode_batch, tiny.symbols_batch):
        for image in one:
            with pytest.raises(TypeError, match="for one image"):
                fn(image)
    assert tiny.tokens(frame[None]).shape == (1, 8, 16)  # (N, H, W, 3) is a batch
    assert tiny.tokens(torch.from_numpy(frame).permute(2, 0, 1)[None]).shape == (1, 8, 16)  # (N, 3, H, W) too


def test_frames_from_symbols_refuses_what_is_not_symbols(tiny):
    for bad in (np.zeros((1, 13, 8, 16), np.uint8), np.zeros((14, 8, 16), np.uint8), np.full((1, 14, 8, 16), 2, np.uint8),
                np.full((1, 14, 8, 16), 0.5, np.float32), np.zeros((1, 14, 0, 16), np.uint8)):
        with pytest.raises(TokenFileError, match="symbols must"):
            tiny.frames_from_symbols(bad)
    assert tiny.frames_from_symbols(np.ones((2, 14, 8, 16), bool).tolist()).shape == (2, 128, 256, 3)
    ones = tiny.frames_from_symbols(np.ones((1, 14, 8, 16), np.uint8))
    assert np.array_equal(tiny.frames_from_symbols(np.ones((1, 14, 8, 16), np.float32)), ones)  # exact 0s and 1s


def test_tokens_refuse_mixed_sizes(tiny, frame):
    from compressor.errors import ImageError

    with pytest.raises(ImageError, match="one size"):
        tiny.tokens([frame, frame[:64]])


def test_cli_tokens_and_frames_round_trip(tmp_path, tiny, tiny_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    for i in range(3):  # 200x300 images: resized to cover 128x256
        Image.fromarray(np.full((200, 300, 3), 40 * i, np.uint8)).save(folder / f"f{i}.png")
    out = tmp_path / "tokens.npy"
    assert compressor_main(["tokens", str(clip), str(folder), "--out", str(out), "--model", str(tiny_path), "-q"]) == 0
    tokens = np.load(out, allow_pickle=False)
    assert tokens.shape == (15, 8, 16) and tokens.dtype == np.uint16
    meta = json.loads((tmp_path / "tokens.json").read_text())
    assert meta["model_id"] == f"{tiny.model_id:04x}" and meta["frame_size"] == [128, 256] and meta["fps"] == 20.0
    assert meta["frames"] == 15 and meta["sources"][0] == {"file": "clip.mp4", "frames": 12}
    assert meta["sources"][1]["images"] == ["f0.png", "f1.png", "f2.png"]
    assert np.array_equal(tokens[:12], tiny.tokens(decoded_frames(clip)))
    capsys.readouterr()
    assert compressor_main(["info", str(out), "--json"]) == 0  # the sidecar's facts, checked against the array
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "token file" and info["frames"] == 15 and info["token_grid"] == "8x16"
    assert info["size"] == "128x256" and info["fps"] == 20.0 and info["model_id"] == f"{tiny.model_id:04x}"

    frames_dir = tmp_path / "frames"
    assert compressor_main(["frames", str(out), "--out", str(frames_dir), "--model", str(tiny_path), "-q"]) == 0
    from PIL import Image

    written = sorted(frames_dir.iterdir())
    assert len(written) == 15 and written[0].name == "frame_000000.png"
    assert np.array_equal(np.asarray(Image.open(written[4])), tiny.from_tokens(tokens[4:5])[0])
    video = tmp_path / "back.mkv"  # FFV1: lossless, so the frames come back exactly
    assert compressor_main(["frames", str(out), "--out", str(video), "--model", str(tiny_path), "-q"]) == 0
    assert np.array_equal(decoded_frames(video), tiny.from_tokens(tokens))
    mp4 = tmp_path / "back.mp4"
    assert compressor_main(["frames", str(out), "--out", str(mp4), "--model", str(tiny_path), "-q"]) == 0
    assert len(decoded_frames(mp4)) == 15


def test_sidecar_keeps_two_folders_of_one_name_apart(tmp_path, tiny_path, frame):
    from PIL import Image

    for side in ("left", "right"):
        (tmp_path / side / "frames").mkdir(parents=True)
        Image.fromarray(frame).save(tmp_path / side / "frames" / "a.png")
    out = tmp_path / "t.npy"
    assert compressor_main(["tokens", str(tmp_path / "left" / "frames"), str(tmp_path / "right" / "frames"),
                            "--out", str(out), "--model", str(tiny_path), "-q"]) == 0
    sources = json.loads((tmp_path / "t.json").read_text())["sources"]
    assert sources == [{"folder": "frames", "images": ["a.png"], "frames": 1}] * 2


def test_cli_frames_refuses_another_models_tokens(tmp_path, tiny_path, other_path, frame, capsys):
    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "a.png")
    out = tmp_path / "t.npy"
    assert compressor_main(["tokens", str(tmp_path / "a.png"), "--out", str(out), "--model", str(tiny_path), "-q"]) == 0
    capsys.readouterr()
    assert compressor_main(["frames", str(out), "--out", str(tmp_path / "d"), "--model", str(other_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not by 'other'" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_tokens_of_bin_files_and_clip_archives_are_their_coded_symbols(tmp_path, tiny_ctx, tiny_ctx_path, frame):
    """`compressor tokens` of .bin frames and clip archives reads the symbols as coded (temporal records
    included), with no network: the same tokens as the frames give."""
    from PIL import Image

    from compressor.cli import compress_main

    video = make_clip(tmp_path / "still.mp4", frames=10, motion=0)
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    images = [frame, frame[::-1].copy()]
    for name, image in zip("ab", images):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
        assert compress_main([str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.bin"), "--model",
                              str(tiny_ctx_path), "-q"]) == 0
    out = tmp_path / "t.npy"
    assert compressor_main(["tokens", str(tmp_path / "a.bin"), str(archive), str(tmp_path / "b.bin"), "--out", str(out),
                            "--model", str(tiny_ctx_path), "-q"]) == 0
    tokens = np.load(out, allow_pickle=False)
    want = np.concatenate([tiny_ctx.tokens(images[:1]), tiny_ctx.tokens(decoded_frames(video)), tiny_ctx.tokens(images[1:])])
    assert tokens.dtype == np.uint16 and np.array_equal(tokens, want)
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["frames"] == 12 and meta["fps"] == 20.0 and meta["model_id"] == f"{tiny_ctx.model_id:04x}"
    assert meta["sources"] == [{"folder": tmp_path.name, "files": ["a.bin"], "frames": 1},
                               {"file": "clip.bin", "frames": 10},
                               {"folder": tmp_path.name, "files": ["b.bin"], "frames": 1}]
    part = tmp_path / "part.npy"  # --frames: a part of one archive, decoded from the keyframe before it
    assert compressor_main(["tokens", str(archive), "--frames", "5:9", "--out", str(part), "--model",
                            str(tiny_ctx_path), "-q"]) == 0
    assert np.array_equal(np.load(part), want[6:10])  # want[0] is a.bin's
    assert json.loads((tmp_path / "part.json").read_text())["sources"] == [{"file": "clip.bin", "frames": 4, "start": 5}]


def test_compress_a_token_file_to_the_archive_its_frames_give(tmp_path, tiny_ctx, tiny_ctx_path, capsys):
    """`compress tokens.npy clip.bin` codes the tokens as they are: the same archive, byte for byte, as
    compressing the frames they came from, and `compressor tokens` reads them back."""
    from compressor.cli import compress_main

    video = make_clip(tmp_path / "still.mp4", frames=10, motion=0)
    direct, tokens = tmp_path / "direct.bin", tmp_path / "t.npy"
    assert compress_main([str(video), str(direct), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    assert compressor_main(["tokens", str(video), "--out", str(tokens), "--model", str(tiny_ctx_path), "-q"]) == 0
    coded = tmp_path / "coded.bin"
    assert compress_main([str(tokens), str(coded), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    assert coded.read_bytes() == direct.read_bytes()
    assert compressor_main(["tokens", str(coded), "--out", str(tmp_path / "back.npy"), "--model", str(tiny_ctx_path),
                            "-q"]) == 0
    assert np.array_equal(np.load(tmp_path / "back.npy"), np.load(tokens))

    meta = json.loads((tmp_path / "t.json").read_text())
    np.save(tmp_path / "wide.npy", np.zeros((2, 8, 8), np.uint16))  # a grid its frame size does not give
    (tmp_path / "wide.json").write_text(json.dumps({**meta, "frames": 2}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for argv, says in (([str(tokens), str(tmp_path / "x.bin"), "--flips", "2"], "coded as it is"),
                       ([str(tmp_path / "wide.npy"), str(tmp_path / "x.bin")], "8x8 tokens"),
                       ([str(tokens), str(tmp_path / "x.png")], "image"),
                       ([str(tokens), str(tmp_path / "t.json")], "input"),
                       ([str(tokens), str(tmp_path / "other.npy")], "token file"),
                       ([str(tokens), str(tmp_path / "x.bin"), "--rate-weight", "1e-6"], "coded as it is")):
        capsys.readouterr()
        assert compress_main([*argv, "--model", str(tiny_ctx_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_open_clip_gives_any_window_of_tokens(tmp_path, tiny_ctx, tiny_ctx_path):
    """`compressor.open_clip`: random windows of an archive's tokens, the frames' own tokens, no network;
    a damaged frame is named, and the frames around it still read."""
    import compressor
    from compressor.cli import compress_main
    from compressor.clip import ClipReader

    video = make_clip(tmp_path / "still.mp4", frames=10, motion=0)
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    want = tiny_ctx.tokens(decoded_frames(video))
    with compressor.open_clip(archive, model=tiny_ctx_path) as clip:
        assert len(clip) == 10 and clip.fps == 20.0 and clip.frame_size == (128, 256)
        assert np.array_equal(clip[:], want) and np.array_equal(clip[-1], want[-1])
        for a, b in ((0, 1), (3, 7), (5, 6), (9, 10), (6, 6)):
            assert np.array_equal(clip[a:b], want[a:b]) and clip[a:b].dtype == np.uint16
        with pytest.raises(IndexError):
            clip[10]
        with pytest.raises(IndexError):
            clip[0:10:2]
    data = bytearray(archive.read_bytes())
    data[int(ClipReader(open(archive, "rb")).offsets[8]) + 4] ^= 0xFF  # frame 8, a keyframe at K = 4
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    with compressor.open_clip(tmp_path / "bad.bin", model=tiny_ctx_path) as clip:
        assert np.array_equal(clip[2:8], want[2:8])
        with pytest.raises(compressor.BitstreamError, match="frame 8 is damaged"):
            clip[7:10]
    with pytest.raises(compressor.ModelMismatchError, match="not a shipped model"):
        compressor.open_clip(archive)


def test_open_clip_in_workers_and_its_edges(tmp_path, tiny_ctx, tiny_ctx_path, frame):
    """Forked workers reading one opened clip at once each get their own file position; a clip pickles
    for spawned workers; reversed slices are empty; closed clips, missing paths and one frame's .bin say so."""
    import multiprocessing
    import pickle

    import compressor
    from compressor.cli import compress_main

    video = make_clip(tmp_path / "v.mp4", frames=24, motion=2)
    archive = tmp_path / "clip.bin"
    assert compress_main([str(video), str(archive), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    clip = compressor.open_clip(archive, model=str(tiny_ctx_path))
    want = clip[:]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(_window_sums, [(clip, seed) for seed in range(4)])
    assert got == [_window_sums((want, seed)) for seed in range(4)]
    again = pickle.loads(pickle.dumps(clip))
    assert np.array_equal(again[3:9], want[3:9]) and "24 frames" in repr(again)
    assert clip[10:5].shape == (0, 8, 16) and clip[30:40].shape == (0, 8, 16)
    clip.close()
    for read in (lambda: clip[0], lambda: clip[3:3]):
        with pytest.raises(ValueError, match="closed"):
            read()
    clip = compressor.open_clip(archive, model=str(tiny_ctx_path))
    frames = clip.symbols(0, 24)
    clip.close()  # before the generator reads: it says the clip is closed
    with pytest.raises(ValueError, match=r"clip .*clip\.bin is closed"):
        list(frames)
    with pytest.raises(compressor.BitstreamError, match="not found"):
        compressor.open_clip(tmp_path / "nope.bin")
    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "a.png")
    assert compress_main([str(tmp_path / "a.png"), str(tmp_path / "a.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    with pytest.raises(compressor.BitstreamError, match="one frame's .bin"):
        compressor.open_clip(tmp_path / "a.bin", model=tiny_ctx_path)


def test_a_bin_frame_that_fails_among_many_is_named():
    """`compressor tokens` decodes .bin frames together; when that fails, the file to blame is named."""
    from pathlib import Path

    from compressor.cli.common import UserError
    from compressor.cli.tokens import _frame_file_tokens
    from compressor.errors import BitstreamError

    class Codec:  # decodes b"ok" only
        def _parse(self, data):
            if data != b"ok":
                raise BitstreamError("damaged payload")

        def _parse_many(self, datas):
            for d in datas:
                self._parse(d)

    with pytest.raises(UserError, match=r"^b\.bin: damaged payload$"):
        list(_frame_file_tokens(Codec(), [(Path("a.bin"), b"ok"), (Path("b.bin"), b"bad"), (Path("c.bin"), b"ok")]))


@pytest.mark.parametrize("field, value, says", [("model_id", 13673, "hex digits"), ("model_id", "-1", "hex digits"),
                                                ("frame_size", [-128, -256], "above 0"), ("frame_size", [0, 0], "above 0"),
                                                ("frame_size", [128.9, 256.7], "whole numbers"),
                                                ("frame_size", ["128", "256"], "whole numbers"),
                                                ("frame_size", [128, 256, 3], "two whole"), ("fps", True, "fps"),
                                                ("fps", 1e300, "from 0.001 to 1000"), ("fps", 1e-9, "from 0.001"),
                                                ("frames", "2", "whole number")])
def test_a_sidecar_with_bad_fields_is_refused(tmp_path, field, value, says):
    from compressor.tokens import read_token_file

    np.save(tmp_path / "t.npy", np.zeros((2, 8, 16), np.uint16))
    meta = {"format": "compressor-tokens", "version": 1, "model_id": "3569", "frame_size": [128, 256], "frames": 2}
    (tmp_path / "t.json").write_text(json.dumps({**meta, field: value}))
    with pytest.raises(TokenFileError, match=says):
        read_token_file(tmp_path / "t.npy")


def _window_sums(job):
    """Sums of 200 random 4-frame windows of a clip (or an array standing for one): a forked worker's reads."""
    clip, seed = job
    rng = np.random.default_rng(seed)
    return [int(clip[a : a + 4].sum()) for a in rng.integers(0, 20, 200)]


@pytest.mark.parametrize("case", ["mixed", "no_resize", "damaged", "two_models", "sizes", "no_overlap", "missing",
                                  "payload", "empty", "frames"])
def test_tokens_of_bin_files_refuse_what_they_cannot_hold(tmp_path, tiny_path, other_path, frame, capsys, case):
    from PIL import Image

    from compressor.cli import compress_main
    from compressor.clip import ClipReader

    Image.fromarray(frame).save(tmp_path / "a.png")
    assert compress_main([str(tmp_path / "a.png"), str(tmp_path / "a.bin"), "--model", str(tiny_path), "-q"]) == 0
    argv = ["tokens", str(tmp_path / "a.bin"), "--out", str(tmp_path / "t.npy"), "--model", str(tiny_path)]
    if case == "mixed":  # frames and .bin files in one token file
        argv[1:1] = [str(tmp_path / "a.png")]
    elif case == "no_resize":
        argv.append("--no-resize")
    elif case == "damaged":  # a token file has no place for a damaged frame
        archive = tmp_path / "clip.bin"
        assert compress_main([str(make_clip(tmp_path / "c.mp4", frames=6)), str(archive), "--model", str(tiny_path),
                              "-q"]) == 0
        data = bytearray(archive.read_bytes())
        data[int(ClipReader(open(archive, "rb")).offsets[3]) + 10] ^= 0xFF
        archive.write_bytes(bytes(data))
        argv[1] = str(archive)
    elif case == "two_models":
        assert compress_main([str(tmp_path / "a.png"), str(tmp_path / "o.bin"), "--model", str(other_path), "-q"]) == 0
        argv[1:1] = [str(tmp_path / "o.bin")]
    elif case == "no_overlap":  # a token file records no tiling: `frames` would decode these tokens otherwise
        Image.fromarray(np.tile(frame, (2, 2, 1))).save(tmp_path / "big.png")
        assert compress_main([str(tmp_path / "big.png"), str(tmp_path / "big.bin"), "--no-overlap", "--model",
                              str(tiny_path), "-q"]) == 0
        argv[1] = str(tmp_path / "big.bin")
    elif case == "missing":
        argv[1:1] = [str(tmp_path / "nope.bin")]
    elif case == "payload":  # a payload whose header checks pass but whose symbols do not decode: named
        for i in range(3):
            (tmp_path / f"c{i}.bin").write_bytes((tmp_path / "a.bin").read_bytes())
        data = bytearray((tmp_path / "a.bin").read_bytes())
        (tmp_path / "z.bin").write_bytes(bytes(data[:-1]))
        argv[1:2] = [str(tmp_path / f"c{i}.bin") for i in range(3)] + [str(tmp_path / "z.bin")]
    elif case == "empty":
        (tmp_path / "e.bin").write_bytes(b"")
        argv[1:1] = [str(tmp_path / "e.bin")]
    elif case == "frames":  # --frames is for one clip archive, not a .bin frame
        argv += ["--frames", "0:1"]
    else:  # frames of two sizes
        Image.fromarray(frame[:64, :64]).save(tmp_path / "s.png")
        assert compress_main([str(tmp_path / "s.png"), str(tmp_path / "s.bin"), "--model", str(tiny_path), "-q"]) == 0
        argv[1:1] = [str(tmp_path / "s.bin")]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    capsys.readouterr()
    assert compressor_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert {"mixed": "not a .bin file", "no_resize": "--no-resize", "damaged": "frame 3 is damaged",
            "two_models": "o.bin: file was written by model", "sizes": "differ in size",
            "no_overlap": "--no-overlap", "missing": "input not found", "payload": "z.bin: ",
            "empty": "e.bin is empty", "frames": "one clip archive"}[case] in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # no output, no leftovers


@pytest.mark.parametrize("case", ["missing", "suffix", "input", "not_video", "sidecar", "no_sidecar", "bad_range",
                                  "sidecar_fps", "sidecar_folder", "image_name", "odd_mp4"])
def test_cli_bad_input_one_line(tmp_path, tiny_path, frame, capsys, case):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.fromarray(frame).save(img)
    good = tmp_path / "good.npy"
    assert compressor_main(["tokens", str(img), "--out", str(good), "--model", str(tiny_path), "-q"]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    capsys.readouterr()
    if case == "missing":
        argv = ["tokens", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "t.npy"), "--model", str(tiny_path)]
    elif case == "suffix":
        argv = ["tokens", str(img), "--out", str(tmp_path / "t.bin"), "--model", str(tiny_path)]
    elif case == "input":
        argv = ["tokens", str(good), "--out", str(good), "--model", str(tiny_path)]
    elif case == "not_video":
        (tmp_path / "x.mp4").write_bytes(b"not a video at all")
        before["x.mp4"] = b"not a video at all"
        argv = ["tokens", str(tmp_path / "x.mp4"), "--out", str(tmp_path / "t.npy"), "--model", str(tiny_path)]
    elif case == "sidecar":
        (tmp_path / "good.json").write_text("{broken")
        before["good.json"] = b"{broken"
        argv = ["frames", str(good), "--out", str(tmp_path / "d"), "--model", str(tiny_path)]
    elif case == "no_sidecar":
        (tmp_path / "good.json").unlink()
        del before["good.json"]
        argv = ["frames", str(good), "--out", str(tmp_path / "d"), "--model", str(tiny_path)]
    elif case == "sidecar_fps":  # JSON takes NaN; a frame rate must be a number above 0
        meta = json.loads((tmp_path / "good.json").read_text())
        (tmp_path / "good.json").write_text(json.dumps({**meta, "fps": float("nan")}))
        before["good.json"] = (tmp_path / "good.json").read_bytes()
        argv = ["frames", str(good), "--out", str(tmp_path / "d"), "--model", str(tiny_path)]
    elif case == "sidecar_folder":  # the sidecar's name is a folder: refused before any token is written
        (tmp_path / "t.json").mkdir()
        argv = ["tokens", str(img), "--out", str(tmp_path / "t.npy"), "--model", str(tiny_path)]
    elif case == "image_name":  # frames go to a video or a folder, never a folder named as an image
        argv = ["frames", str(good), "--out", str(tmp_path / "d.gif"), "--model", str(tiny_path)]
    elif case == "odd_mp4":  # H.264 needs even sides
        Image.fromarray(frame[:9, :7]).save(tmp_path / "odd.png")
        before["odd.png"] = (tmp_path / "odd.png").read_bytes()
        assert compressor_main(["tokens", str(tmp_path / "odd.png"), "--out", str(tmp_path / "odd.npy"),
                                "--no-resize", "--model", str(tiny_path), "-q"]) == 0
        before.update({n: (tmp_path / n).read_bytes() for n in ("odd.npy", "odd.json")})
        capsys.readouterr()
        argv = ["frames", str(tmp_path / "odd.npy"), "--out", str(tmp_path / "d.mp4"), "--model", str(tiny_path)]
    else:  # frames into a non-empty folder
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "keep.txt").write_text("x")
        argv = ["frames", str(good), "--out", str(tmp_path / "full"), "--model", str(tiny_path)]
    assert compressor_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not (tmp_path / "d").exists() and not (tmp_path / "t.npy").exists()
    assert not (tmp_path / "d.gif").exists() and not (tmp_path / "d.mp4").exists()


def test_cli_frames_folder_follows_the_umask_and_fps_is_checked(tmp_path, tiny_path, frame, capsys):
    import os
    import stat

    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "a.png")
    out = tmp_path / "t.npy"
    for fps, says in (("inf", "above 0"), ("nan", "above 0"), ("0", "above 0"), ("-5", "above 0"),
                      ("1e-9", "from 0.001 to 1000"), ("1001", "from 0.001 to 1000")):  # status 2, one line, no file
        with pytest.raises(SystemExit) as e:
            compressor_main(["tokens", str(tmp_path / "a.png"), "--out", str(out), "--fps", fps])
        assert e.value.code == 2 and says in capsys.readouterr().err and not out.exists()
    assert compressor_main(["tokens", str(tmp_path / "a.png"), "--out", str(out), "--model", str(tiny_path), "-q"]) == 0
    old = os.umask(0o022)
    try:
        assert compressor_main(["frames", str(out), "--out", str(tmp_path / "d"), "--model", str(tiny_path), "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755  # not mkdtemp's owner-only 0700


@pytest.mark.parametrize("snap", [0.0, 50.0])
def test_onnx_export_agrees_with_torch(tmp_path, tiny_path, tiny_net_path, frame, snap):
    """The ONNX encoder's tokens are the codec's (for a model that snaps, after snapping its latent with the
    exported context net, numpy only), and the ONNX decoder's frames are the codec's."""
    ort = pytest.importorskip("onnxruntime")
    import shutil

    import compressor
    from compressor import context_net
    from compressor.checkpoint import read_card, update_card
    from compressor.codec import Codec
    from compressor.metrics import psnr
    from compressor.tokens import tokens_from_symbols

    path = tiny_path
    if snap:
        path = shutil.copy(tiny_net_path, tmp_path / "snap.safetensors")
        update_card(path, {**read_card(path).card, "snap": snap})
    assert compressor_main(["export-onnx", str(path), str(tmp_path / "onnx")]) == 0
    meta = json.loads((tmp_path / "onnx" / "model.json").read_text())
    rng = np.random.default_rng(0)
    frames = np.stack([frame, frame[::-1].copy(), np.clip(frame + rng.integers(-30, 30, frame.shape), 0, 255).astype(np.uint8)])
    loaded = compressor.load(path)
    fp32 = Codec(loaded.model, loaded.card, decode_precision="fp32", encode_precision="fp32")
    enc = ort.InferenceSession(str(tmp_path / "onnx" / "encoder.onnx"))
    dec = ort.InferenceSession(str(tmp_path / "onnx" / "decoder.onnx"))
    tokens, latent = enc.run(None, {"frames": frames})
    want = fp32.tokens(frames)
    assert meta.get("snap", 0.0) == snap and (tmp_path / "onnx" / "context_net.npz").exists() == bool(snap)
    if snap:
        net = context_net.ContextNet(dict(np.load(tmp_path / "onnx" / "context_net.npz")))
        assert not np.array_equal(tokens, want)  # the plain signs are not what the codec codes
        tokens = tokens_from_symbols(context_net.snap(net, latent, meta["snap"]))
    bits = lambda t: np.unpackbits(np.ascontiguousarray(t, "<u2").view(np.uint8))  # noqa: E731
    assert (bits(tokens) == bits(want)).mean() >= 0.999
    assert meta["token_grid"] == [8, 16] and meta["model_id"] == f"{fp32.model_id:04x}"
    ours = dec.run(None, {"tokens": want.astype(np.int32)})[0]
    theirs = fp32.from_tokens(want)
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    for f, a, b in zip(frames, ours, theirs):
        assert abs(psnr(f, a) - psnr(f, b)) <= 0.01


def test_import_stays_light():
    code = "import sys, compressor.tokens, compressor.clip, compressor.clip_coding; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_a_token_grid_its_frame_size_does_not_make_is_refused_everywhere(tmp_path, tiny, tiny_path, capsys):
    """`archive.read_tokens_for`, which `compress`, `compressor frames` and `token_windows` read token files
    through, refuses a grid the sidecar's frame size does not make, in one line, writing nothing."""
    from compressor.cli import compress_main
    from compressor.tokens import sidecar

    np.save(tmp_path / "lie.npy", np.zeros((3, 4, 16), np.uint16))
    (tmp_path / "lie.json").write_text(json.dumps(sidecar(model_id=tiny.model_id, model=tiny.name, frame_size=(128, 256),
                                                          grid=(4, 16), channels=14, frames=3, fps=None, sources=[])))
    src, model = str(tmp_path / "lie.npy"), ["--model", str(tiny_path), "-q"]
    for run in (lambda: compress_main([src, str(tmp_path / "lie.bin"), *model]),
                lambda: compressor_main(["frames", src, "--out", str(tmp_path / "out"), *model])):
        assert run() == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds 4x16 tokens a frame; its 128x256 frames make 8x16" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lie.json", "lie.npy"]


def _run_on(device, tmp_path, model, frame):
    """Every command that runs a network, on `device` (None: the flag left out): its outputs by name."""
    from PIL import Image

    from compressor.cli import compress_main, decompress_main

    d = tmp_path / str(device)
    d.mkdir()
    flag = [] if device is None else ["--device", device]
    video = make_clip(d / "v.mp4", frames=8, motion=3)
    Image.fromarray(frame).save(d / "f.png")
    m = ["--model", str(model), "-q", *flag]
    assert compress_main([str(d / "f.png"), str(d / "f.bin"), *m]) == 0
    assert decompress_main([str(d / "f.bin"), str(d / "f-back.png"), *m]) == 0
    assert compress_main([str(video), str(d / "clip.bin"), "--keyframe-interval", "4", *m]) == 0
    assert decompress_main([str(d / "clip.bin"), str(d / "clip-back.mkv"), *m]) == 0
    assert compressor_main(["tokens", str(video), "--out", str(d / "t.npy"), *m]) == 0
    assert compressor_main(["frames", str(d / "t.npy"), "--out", str(d / "t-back.mkv"), *m]) == 0
    return {
        "bin": (d / "f.bin").read_bytes(), "clip": (d / "clip.bin").read_bytes(),
        "tokens": np.load(d / "t.npy", allow_pickle=False),
        "image": np.asarray(Image.open(d / "f-back.png")).astype(np.float64),
        "clip frames": decoded_frames(d / "clip-back.mkv").astype(np.float64),
        "token frames": decoded_frames(d / "t-back.mkv").astype(np.float64),
    }


def test_commands_that_run_a_network_run_it_on_the_device_asked_for(tmp_path, tiny_ctx_path, frame, capsys):
    """compress, decompress, tokens and frames take --device: cpu gives the default's very bytes, a GPU (where
    there is one) the same coding within float rounding, and a device that is not there is a one-line error
    that leaves no file."""
    import torch

    base = _run_on(None, tmp_path, tiny_ctx_path, frame)
    cpu = _run_on("cpu", tmp_path, tiny_ctx_path, frame)
    for key in base:
        assert np.array_equal(base[key], cpu[key]) if key == "tokens" or "frames" in key or key == "image" \
            else base[key] == cpu[key], key
    if torch.cuda.is_available():
        gpu = _run_on("cuda", tmp_path, tiny_ctx_path, frame)
        bits = lambda t: np.unpackbits(t.view(np.uint8), axis=-1)  # noqa: E731
        assert np.mean(bits(gpu["tokens"]) == bits(base["tokens"])) > 0.99  # near-zero latents may flip
        for key in ("image", "clip frames", "token frames"):
            assert np.abs(gpu[key] - base[key]).mean() < 2.0, key  # bf16 decoding on the GPU, float32 here
    from compressor.cli import compress_main, decompress_main

    bad = ["--model", str(tiny_ctx_path), "--device", "cuda:99"]  # no such GPU, with CUDA or without
    d = tmp_path / "None"
    for fn, argv in ((compress_main, [str(d / "f.png"), str(tmp_path / "x.bin")]),
                     (compress_main, [str(d / "v.mp4"), str(tmp_path / "x.bin")]),
                     (decompress_main, [str(d / "f.bin"), str(tmp_path / "x.png")]),
                     (decompress_main, [str(d / "clip.bin"), str(tmp_path / "x.mkv")]),
                     (compressor_main, ["tokens", str(d / "v.mp4"), "--out", str(tmp_path / "x.npy")]),
                     (compressor_main, ["frames", str(d / "t.npy"), "--out", str(tmp_path / "x.mkv")])):
        capsys.readouterr()
        assert fn(argv + bad) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "device cuda" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["None", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_a_video_faster_than_token_files_record_needs_fps(tmp_path, tiny_ctx_path, capsys):
    """`tokens` of a video over 1,000 frames a second (a high-speed camera) is refused before anything is
    written, where its sidecar could not be read back; --fps lets it through. (A clip archive keeps such a
    rate: test_archive_writer.)"""
    video = make_clip(tmp_path / "fast.mp4", frames=3, fps=2400)
    argv = ["tokens", str(video), "--out", str(tmp_path / "t.npy"), "--model", str(tiny_ctx_path), "-q"]
    assert compressor_main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "2400 frames a second" in err and "--fps" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.mp4"]
    assert compressor_main(argv + ["--fps", "1000"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["fps"] == 1000.0
    from compressor.cli import compress_main

    archive = tmp_path / "fast.bin"  # an archive keeps the video's rate; its tokens need --fps as the video's do
    assert compress_main([str(video), str(archive), "--model", str(tiny_ctx_path), "-q"]) == 0
    argv = ["tokens", str(archive), "--out", str(tmp_path / "a.npy"), "--model", str(tiny_ctx_path), "-q"]
    assert compressor_main(argv) == 1
    assert "fast.bin plays at 2400 frames a second" in capsys.readouterr().err
    assert not (tmp_path / "a.npy").exists() and compressor_main(argv + ["--fps", "24"]) == 0
