"""`compressor.token_windows`: windows of tokens across clip archives and token files, as a data loader reads them."""
import json
import multiprocessing
import pickle

import numpy as np
import pytest

import compressor
from compressor import TokenFileError
from compressor.tokens import sidecar, sidecar_path


def write_tokens(path, tokens, codec, fps=20.0, size=(128, 256)):
    """A token file with its sidecar, as `compressor tokens` writes them."""
    np.save(path, tokens)
    meta = sidecar(model_id=codec.model_id, model=codec.name, frame_size=size, grid=tokens.shape[1:],
                   channels=14, frames=len(tokens), fps=fps, sources=[])
    sidecar_path(path).write_text(json.dumps(meta))
    return path


def random_tokens(n, seed):
    return np.random.default_rng(seed).integers(0, 1 << 14, (n, 8, 16), dtype=np.uint16)


def test_windows_slice_each_source_and_never_span_two(tmp_path, tiny_ctx, tiny_ctx_path):
    a, b, c = random_tokens(10, 0), random_tokens(3, 1), random_tokens(7, 2)
    paths = [write_tokens(tmp_path / f"{k}.npy", t, tiny_ctx) for k, t in zip("abc", (a, b, c))]
    w = compressor.token_windows(paths, length=4, stride=2, model=tiny_ctx_path)
    # a: starts 0, 2, 4, 6; b (3 frames) none; c: starts 0, 2
    assert len(w) == 6 and w.fps == 20.0
    want = [a[0:4], a[2:6], a[4:8], a[6:10], c[0:4], c[2:6]]
    for i, x in enumerate(want):
        assert w[i].dtype == np.uint16 and np.array_equal(w[i], x)
    assert w.locate(4) == (str(paths[2].resolve()), 0) and np.array_equal(w[-1], c[2:6])
    assert np.array_equal(w[np.int64(3)], a[6:10])
    every = compressor.token_windows(paths, length=3, every=3, model=tiny_ctx_path)  # span 7, stride 3
    assert len(every) == 2 + 1 and every.fps == pytest.approx(20 / 3)
    assert np.array_equal(every[1], a[3:10:3]) and np.array_equal(every[2], c[0:7:3])
    for bad in (6, -7):
        with pytest.raises(IndexError):
            w[bad]
    for bad in (1.0, True, "1"):
        with pytest.raises(TypeError):
            w[bad]
    folder = compressor.token_windows(tmp_path, length=10, model=tiny_ctx_path)  # a folder: its files, sorted
    assert len(folder) == 1 and np.array_equal(folder[0], a)


def test_archives_give_the_windows_of_their_token_files(tmp_path, tiny_ctx, tiny_ctx_path):
    """An archive coded from a token file reads back the same windows, in the parent, in forked data-loader
    workers (each reopens what it reads) and after a pickle round trip (as spawned workers receive it)."""
    import torch

    from compressor.cli import compress_main

    a, b = random_tokens(40, 3), random_tokens(25, 4)
    for name, t in (("a", a), ("b", b)):
        write_tokens(tmp_path / f"{name}.npy", t, tiny_ctx)
        assert compress_main([str(tmp_path / f"{name}.npy"), str(tmp_path / f"{name}.bin"), "--model",
                              str(tiny_ctx_path), "--keyframe-interval", "8", "-q"]) == 0
    from_npy = compressor.token_windows([tmp_path / "a.npy", tmp_path / "b.npy"], 16, stride=5, model=str(tiny_ctx_path))
    from_bin = compressor.token_windows([tmp_path / "a.bin", tmp_path / "b.bin"], 16, stride=5, model=str(tiny_ctx_path))
    assert len(from_npy) == len(from_bin) == 5 + 2
    want = np.stack([from_npy[i] for i in range(len(from_npy))])
    assert np.array_equal(np.stack([from_bin[i] for i in range(len(from_bin))]), want)
    loader = torch.utils.data.DataLoader(from_bin, batch_size=3, num_workers=2,
                                         multiprocessing_context=multiprocessing.get_context("fork"))
    assert np.array_equal(torch.cat(list(loader)).numpy(), want)
    again = pickle.loads(pickle.dumps(from_bin))
    assert np.array_equal(again[6], want[6]) and again.codec.model_id == tiny_ctx.model_id
    assert "7 windows of 16 frames from 2 sources" in repr(again)


