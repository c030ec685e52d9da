"""Windows of consecutive frames' tokens across many drives: the dataset a world model trains on.

    windows = compressor.token_windows(["drives/", "extra.npy"], length=16, stride=8)
    len(windows)            # windows in all the sources together; none spans two sources or two videos
    windows[i]              # uint16 tokens (16, 8, 16), bit k of a token = latent channel k
    windows.locate(i)       # (source path, its first frame)
    loader = torch.utils.data.DataLoader(windows, batch_size=64, shuffle=True, num_workers=4)

Sources are clip archives (`compress drive.mp4 drive.bin`: a window costs its records' entropy decoding,
about a millisecond a frame, and no network) and token files (`compressor tokens ... --out t.npy`, read
memory-mapped; a window stays inside one of the videos its sidecar lists); a folder stands for the
archives and token files under it. They must all hold one model's tokens of one frame size, so that a
token means the same everywhere, and no file may be read twice. `every=2` takes every second frame (a 20 fps drive read at 10 fps).

An object of this class is a map-style dataset (`len` and indexing): forked data-loader workers reopen
what they read (`archive.ClipTokens`), and it pickles by its sources' paths for spawned ones. At most
`OPEN` archives are held open at a time, so a dataset of thousands of drives stays within the open-file
limit. A damaged archive frame raises `BitstreamError` naming the file and frame; a token file holding a
value of more bits than the model's raises `TokenFileError` naming the file and frame, rather than
handing an embedding table an index past its end.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from compressor.errors import ModelMismatchError, TokenFileError
from compressor.folders import files_under
from compressor.tokens import check_token_range, read_token_file

OPEN = 16  # archives held open at once, per process
SUFFIXES = (".bin", ".npy")
MAX_FRAMES = 10**9  # bounds length, stride and every, so window arithmetic stays in int64


def expand_sources(sources) -> list[str]:
    """Paths and folders -> absolute paths of archives and token files (a folder's, sorted, at any depth),
    as named (a link keeps its own name); a file reached twice is refused, since its windows would count twice."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in sources):
        raise TypeError(f"token_windows takes a path, or a list of paths, of archives, token files and folders; "
                        f"got {sources!r:.80}")
    out = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            found = sorted(str(f.absolute()) for f in files_under(p, SUFFIXES))  # as strings: window numbers stay put
            if not found:
                raise TokenFileError(f"folder {p} holds no clip archives (.bin) or token files (.npy)")
            out += found
        elif p.is_file():
            out.append(str(p.absolute()))
        else:
            raise TokenFileError(f"token source not found: {p}")
    if not out:
        raise ValueError("token_windows needs at least one clip archive or token file")
    seen: dict[str, str] = {}
    for path in out:
        real = os.path.realpath(path)
        if real in seen:
            raise TokenFileError(f"{path} is {seen[real]} again: each source once, or its windows count twice")
        seen[real] = path
    return out


def _same_drive(path: str, meta: dict, paths: list[str]) -> None:
    """TokenFileError when a token file was made from an archive beside it that the dataset also reads
    (`compressor tokens drive.bin --out drive.npy` in the folder of drive.bin): the drive would count twice."""
    folder = os.path.dirname(path)
    for source in meta.get("sources") or []:
        name = source.get("file") if isinstance(source, dict) else None
        twin = os.path.join(folder, name) if isinstance(name, str) and name.lower().endswith(".bin") else None
        if twin in paths:
            raise TokenFileError(f"{path} holds the tokens of {twin}, which is read too: pass one of them")


def _is_token_file(path: str) -> bool:
    """A token file (.npy, with its sidecar), else a clip archive."""
    return path.lower().endswith(".npy")


def _runs(meta: dict, frames: int, path: str) -> list[int]:
    """A token file's runs of one source each, from its sidecar's `sources` (one run when it names none)."""
    counts = [s.get("frames") if isinstance(s, dict) else None for s in meta.get("sources") or []]
    if not counts:
        return [frames]
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts) or sum(counts) != frames:
        raise TokenFileError(f"the sidecar of {path} lists sources that do not add up to its {frames} frames")
    return [n for n in counts if n]


