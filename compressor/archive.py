"""Reading clip archives: the codec an archive (or token file) names, the coding its frames were written
with, and its tokens by entropy decoding alone.

    with compressor.open_clip("drive.bin") as clip:     # header, index and model checked up front
        len(clip), clip.fps, clip.frame_size            # frames, frame rate, (H, W)
        window = clip[5000:5016]                        # uint16 tokens (16, 8, 16), decoded from the keyframe before

No network runs: a window costs its records' entropy decoding (about a millisecond a frame), so a world
model's data loader can draw random windows of a long drive. The tokens are the ones the frames were
coded from (`Codec.tokens` of the same frames), bit k of a token being latent channel k.
"""
from __future__ import annotations

import operator
import os

import numpy as np

from compressor.errors import BitstreamError, ModelMismatchError, TokenFileError


def codec_for_id(model_id: int, model, what: str, device: str = "cpu"):
    """The codec for a file made by `model_id`: `model` (a name, path or Codec) if given, refused when it is
    other weights, else the shipped model with that id, loaded on `device` (a Codec keeps its own). A
    checkpoint's legacy id (before context tables were added to it: the same network) and its table id
    (before its context net was added) are accepted; `coding_for` then gives no tables, or the tables
    without the net. So are the ids of a checkpoint whose coding it carries (`ModelCard.former_model_ids`)."""
    import compressor
    from compressor.codec import Codec
    from compressor.zoo import find_shipped

    if model is None:
        model = find_shipped(model_id)
        if model is None:
            raise ModelMismatchError(f"{what} was made by model {model_id:04x}, which is not a shipped model; "
                                     "pass the checkpoint it was made with (--model, or model=)")
    codec = model if isinstance(model, Codec) else compressor.load(model, device=device)
    if not codec.card.accepts(model_id, 1):  # version 1 accepts every id the checkpoint answers to, as find_shipped asks
        raise ModelMismatchError(f"{what} was made by model {model_id:04x}, not by '{codec.name}' ({codec.model_id:04x})")
    return codec


def read_tokens_for(path, model, device: str = "cpu"):
    """A token file and its sidecar (`tokens.read_token_file`), the codec that reads them (`codec_for_id`: the
    model the sidecar names, or `model`) and their frame size -> (tokens, sidecar, codec, (H, W));
    TokenFileError when the tokens are not the grid that frame size makes under that codec."""
    from compressor.tokens import read_token_file

    tokens, meta = read_token_file(path)
    codec = codec_for_id(meta["model_id_int"], model, f"token file {path}", device)
    size, grid = tuple(meta["frame_size"]), tuple(tokens.shape[1:])
    want = tuple(codec.model.latent_grid(*size))
    if grid != want:
        raise TokenFileError(f"{path} holds {grid[0]}x{grid[1]} tokens a frame; its {size[0]}x{size[1]} frames "
                             f"make {want[0]}x{want[1]}")
    return tokens, meta, codec, size


def _reopen(path, model, device):
    """A pickled ClipTokens opened again (pickle passes positional arguments only)."""
    return ClipTokens(path, model, device=device)


def coding_for(codec, model_id: int):
    """(context tables, context net) a file of `model_id` was coded with: the codec's both, its tables
    alone under its table id, none under its legacy id; both for a checkpoint whose coding it carries."""
    if model_id == codec.model_id or model_id in codec.card.former_model_ids:
        return codec._tables, codec._net
    return (codec._tables if model_id == codec.card.table_model_id else None), None


