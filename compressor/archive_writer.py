"""Writing clip archives from Python: frames (or tokens) in, one archive out, as `compress drive.mp4 drive.bin`
writes it, for frames that come from a camera, a log or a simulator rather than a video file.

    with compressor.clip_writer("drive.bin", fps=20) as clip:
        for frames in camera:            # uint8 (N, H, W, 3), or a list of images
            clip.add(frames)
    # drive.bin appears whole when the block ends; an error inside it leaves no file behind

Frames are resized to the model's frame (Lanczos cover, centre crop) unless `resize=False`; every
`keyframe_interval`th frame is coded alone, the others each the shortest way their place allows
(`clip_coding.encode_frames`). Memory stays flat: records go to the file as they are coded, and only the
index (2 bytes a frame) waits for `close`. The CLI writes its archives through this class.
"""
from __future__ import annotations

import os
import warnings

from compressor.errors import ImageError, TokenFileError  # numpy on first use: the CLI imports this, and starts fast

# 10, not 30: the slowest frame to reach decodes 10 records, not 30 (30.5 against 55.0 ms on one core of an
# AMD EPYC, docs/tokens-and-clips.md), for 0.2-0.8% more bytes on driving clips.
KEYFRAME_INTERVAL = 10


class ArchiveWriter:
    """A clip archive being written at `path` (renamed into place by `close`; `abort` leaves nothing)."""

    def __init__(self, path: str | os.PathLike, model=None, *, fps: float | None = None,
                 keyframe_interval: int = KEYFRAME_INTERVAL, resize: bool = True):
        import numpy as np

        from compressor.atomic import AtomicFile
        from compressor.clip import MAX_KEYFRAME_INTERVAL, ClipHeader
        from compressor.codec import Codec, load

        if isinstance(keyframe_interval, bool) or not isinstance(keyframe_interval, (int, np.integer)) \
                or not 1 <= keyframe_interval <= MAX_KEYFRAME_INTERVAL:
            raise ValueError(f"keyframe_interval must be a whole number from 1 to {MAX_KEYFRAME_INTERVAL}; "
                             f"got {keyframe_interval!r}")
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not fps > 0):
            raise ValueError(f"fps must be a number above 0, or None; got {fps!r}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder; give the archive a file name")
        self.codec = model if isinstance(model, Codec) else load(model) if model is not None else load()
        self.fps, self.keyframe_interval, self.resize = fps, int(keyframe_interval), resize
        self.path = os.fspath(path)
        self.kinds: dict[int, int] = {}  # record kind -> frames coded that way
        self.frame_size: tuple[int, int] | None = None  # fixed by the first frames
        ClipHeader(self.codec.model_id, 1, 1, fps, self.keyframe_interval).pack()  # ValueError: does not fit one
        self._out = AtomicFile(path)
        self._file = open(self._out.tmp, "w+b")  # read back too: the header gets its frame count last
        self._writer = self._prev = None

    def __len__(self) -> int:
        """Frames written so far."""
        return 0 if self._writer is None else len(self._writer.lengths)

    def add(self, frames) -> None:
        """Frames in order: a uint8 array (N, H, W, 3), a tensor (N, 3, H, W) or a uint8 tensor (N, H, W, 3) (as
        video readers give), or a list (or any iterable) of images (arrays, PIL images, paths), read, resized
        and coded a batch at a time."""
        import numpy as np
        from PIL import Image

        from compressor.codec import MAX_CODEC_PIXELS
        from compressor.frames import frame_size
        from compressor.images import cover_frame, to_rgb_array

        self._check_open()
        if isinstance(frames, (str, bytes, os.PathLike, Image.Image)) or getattr(frames, "ndim", 4) != 4:
            raise TypeError("add takes frames: a uint8 array (N, H, W, 3), a tensor (N, 3, H, W) or a list of "
                            "images (for one image, a list of one)")
        if type(frames).__module__.startswith("torch") and frames.shape[-1] == 3 and frames.shape[1] != 3 \
                and str(frames.dtype) == "torch.uint8":
            frames = frames.detach().cpu().numpy()  # (N, H, W, 3): channels last, as an array is read
        size = frame_size(self.codec) if self.resize else None
        batch: list = []
        for f in frames:
            if size is None:
                batch.append(to_rgb_array(f, max_pixels=MAX_CODEC_PIXELS))
            else:  # any size the reader takes: it is resized before coding
                a = to_rgb_array(f)
                batch.append(a if a.shape[:2] == size else np.asarray(cover_frame(Image.fromarray(a), size)))
            if len(batch) == self.codec.batch:
                self._add_frames(batch)
                batch = []
        if batch:
            self._add_frames(batch)

    def _add_frames(self, batch: list) -> None:
        """uint8 frames (H, W, 3) of one size, the archive's -> their records."""
        sizes = sorted({a.shape[:2] for a in batch} | ({self.frame_size} if self.frame_size else set()))
        if len(sizes) > 1:
            (h1, w1), (h2, w2) = sizes[:2]
            raise ImageError(f"frames differ in size ({h1}x{w1} and {h2}x{w2}): one archive holds one frame size "
                             "(resize=True makes every frame the model's)")
        self.add_symbols(self.codec.symbols_batch(batch), batch[0].shape[:2])

    def add_tokens(self, tokens, frame_size: tuple[int, int] | None = None) -> None:
        """uint16 tokens (N, h, w) of this model, coded as they are (no network): a world model's output, or
        `compressor tokens`' file. `frame_size` (H, W) defaults to the model's frame."""
        import numpy as np

        from compressor.frames import frame_size as model_frame
        from compressor.tokens import checked_tokens, symbols_from_tokens

        self._check_open()
        tokens = np.asarray(tokens)  # a memory map stays one: it is read a batch at a time
        size = tuple(frame_size) if frame_size is not None else self.frame_size or model_frame(self.codec)
        grid, bits, batch = self.codec.model.latent_grid(*size), self.codec.model.latent_channels, self.codec.batch
        if tokens.ndim != 3 or tokens.shape[1:] != grid:
            raise TokenFileError(f"tokens must be an array (N, {grid[0]}, {grid[1]}) for {size[0]}x{size[1]} frames; "
                                 f"got shape {tokens.shape}")
        for start in range(0, len(tokens), batch):  # every value checked before any is written
            checked_tokens(tokens[start : start + batch], bits)
        for start in range(0, len(tokens), batch):
            self.add_symbols(symbols_from_tokens(tokens[start : start + batch], bits), size)

    def add_symbols(self, symbols, size: tuple[int, int]) -> None:
        """Consecutive frames' uint8 symbols (N, C, h, w) of `size` (H, W) frames -> their records."""
        from compressor.clip import ClipHeader, ClipWriter
        from compressor.clip_coding import encode_frames

        self._check_open()
        size = (int(size[0]), int(size[1]))
        if self._writer is None:
            self._writer = ClipWriter(self._file, ClipHeader(self.codec.model_id, *size, self.fps, self.keyframe_interval))
            self.frame_size = size
        elif size != self.frame_size:
            raise ImageError(f"frames of {size[0]}x{size[1]} after {self.frame_size[0]}x{self.frame_size[1]}: one "
                             "archive holds one frame size")
        symbols = list(symbols)
        if not symbols:
            return
        n = len(self._writer.lengths)
        prevs = [None if (n + i) % self.keyframe_interval == 0 else p  # None: a keyframe
                 for i, p in enumerate([self._prev] + symbols[:-1])]
        codec = self.codec
        for kind, payload in encode_frames(symbols, codec._cdf, codec._tables, prevs, codec._net):
            self._writer.add(kind, payload)
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self._prev = symbols[-1]

    def _check_open(self) -> None:
        if self._file.closed:
            raise ValueError(f"{self.path}: the archive writer is closed")

    def close(self) -> None:
        """Write the index and move the archive into place; an archive of no frames is an error, and no file."""
        from compressor.clip import ClipError

        if self._file.closed:
            return
        try:
            if not len(self):
                raise ClipError(f"{self.path}: a clip archive needs at least one frame")
            self._writer.close()
            self._file.close()
            self._out.commit()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop, leaving no archive (and what stood at the path before, untouched)."""
        self._file.close()
        self._out.abort()

    def __del__(self) -> None:  # dropped unclosed: no temporary file stays, and the user hears of it
        if getattr(self, "_file", None) is not None and not self._file.closed:
            try:
                self.abort()
                warnings.warn(f"a clip writer for {self.path} was dropped before close(): no archive was written")
            except Exception:  # at interpreter exit the os module may already be gone
                pass

    def __enter__(self) -> "ArchiveWriter":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._file.closed else "open"
        return f"ArchiveWriter({self.path!r}, {len(self)} frames, model {self.codec.name}, {state})"
