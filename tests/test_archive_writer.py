"""`compressor.clip_writer`: clip archives written from Python, the same bytes as `compress` writes."""
import numpy as np
import pytest
from PIL import Image

import compressor
from compressor import clip
from compressor.cli import compress_main
from compressor.images import cover_frame
from tests.test_tokens import decoded_frames, make_clip


def test_frames_from_python_make_the_archive_compress_makes(tmp_path, tiny_ctx, tiny_ctx_path):
    """Frames added in uneven batches, from arrays, PIL images and files, and resized as `compress` resizes
    them, give the very bytes `compress video.mp4` writes; the archive appears only when the block ends."""
    video = make_clip(tmp_path / "drive.mp4", frames=11, size=(144, 272), motion=0)  # resized to 128x256
    frames = decoded_frames(video)  # uint8 (11, 144, 272, 3)
    cli = tmp_path / "cli.bin"
    assert compress_main([str(video), str(cli), "--model", str(tiny_ctx_path), "--keyframe-interval", "4", "-q"]) == 0
    out = tmp_path / "api.bin"
    Image.fromarray(frames[9]).save(tmp_path / "f9.png")
    with compressor.clip_writer(out, tiny_ctx, fps=20, keyframe_interval=4) as w:
        w.add(frames[:3])
        w.add([Image.fromarray(frames[3])])
        w.add(list(frames[4:9]))
        w.add([tmp_path / "f9.png", frames[10]])
        assert len(w) == 11 and not out.exists() and w.frame_size == (128, 256)
    assert out.read_bytes() == cli.read_bytes()
    with compressor.open_clip(out, tiny_ctx_path) as c:
        assert len(c) == 11 and c.fps == 20 and c.keyframe_interval == 4
        want = np.stack([np.asarray(cover_frame(Image.fromarray(f), (128, 256))) for f in frames])
        assert np.array_equal(c[:], tiny_ctx.tokens(want))
    assert sum(w.kinds.values()) == 11 and clip.TEMPORAL in w.kinds


def test_tokens_and_frames_at_their_own_size(tmp_path, tiny_ctx, tiny_ctx_path):
    """Tokens (a world model's output) are coded as they are; resize=False keeps a frame size of its own."""
    tokens = np.random.default_rng(0).integers(0, 1 << 14, (7, 8, 16), dtype=np.uint16)
    with compressor.clip_writer(tmp_path / "t.bin", tiny_ctx_path) as w:
        w.add_tokens(tokens[:2])
        w.add_tokens(tokens[2:].astype(np.int64))
    with compressor.open_clip(tmp_path / "t.bin", tiny_ctx_path) as c:
        assert np.array_equal(c[:], tokens) and c.frame_size == (128, 256) and c.fps is None
        assert np.array_equal(c.frames(1, 3), tiny_ctx.from_tokens(tokens[1:3])) and c.frames(7).shape == (0, 128, 256, 3)
    frames = np.random.default_rng(1).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    with compressor.clip_writer(tmp_path / "s.bin", tiny_ctx, resize=False) as w:
        w.add(frames)
    with compressor.open_clip(tmp_path / "s.bin", tiny_ctx_path) as c:
        assert c.frame_size == (64, 96) and np.array_equal(c[:], tiny_ctx.tokens(frames))
        assert np.array_equal(c.frames(), tiny_ctx.from_tokens(c[:], (64, 96)))


def test_bad_input_leaves_no_archive_and_what_was_there_untouched(tmp_path, tiny_ctx, tiny_ctx_path):
    target = tmp_path / "drive.bin"
    target.write_bytes(b"an older archive")
    frames = np.zeros((2, 128, 256, 3), np.uint8)
    with pytest.raises(compressor.ImageError, match="frames differ in size"):  # refused before it is written
        with compressor.clip_writer(target, tiny_ctx, resize=False) as w:
            w.add(frames)
            w.add(np.zeros((1, 64, 96, 3), np.uint8))
    with pytest.raises(compressor.TokenFileError, match="token values must lie in 0..16383"):
        with compressor.clip_writer(target, tiny_ctx) as w:
            w.add_tokens(np.full((3, 8, 16), 1 << 14, np.uint16))
    with pytest.raises(compressor.TokenFileError, match=r"an array \(N, 8, 16\) for 128x256 frames; got shape \(2, 4, 16\)"):
        with compressor.clip_writer(target, tiny_ctx) as w:
            w.add_tokens(np.zeros((2, 4, 16), np.uint16))
    with pytest.raises(clip.ClipError, match="needs at least one frame"):
        with compressor.clip_writer(target, tiny_ctx):
            pass
    with pytest.raises(KeyboardInterrupt):
        with compressor.clip_writer(target, tiny_ctx) as w:
            w.add(frames)
            raise KeyboardInterrupt
    assert target.read_bytes() == b"an older archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.bin"]  # no temporary file left beside it
    for bad in ({"keyframe_interval": 0}, {"keyframe_interval": 70000}, {"fps": 0.0}, {"fps": "20"}, {"fps": 1e7}):
        with pytest.raises(ValueError, match="keyframe_interval|fps"):
            compressor.clip_writer(tmp_path / "x.bin", tiny_ctx, **bad)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        compressor.clip_writer(tmp_path, tiny_ctx)
    with pytest.raises(ValueError, match="the archive writer is closed"):
        w.add(frames)  # the interrupted writer above
    for one in (frames[0], Image.fromarray(frames[0]), b"frame"):
        with pytest.raises(TypeError, match="for one image, a list of one"):
            with compressor.clip_writer(tmp_path / "x.bin", tiny_ctx) as w:
                w.add(one)
    w = compressor.clip_writer(tmp_path / "x.bin", tiny_ctx)
    w.add(frames)
    with pytest.warns(UserWarning, match="dropped before close"):
        del w
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.bin"]


def test_large_frames_fast_videos_and_tensors(tmp_path, tiny_ctx, tiny_ctx_path):
    """Frames above the codec's pixel limit are fine when they are resized, as `compress` takes them; a video
    at more than 1,000 frames a second keeps its rate, as it did; a (N, 3, H, W) tensor is a batch, and so
    is a uint8 (N, H, W, 3) one."""
    import torch

    big = np.random.default_rng(2).integers(0, 256, (1, 2100, 2100, 3), dtype=np.uint8)  # 4.4 MP
    with compressor.clip_writer(tmp_path / "big.bin", tiny_ctx) as w:
        w.add(big)
        w.add(torch.from_numpy(big[:, :128, :256]).permute(0, 3, 1, 2))
        w.add(torch.from_numpy(big[:, :128, :256]))  # uint8 (N, H, W, 3), as torchvision's video reader gives
    with compressor.open_clip(tmp_path / "big.bin", tiny_ctx_path) as c:
        assert len(c) == 3 and c.frame_size == (128, 256) and np.array_equal(c[1], c[2])
    with pytest.raises(compressor.ImageError, match="above the limit"):
        with compressor.clip_writer(tmp_path / "big2.bin", tiny_ctx, resize=False) as w:
            w.add(big)
    fast = make_clip(tmp_path / "fast.mp4", frames=3, fps=1200)
    assert compress_main([str(fast), str(tmp_path / "fast.bin"), "--model", str(tiny_ctx_path), "-q"]) == 0
    with compressor.open_clip(tmp_path / "fast.bin", tiny_ctx_path) as c:
        assert c.fps == 1200