def _stamp(source, model_id: int) -> tuple:
    """What a source's windows were counted from: (frames, token grid, the model id its file gives)."""
    return len(source), tuple(int(n) for n in source.shape[-2:]), int(model_id)


def _says(stamp: tuple) -> str:
    frames, (h, w), model_id = stamp
    return f"{frames} frames of {h}x{w} tokens, model {model_id:04x}"


class TokenWindows:
    """Windows of `length` frames `every` frames apart, starting every `stride` frames, in each run of one
    source (an archive, or a video or folder within a token file)."""

    def __init__(self, sources, length: int, *, stride: int | None = None, every: int = 1, model=None):
        for name, v in (("length", length), ("stride", length if stride is None else stride), ("every", every)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_FRAMES:
                raise ValueError(f"{name} must be a whole number of frames from 1 to {MAX_FRAMES:,}; got {v!r}")
        self.length, self.stride, self.every = int(length), int(length if stride is None else stride), int(every)
        self.span = (self.length - 1) * self.every + 1  # frames a window covers in its source
        self._model = model
        self.paths = expand_sources(sources)
        self._codec = None
        segments, rates = [], []  # (source, first frame, frames): the runs of one video a window stays in
        self._stamps = []  # each source's (frames, token grid, model id as its file gives it), checked on reopening
        for k, path in enumerate(self.paths):
            runs, codec, size, grid, fps, stamp = self._describe(path)
            self._stamps.append(stamp)
            if self._codec is None:
                self._codec, self.frame_size, self.grid = codec, size, grid
            elif codec.model_id != self._codec.model_id:
                raise ModelMismatchError(f"{path} holds tokens of model '{codec.name}' ({codec.model_id:04x}), "
                                         f"{self.paths[0]} of '{self._codec.name}' ({self._codec.model_id:04x}): "
                                         "one dataset takes one model's tokens")
            elif (size, grid) != (self.frame_size, self.grid):
                raise TokenFileError(f"{path} holds {grid[0]}x{grid[1]} tokens of {size[0]}x{size[1]} frames, "
                                     f"{self.paths[0]} {self.grid[0]}x{self.grid[1]} of {self.frame_size[0]}x"
                                     f"{self.frame_size[1]}: one dataset takes one frame size")
            segments += [(k, first, n) for first, n in zip(np.cumsum([0] + runs[:-1]), runs)]
            rates.append(fps)
        self._segments = np.array(segments, np.int64).reshape(-1, 3)  # (segments, 3)
        counts = np.maximum(0, (self._segments[:, 2] - self.span) // self.stride + 1)  # (segments,)
        if not counts.sum():
            longest = int(self._segments[:, 2].max()) if len(self._segments) else 0
            raise ValueError(f"no source holds a window of {self.span} frames (the longest run of one video "
                             f"holds {longest})")
        self._ends = np.cumsum(counts)  # (segments,): window i is in the first segment whose end exceeds i
        self.model_id, self.bits = self._codec.model_id, self._codec.model.latent_channels
        fps = rates[0] if len(set(rates)) == 1 else None
        self.fps = None if fps is None else fps / self.every  # of a window's frames; None when sources differ
        self._reset()

    def _describe(self, path: str):
        """One source -> (the frame counts of its runs, its codec, frame size, token grid, fps or None, its
        stamp), its file closed again. A token file's runs are its sidecar's sources (`compressor tokens a.mp4
        b.mp4` writes both videos into one file, and a window must not run from one into the other)."""
        from compressor.archive import ClipTokens, read_tokens_for

        if _is_token_file(path):
            tokens, meta, codec, size = read_tokens_for(path, self._model)
            _same_drive(path, meta, self.paths)
            return (_runs(meta, len(tokens), path), codec, size, tuple(tokens.shape[1:]), meta.get("fps"),
                    _stamp(tokens, meta["model_id_int"]))
        with ClipTokens(path, self._model) as clip:
            return ([len(clip)], clip.codec, clip.frame_size, tuple(clip.shape[1:]), clip.fps,
                    _stamp(clip, clip.reader.header.model_id))

    def _reset(self) -> None:
        self._open: OrderedDict[int, object] = OrderedDict()  # source -> ClipTokens or memory-mapped tokens
        self._pid = os.getpid()

    def _source(self, k: int):
        """Source k opened (an archive's `ClipTokens`, a token file's memory map), the least recent closed."""
        from compressor.archive import ClipTokens

        if self._pid != os.getpid():  # a forked worker: its parent's open archives stay the parent's
            self._reset()
        if k in self._open:
            self._open.move_to_end(k)
            return self._open[k]
        path = self.paths[k]
        if _is_token_file(path):
            source, meta = read_token_file(path)
            stamp = _stamp(source, meta["model_id_int"])
        else:
            source = ClipTokens(path, self._model)
            stamp = _stamp(source, source.reader.header.model_id)
        if stamp != self._stamps[k]:  # replaced since: its windows, counted from the old file, would be wrong
            if isinstance(source, ClipTokens):
                source.close()
            raise TokenFileError(f"{path} has changed since the dataset was made ({_says(self._stamps[k])}; "
                                 f"now {_says(stamp)}): make the dataset again")
        self._open[k] = source
        if len(self._open) > OPEN:
            _, old = self._open.popitem(last=False)
            if isinstance(old, ClipTokens):
                old.close()
        return source

    def __len__(self) -> int:
        return int(self._ends[-1])

    def _where(self, index) -> tuple[int, int]:
        """Window `index` -> (its source, the source frame it starts at)."""
        whole = isinstance(index, int) or (np.ndim(index) == 0 and np.issubdtype(np.asarray(index).dtype, np.integer))
        if isinstance(index, bool) or not whole:  # a Python int of any size: past the end is an IndexError
            raise TypeError(f"a window index is a whole number, not {index!r}")
        i = int(index)
        i += len(self) if i < 0 else 0
        if not 0 <= i < len(self):
            raise IndexError(f"window {int(index)} is outside the {len(self)} windows")
        j = int(np.searchsorted(self._ends, i, side="right"))
        source, first, _ = (int(v) for v in self._segments[j])
        return source, first + (i - (int(self._ends[j - 1]) if j else 0)) * self.stride

    def locate(self, index) -> tuple[str, int]:
        """Window `index` -> (its source's path, the source frame it starts at)."""
        k, first = self._where(index)
        return self.paths[k], first

    def __getitem__(self, index) -> np.ndarray:
        """Window `index` -> uint16 tokens (length, h, w)."""
        k, first = self._where(index)
        run = np.asarray(self._source(k)[first : first + self.span])[:: self.every]  # (length, h, w)
        if _is_token_file(self.paths[k]):  # an archive's tokens were range-checked when it was written
            check_token_range(run, self.bits, f"token file {self.paths[k]}", first, self.every)
        return np.array(run, np.uint16)  # a copy, never a view of a memory map

    @property
    def codec(self):
        """The model whose tokens these are (loaded again in a process this dataset was pickled into)."""
        if self._codec is None:
            from compressor.archive import codec_for_id

            self._codec = codec_for_id(self.model_id, self._model, "token windows")
        return self._codec

    def __repr__(self) -> str:
        return (f"TokenWindows({len(self)} windows of {self.length} frames from {len(self.paths)} sources, "
                f"stride {self.stride}, every {self.every}, model {self.model_id:04x})")

    def __getstate__(self) -> dict:
        from compressor.codec import Codec

        if isinstance(self._model, Codec):
            raise TypeError("TokenWindows made with a Codec does not pickle: give the model's name or path")
        return {**self.__dict__, "_open": None, "_codec": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()