def test_many_archives_stay_within_the_open_limit(tmp_path, tiny_ctx, tiny_ctx_path, monkeypatch):
    from compressor import windows
    from compressor.cli import compress_main

    monkeypatch.setattr(windows, "OPEN", 2)
    tokens = [random_tokens(4, 10 + k) for k in range(5)]
    for k, t in enumerate(tokens):
        write_tokens(tmp_path / f"{k}.npy", t, tiny_ctx)
        assert compress_main([str(tmp_path / f"{k}.npy"), str(tmp_path / f"{k}.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    w = compressor.token_windows(sorted(tmp_path.glob("*.bin")), 4, model=tiny_ctx_path)
    for k in (0, 1, 2, 3, 4, 0, 4):
        assert np.array_equal(w[k], tokens[k])
        assert len(w._open) <= 2


def test_sources_that_do_not_belong_together_are_refused(tmp_path, tiny_ctx, tiny_ctx_path, other_path):
    good = write_tokens(tmp_path / "good.npy", random_tokens(8, 5), tiny_ctx)
    other = write_tokens(tmp_path / "other.npy", random_tokens(8, 6), compressor.load(other_path))
    with pytest.raises(compressor.ModelMismatchError, match="not by 'tiny-ctx'"):
        compressor.token_windows([good, other], 4, model=tiny_ctx_path)
    shipped = [write_tokens(tmp_path / f"{name}.npy", random_tokens(8, 6), compressor.load(name))
               for name in ("vit.default", "cvit.equal-budget")]
    with pytest.raises(compressor.ModelMismatchError, match="one dataset takes one model's tokens"):
        compressor.token_windows(shipped, 4)
    small = write_tokens(tmp_path / "small.npy", random_tokens(8, 7)[:, :4], tiny_ctx, size=(64, 256))
    cropped = write_tokens(tmp_path / "cropped.npy", random_tokens(8, 7), tiny_ctx, size=(120, 256))  # one grid
    for odd in (small, cropped):
        with pytest.raises(TokenFileError, match=f"{odd.name} holds .* frames, .*one dataset takes one frame size"):
            compressor.token_windows([good, odd], 4, model=tiny_ctx_path)
    with pytest.raises(ValueError, match="no source holds a window of 9 frames"):
        compressor.token_windows([good], 9, model=tiny_ctx_path)
    for kwargs in ({"length": 0}, {"length": 4, "stride": 0}, {"length": 4, "every": 1.5}, {"length": True}):
        with pytest.raises(ValueError, match="whole number of frames"):
            compressor.token_windows([good], **kwargs, model=tiny_ctx_path)
    with pytest.raises(TokenFileError, match="not found"):
        compressor.token_windows([tmp_path / "nope.npy"], 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenFileError, match="holds no clip archives"):
        compressor.token_windows(tmp_path / "empty", 4)
    wide = random_tokens(8, 8)
    wide[5, 2, 3] = 1 << 15  # a value past the model's 14 bits: refused when read, naming the frame
    w = compressor.token_windows([write_tokens(tmp_path / "wide.npy", wide, tiny_ctx)], 2, model=tiny_ctx_path)
    assert np.array_equal(w[0], wide[:2])
    with pytest.raises(TokenFileError, match=r"wide.npy: frame 5 holds 32768, more than 14 bits"):
        w[2]


def test_windows_stay_inside_each_video_of_one_token_file(tmp_path, tiny, tiny_path):
    """`compressor tokens a.mp4 b.mp4` writes both videos into one file; its sidecar's sources keep a
    window from running out of one into the other."""
    from compressor.cli import compressor_main
    from tests.test_tokens import make_clip

    videos = [make_clip(tmp_path / "a.mp4", frames=6), make_clip(tmp_path / "b.mp4", frames=5, motion=3)]
    out = tmp_path / "t.npy"
    assert compressor_main(["tokens", *map(str, videos), "--out", str(out), "--model", str(tiny_path), "-q"]) == 0
    tokens = np.load(out)
    w = compressor.token_windows([out], 4, stride=1, model=tiny_path)
    assert len(w) == 3 + 2 and [w.locate(i)[1] for i in range(5)] == [0, 1, 2, 6, 7]
    assert all(np.array_equal(w[i], tokens[f : f + 4]) for i, f in enumerate([0, 1, 2, 6, 7]))
    meta = json.loads(sidecar_path(out).read_text())
    meta["sources"][1]["frames"] = 4  # 6 + 4 is not the 11 frames the array holds
    sidecar_path(out).write_text(json.dumps(meta))
    with pytest.raises(TokenFileError, match="do not add up to its 11 frames"):
        compressor.token_windows([out], 4, model=tiny_path)


def test_a_drive_read_twice_and_other_odd_inputs_are_refused(tmp_path, tiny_ctx, tiny_ctx_path):
    """A source reached twice (listed twice, through a link, or as an archive beside the token file made
    from it) would count its windows twice; a token grid that its frame size does not make is a lie."""
    from compressor.cli import compress_main, compressor_main

    t = write_tokens(tmp_path / "t.npy", random_tokens(8, 9), tiny_ctx)
    (tmp_path / "link.npy").symlink_to(t)
    (tmp_path / "link.json").symlink_to(sidecar_path(t))
    for sources in ([t, t], [t, tmp_path / "link.npy"]):
        with pytest.raises(TokenFileError, match="again: each source once"):
            compressor.token_windows(sources, 4, model=tiny_ctx_path)
    drive = tmp_path / "drive"
    drive.mkdir()
    assert compress_main([str(t), str(drive / "d.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    assert len(compressor.token_windows(drive, 4, model=tiny_ctx_path)) == 2
    assert compressor_main(["tokens", str(drive / "d.bin"), "--out", str(drive / "d.npy"), "--model",
                            str(tiny_ctx_path), "-q"]) == 0
    with pytest.raises(TokenFileError, match=r"d\.npy holds the tokens of .*d\.bin, which is read too"):
        compressor.token_windows(drive, 4, model=tiny_ctx_path)
    assert len(compressor.token_windows(drive / "d.npy", 4, model=tiny_ctx_path)) == 2
    (drive / "d.npy").unlink()
    drives = tmp_path / "drives"  # a folder of links to drives kept elsewhere: followed, under the link's name
    drives.mkdir()
    (drives / "monday").symlink_to(drive)
    w = compressor.token_windows(drives, 4, model=tiny_ctx_path)
    assert len(w) == 2 and w.locate(1) == (str(drives / "monday" / "d.bin"), 4)
    with pytest.raises(TokenFileError, match="again: each source once"):
        compressor.token_windows([drives, drive], 4, model=tiny_ctx_path)
    lie = write_tokens(tmp_path / "lie.npy", random_tokens(8, 9)[:, :4], tiny_ctx)  # 4x16 said to be 128x256
    with pytest.raises(TokenFileError, match="holds 4x16 tokens a frame; its 128x256 frames make 8x16"):
        compressor.token_windows([lie], 4, model=tiny_ctx_path)
    for bad in (None, b"t.npy", [t, 3]):
        with pytest.raises(TypeError, match="takes a path, or a list of paths"):
            compressor.token_windows(bad, 4, model=tiny_ctx_path)
    with pytest.raises(ValueError, match="from 1 to 1,000,000,000"):
        compressor.token_windows([t], 4, stride=2**63, model=tiny_ctx_path)
    w = compressor.token_windows([t], 4, model=tiny_ctx_path)
    with pytest.raises(IndexError, match="outside the 2 windows"):
        w[2**70]


def test_a_source_replaced_after_the_dataset_was_made_is_refused(tmp_path, tiny_ctx, tiny_ctx_path):
    """A worker reopens each source by its path: a file replaced since (re-coded, shortened) would serve
    windows counted from the old one, so reopening it is an error that says so."""
    import pickle

    from compressor.cli import compress_main

    t = write_tokens(tmp_path / "t.npy", random_tokens(12, 5), tiny_ctx)
    assert compress_main([str(t), str(tmp_path / "d.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    w = compressor.token_windows([t, tmp_path / "d.bin"], 4, model=tiny_ctx_path)
    again = pickle.loads(pickle.dumps(w))  # as a spawned worker receives it: nothing open yet
    assert np.array_equal(again[0], w[0]) and np.array_equal(again[-1], w[-1])
    later = pickle.loads(pickle.dumps(w))
    write_tokens(t, random_tokens(8, 6), tiny_ctx)
    assert compress_main([str(t), str(tmp_path / "d.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    with pytest.raises(TokenFileError, match=r"t\.npy has changed since the dataset was made \(12 frames of "
                                             r"8x16 tokens, model [0-9a-f]{4}; now 8 frames"):
        later[0]
    with pytest.raises(TokenFileError, match=r"d\.bin has changed since the dataset was made"):
        later[-1]
