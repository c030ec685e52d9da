"""Fitting a checkpoint's context tables on image folders (`compressor fit-context`).

    folders -> 128x256 frames (Lanczos resize to cover, centre crop) -> the checkpoint's symbols
      -> spatial table over every frame; temporal table over consecutive frames of each sequence
      -> a new checkpoint: same network tensors, `context.spatial` / `context.temporal`, new model id,
         the old id kept as `legacy_model_id`, the card saying what the tables were fitted on

A sequence is a run of files in one folder whose names differ only in a frame number (the last run
of 3 or more digits, e.g. `cityscapes_seq0001_aachen_000001_000012_leftImg8bit.jpg`); its pairs are the
frames one and two steps apart, so the temporal table serves clips at a camera's rate and at half of it.
"""
from __future__ import annotations

import fnmatch
import re
import time
from pathlib import Path

import numpy as np

FRAME = (128, 256)
RUN = 8  # `frames` keeps runs of this many consecutive files, so the kept frames still hold pairs
PAIR_STEPS = (1, 2)
_FRAME_NUMBER = re.compile(r"\d{3,}")


def select_files(files: list[Path], frames: int | None, exclude: list[str]) -> list[Path]:
    """Files not matching any `exclude` glob (on the name); then at most `frames` of them, in runs of RUN
    consecutive files spread evenly over the sorted list."""
    files = [f for f in files if not any(fnmatch.fnmatch(f.name, pattern) for pattern in exclude)]
    if frames is None or frames >= len(files):
        return files
    runs = -(-frames // RUN)
    starts = np.linspace(0, max(len(files) - RUN, 0), runs).round().astype(int)
    keep = sorted({i for s in starts for i in range(s, min(s + RUN, len(files)))})
    return [files[i] for i in keep[:frames]]


def sequence_pairs(files: list[Path]) -> list[tuple[int, int, int]]:
    """(earlier, later, step): index pairs of frames PAIR_STEPS apart within each sequence of `files`.

    Frames of a sequence are ordered by number; a step counts files that are there, at the sequence's
    usual spacing (its smallest gap), so a gap in the numbering breaks the sequence.
    """
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for index, f in enumerate(files):
        runs = list(_FRAME_NUMBER.finditer(f.stem))
        if runs:
            m = runs[-1]  # the frame number: the last run of 3+ digits
            key = (f.parent, f.stem[: m.start()], f.stem[m.end() :], f.suffix.lower())
            groups.setdefault(key, []).append((int(m.group()), index))
    pairs = []
    for members in groups.values():
        members.sort()
        if len(members) < 2:
            continue
        numbers = np.array([n for n, _ in members])
        spacing = int(np.diff(numbers).min())
        if spacing <= 0:
            continue
        for step in PAIR_STEPS:
            for (a, i), (b, j) in zip(members[:-step], members[step:]):
                if b - a == step * spacing:
                    pairs.append((i, j, step))
    return pairs


def load_frames(files: list[Path]) -> np.ndarray:
    """uint8 (N, 128, 256, 3) frames made as `../shared/data/README.md` says."""
    from compressor.training.data import cover_frame, first_frame

    return np.stack([np.asarray(cover_frame(first_frame(f), FRAME)) for f in files])


def folder_label(folder: str | Path) -> str:
    """A folder as the card names it: its last two path parts (`train/driving`), never an absolute path."""
    return "/".join(Path(folder).resolve().parts[-2:])


def fit_context(checkpoint: str | Path, folders: list[str | Path], out: str | Path, *, frames: int | None = None,
                exclude: list[str] = (), verbose: bool = True) -> dict:
    """Fit both tables of `checkpoint` on the folders' frames and write the checkpoint `out`; returns its card entry."""
    from compressor import context_model
    from compressor.checkpoint import save_with_context
    from compressor.model import load_model
    from compressor.codec import Codec
    from compressor.training.data import find_images

    start = time.perf_counter()
    files = select_files(find_images(folders), frames, list(exclude))
    if not files:
        raise FileNotFoundError("no frames left to fit on (check --exclude)")
    model, card = load_model(checkpoint)
    codec = Codec(model, card)
    symbols = []
    for i in range(0, len(files), 256):  # frames in chunks: 256 frames are 25 MB of pixels
        arrays = list(load_frames(files[i : i + 256]))
        symbols += codec._run_batched(arrays, lambda x: codec._encode_symbols(x, None))
        if verbose:
            print(f"encoded {len(symbols)} / {len(files)} frames", flush=True)
    pairs = sequence_pairs(files)
    if not pairs:
        raise ValueError("no consecutive frames found for the temporal table (see compressor/context_fit.py)")
    tables = {
        "spatial": context_model.fit_tables(symbols),
        "temporal": context_model.fit_temporal([(symbols[i], symbols[j]) for i, j, _ in pairs]),
    }
    entry = {
        "spatial": {"layout": context_model.SPATIAL.name, "frames": len(files)},
        "temporal": {"layout": context_model.TEMPORAL.name, "pairs": len(pairs), "steps": list(PAIR_STEPS)},
        "folders": [folder_label(f) for f in folders],
        "excluded": list(exclude),
        "frame": list(FRAME),
        "smoothing": context_model.SMOOTHING,
        "encode_precision": codec.encode_precision,
        "seconds": round(time.perf_counter() - start, 1),
    }
    model_id, legacy = save_with_context(checkpoint, out, tables, {"context": entry})
    entry["model_id"], entry["legacy_model_id"] = f"{model_id:04x}", f"{legacy:04x}"
    return entry