class ClipTokens:
    """A clip archive opened for its tokens (`compressor.open_clip`): `clip[a:b]` or `clip.tokens(a, b)`, and
    `clip.frames(a, b)` for the decoded frames.

    Safe in forked data-loader workers (a process that did not open the file reopens it, so workers do
    not share a file position) and picklable for spawned ones when `model` is None, a name or a path.
    `device` is where `frames` runs the decoder (a `model` given as a Codec keeps its own)."""

    def __init__(self, path: str | os.PathLike, model=None, *, device: str = "cpu"):
        from compressor.bitstream import MAGIC
        from compressor.clip import ClipError, ClipReader
        from compressor.codec import MAX_CODEC_PIXELS
        from compressor.images import check_pixels

        self.path = os.path.abspath(os.fspath(path))  # a forked worker reopens it, wherever its cwd
        self._model, self._device = model, str(device)
        if os.path.isdir(self.path):
            raise BitstreamError(f"{self.path} is a folder, not a clip archive")
        if not os.path.isfile(self.path):
            raise BitstreamError(f"clip archive not found: {self.path}")
        self._file, self._pid = open(self.path, "rb"), os.getpid()
        try:
            try:
                self.reader = ClipReader(self._file)
            except ClipError as e:
                self._file.seek(0)
                if self._file.read(1) == bytes([MAGIC]):
                    raise ClipError(f"{self.path} is one frame's .bin, not a clip archive: compressor.decode reads it") from None
                raise ClipError(f"{self.path}: {e}") from None
            h = self.reader.header
            check_pixels(h.height, h.width, MAX_CODEC_PIXELS, f"clip {self.path}: ")
            self.codec = codec_for_id(h.model_id, model, f"clip {self.path}", device)
        except BaseException:
            self._file.close()
            raise
        self._tables, self._net = coding_for(self.codec, h.model_id)
        self.shape = (self.codec.model.latent_channels, *self.codec.model.latent_grid(h.height, h.width))
        self.fps, self.frame_size, self.keyframe_interval = h.fps, (h.height, h.width), h.keyframe_interval

    def __len__(self) -> int:
        return len(self.reader)

    def __repr__(self) -> str:
        return f"ClipTokens({self.path!r}: {len(self)} frames of {self.frame_size[0]}x{self.frame_size[1]}, {self.codec.name})"

    def _open_reader(self):
        """The reader, its file reopened in a process that did not open it (a forked worker)."""
        if self._file is None:
            raise ValueError(f"clip {self.path} is closed")
        if self._pid != os.getpid():
            self._file, self._pid = open(self.path, "rb"), os.getpid()
            self.reader.f = self._file
        return self.reader

    def symbols(self, start: int = 0, stop: int | None = None):
        """Frames start..stop-1 -> (i, uint8 symbols (C, h, w), or the BitstreamError that lost frame i)."""
        from compressor.clip_coding import clip_symbols

        stop = len(self) if stop is None else stop
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"frames {start}:{stop} are not a range of the clip's {len(self)} frames")
        reader = self._open_reader()  # a closed clip says so, even for an empty range
        if start == stop:
            return iter(())
        return self._until_closed(clip_symbols(reader, self.codec._cdf, self.shape, self._tables, self._net, start, stop))

    def _until_closed(self, frames):
        """The frames of a generator that reads this clip; closing the clip part-way ends it with the same
        error as reading a closed clip (not the file's "seek of closed file")."""
        try:
            yield from frames
        except ValueError:
            if self._file is None:
                raise ValueError(f"clip {self.path} is closed") from None
            raise

    def token_runs(self, start: int = 0, stop: int | None = None):
        """Frames start..stop-1 -> uint16 tokens in runs of up to `clip_coding.RUN` frames (b, h, w), in
        order; BitstreamError naming a damaged frame."""
        from compressor.clip_coding import RUN
        from compressor.tokens import tokens_from_symbols

        run = []
        for i, s in self.symbols(start, stop):
            if not isinstance(s, np.ndarray):
                raise BitstreamError(f"{self.path}: frame {i} is damaged ({s})")
            run.append(s)
            if len(run) == RUN:
                yield tokens_from_symbols(np.stack(run))
                run = []
        if run:
            yield tokens_from_symbols(np.stack(run))

    def tokens(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames start..stop-1 -> uint16 tokens (stop - start, h, w); BitstreamError naming a damaged frame."""
        runs = list(self.token_runs(start, stop))
        return np.concatenate(runs) if runs else np.empty((0, *self.shape[1:]), np.uint16)

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames start..stop-1 decoded through the model's network -> uint8 (stop - start, H, W, 3), as
        `decompress --frames A:B` writes them; BitstreamError naming a damaged frame. The range is held in
        memory at once (1.2 GB for 10,000 frames of 128x256): take a long clip in pieces."""
        return self.codec.from_tokens(self.tokens(start, stop), self.frame_size)

    def __getitem__(self, index):
        """clip[i] -> tokens (h, w); clip[a:b] -> tokens (b - a, h, w), as a list slices (steps of 1 only)."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("clip windows take a step of 1")
            return self.tokens(start, max(start, stop))
        i = operator.index(index)  # an integer, not a float that int() would truncate
        i += len(self) if i < 0 else 0
        if not 0 <= i < len(self):
            raise IndexError(f"frame {index} is outside the clip's {len(self)} frames")
        return self.tokens(i, i + 1)[0]

    def __reduce__(self):
        if not (self._model is None or isinstance(self._model, (str, os.PathLike))):
            raise TypeError("a ClipTokens opened with a Codec does not pickle: open it with the model's name or path")
        return (_reopen, (self.path, self._model, self._device))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "ClipTokens":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
