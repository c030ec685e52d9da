"""What the frame-sequence commands (`compressor.cli.tokens`, `compressor.cli.clips`) share: frames
read from files, folders and videos in batches, and an output video or folder of frames written beside
the target and moved into place (the codec a file names: `compressor.archive`)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from compressor.cli.common import UserError, _check_not_input, _named_as_image, _umask

PROGRESS_MIN_FRAMES = 256  # shorter inputs get no progress bar


def _progress(total: int | None, quiet: bool, what: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=what, file=sys.stderr, dynamic_ncols=True,
                disable=quiet or (total is not None and total < PROGRESS_MIN_FRAMES))


def _frames_of(codec, inputs, no_resize: bool, fps: float | None):
    """(sources, frame iterator, size or None, fps, total frames or None) for files and folders."""
    from compressor.frames import expand_inputs, frame_count_hint, frame_size, iter_frames, prefetched, video_fps

    sources = expand_inputs(inputs)
    if fps is None:
        fps = next((video_fps(s.path) for s in sources if s.video), None)
    size = None if no_resize else frame_size(codec)
    return sources, prefetched(iter_frames(sources, size), 2 * codec.batch), fps, frame_count_hint(sources)


def _same_size_batches(frames, batch: int):
    """Batches of uint8 frames, refusing a frame whose size differs from the first's (--no-resize)."""
    from compressor.frames import batches

    first = None
    for chunk in batches(frames, batch):
        for src, f in chunk:
            if first is None:
                first = f.shape
            elif f.shape != first:
                raise UserError(f"frames differ in size ({first[0]}x{first[1]} and {f.shape[0]}x{f.shape[1]}); "
                                "drop --no-resize to resize them to the model's frame")
        yield [s for s, _ in chunk], np.stack([f for _, f in chunk])


class _Output:
    """A video file or a folder of PNG frames, written beside the target and moved into place by `commit`."""

    def __init__(self, target: Path, fps: float | None, inputs: list[Path]):
        from compressor.frames import FrameWriter, is_video_path

        self.target = target
        _check_not_input(target, inputs)
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"output folder does not exist: {parent}")
        self.video = is_video_path(target)
        if self.video:
            if target.suffix.lower() not in (".mp4", ".mkv", ".mov"):
                raise UserError(f"cannot write {target.suffix} video; use .mp4 (H.264) or .mkv (lossless FFV1)")
            if target.is_dir():
                raise UserError(f"output {target} is a folder")
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=parent)
            os.close(fd)
        else:
            if _named_as_image(target) or target.suffix.lower() in (".bin", ".npy", ".json"):
                raise UserError(f"frames go to a video (.mp4, .mkv) or a new folder, not {target}")
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise UserError(f"output {target} exists and is not an empty folder; give a new folder or a .mp4")
            tmp = tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent)
        self.tmp = Path(tmp)
        self.writer = FrameWriter(self.tmp, fps, video=self.video, container=target.suffix)

    def commit(self) -> None:
        self.writer.close()
        if self.video:
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.target)
        else:
            if self.target.is_dir():
                self.target.rmdir()  # empty, checked above
            os.chmod(self.tmp, 0o777 & ~_umask())  # mkdtemp's folder is owner-only
            os.rename(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)
