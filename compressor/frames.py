"""Frames in and out for tokens and clip archives: image files, folders of images and videos (PyAV),
read one frame at a time so a long video never sits in memory.

Frames are resized to the model's frame as `../shared/data/README.md` makes the 128x256 frames
(Lanczos resize to cover, centre crop), unless the caller asks for the frames as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from compressor.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, cover_frame
from compressor.errors import ImageError


def frame_size(codec) -> tuple[int, int]:
    """The frame a model was trained on (128x256 for every shipped model): what inputs are resized to."""
    return tuple(codec.training.get("crop", (128, 256)))


@dataclass(frozen=True)
class Source:
    """One input file: an image (one frame) or a video (many)."""

    path: Path
    video: bool


def expand_inputs(inputs: list[str | Path]) -> list[Source]:
    """Files and folders -> sources in order (a folder's images sorted by name); one-line errors."""
    sources: list[Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ImageError(f"no images in folder {path}")
            sources += [Source(p, False) for p in files]
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise ImageError(f"not an image or video file: {path}")
            sources.append(Source(path, suffix in VIDEO_SUFFIXES))
        else:
            raise ImageError(f"input not found: {path}")
    if not sources:
        raise ImageError("no inputs given")
    return sources


def _open_video(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise ImageError(f"cannot read video {path}: {e}") from None
    if not container.streams.video:
        container.close()
        raise ImageError(f"{path} has no video stream")
    return container


def video_fps(path: Path) -> float | None:
    """A video's average frame rate, or None where the file does not say."""
    with _open_video(path) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def frame_count_hint(sources: list[Source]) -> int | None:
    """Frames the sources hold, for a progress bar: exact for images, the container's word for videos."""
    total = 0
    for s in sources:
        if not s.video:
            total += 1
            continue
        with _open_video(s.path) as container:
            n = container.streams.video[0].frames
        if not n:
            return None
        total += n
    return total


def iter_frames(sources: list[Source], size: tuple[int, int] | None) -> Iterator[tuple[int, np.ndarray]]:
    """(source index, uint8 frame (H, W, 3)) for every frame, resized to cover-and-crop `size` (H, W)
    unless `size` is None."""
    import av
    from PIL import Image, ImageOps

    def fit(im) -> np.ndarray:
        im = im.convert("RGB")
        if size is not None and (im.height, im.width) != tuple(size):
            im = cover_frame(im, size)
        return np.asarray(im, dtype=np.uint8)

    for i, s in enumerate(sources):
        if s.video:
            with _open_video(s.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # FFmpeg decodes on both cores while the model runs
                try:
                    for frame in container.decode(stream):
                        if size is None or (frame.height, frame.width) == tuple(size):  # no PIL round trip
                            yield i, frame.to_ndarray(format="rgb24")
                        else:
                            yield i, fit(frame.to_image())
                except av.FFmpegError as e:
                    raise ImageError(f"cannot decode video {s.path}: {e}") from None
        else:
            try:
                with Image.open(s.path) as im:
                    im.load()
                    yield i, fit(ImageOps.exif_transpose(im))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise ImageError(f"cannot read image {s.path}: {e}") from None


def prefetched(items: Iterator, depth: int) -> Iterator:
    """The items of an iterator, produced by a background thread up to `depth` ahead: video decoding
    (FFmpeg, outside the GIL) then overlaps the model's passes. Errors reach the consumer in order."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
            q.put((done, None))
        except BaseException as e:  # handed to the consumer, raised there
            q.put((done, e))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def batches(frames: Iterator, size: int) -> Iterator[list]:
    """Items of an iterator in lists of at most `size`."""
    batch = []
    for item in frames:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


class FrameWriter:
    """Writes uint8 frames (H, W, 3) to a video file (H.264 in yuv420p; FFV1 for .mkv, lossless) or to a
    folder as frame_000000.png, ... (numbered by the frame's index in its clip).

    `container` is the suffix that picks the format (the file may be a temporary name)."""

    def __init__(self, target: Path, fps: float | None, *, video: bool, container: str = ".mp4"):
        self.target = Path(target)
        self.index = 0
        self.video = video
        self.container = container.lower()
        self.fps = fps or 20.0
        self._container = self._stream = None

    def write(self, frame: np.ndarray, index: int | None = None) -> None:
        if index is not None:
            self.index = index
        if self.video:
            self._write_video(frame)
        else:
            from PIL import Image

            Image.fromarray(frame).save(self.target / f"frame_{self.index:06d}.png")
        self.index += 1

    def _write_video(self, frame: np.ndarray) -> None:
        import av
        from fractions import Fraction

        if self._container is None:
            if self.container != ".mkv" and (frame.shape[0] % 2 or frame.shape[1] % 2):  # yuv420p halves both
                raise ImageError(f"H.264 needs even frame sides, not {frame.shape[0]}x{frame.shape[1]}: "
                                 f"write a .mkv (lossless) or a folder of frames")
            self._container = av.open(str(self.target), "w", format=_FORMATS.get(self.container, "mp4"))
            rate = Fraction(self.fps).limit_denominator(1001)
            if self.container == ".mkv":
                self._stream = self._container.add_stream("ffv1", rate=rate)
                self._stream.pix_fmt = "bgr0"
            else:
                self._stream = self._container.add_stream("libx264", rate=rate)
                self._stream.pix_fmt = "yuv420p"
                self._stream.options = {"crf": "12"}
            self._stream.height, self._stream.width = frame.shape[:2]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None


_FORMATS = {".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}
