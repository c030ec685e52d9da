"""Fitting a checkpoint's context tables on image folders (`compressor fit-context`).

    folders -> 128x256 frames (Lanczos resize to cover, centre crop) -> the checkpoint's symbols
      -> spatial table over every frame; temporal table over consecutive frames of each sequence
      -> a new checkpoint: same network tensors, `context.spatial` / `context.temporal`, new model id,
         the old id kept as `legacy_model_id`, the card saying what the tables were fitted on
    with --net: those frames plus random crops of every file -> a context net (`context_net_fit`),
         `context.net.*` in the checkpoint, the id before it kept as `table_model_id`

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


def crop_frames(files: list[Path], crops: int, seed: int = 0) -> np.ndarray:
    """uint8 (N * crops, 128, 256, 3): per file, `crops` random crops (a random scale from half to the whole
    image, mirrored half the time) made into frames as `load_frames` makes them: more varied codes to fit the
    context net on than one frame a file."""
    from PIL import Image

    from compressor.training.data import cover_frame, first_frame

    rng = np.random.default_rng(seed)
    out = []
    for f in files:
        image = first_frame(f).convert("RGB")
        w, h = image.size
        for _ in range(crops):
            s = rng.uniform(0.5, 1.0)
            cw, ch = max(1, int(w * s)), max(1, int(h * s))
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            crop = image.crop((x0, y0, x0 + cw, y0 + ch))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            out.append(np.asarray(cover_frame(crop, FRAME)))
    return np.stack(out) if out else np.zeros((0, *FRAME, 3), np.uint8)


def _encode_all(codec, frames, verbose: bool, what: str) -> list[np.ndarray]:
    symbols = []
    for i in range(0, len(frames), 256):  # frames in chunks: 256 frames are 25 MB of pixels
        arrays = list(frames[i : i + 256]) if isinstance(frames, np.ndarray) else list(load_frames(frames[i : i + 256]))
        symbols += codec._run_batched(arrays, lambda x: codec._encode_symbols(x, None))
        if verbose:
            print(f"encoded {len(symbols)} / {len(frames)} {what}", flush=True)
    return symbols


def encode_crops(codec, files: list[Path], crops: int, verbose: bool = False) -> list[np.ndarray]:
    """The symbols of `crops` random crops of each file (`crop_frames`), what a context net fits on beside
    the files' cover frames; 64 files' crops at a time, so memory stays flat in the folder's size."""
    extra = []
    for k in range(0, len(files) if crops else 0, 64):
        extra += _encode_all(codec, crop_frames(files[k : k + 64], crops, seed=k), False, "random crops")
        if verbose:
            print(f"encoded {len(extra)} / {len(files) * crops} random crops", flush=True)
    return extra


def fit_context(checkpoint: str | Path, folders: list[str | Path], out: str | Path, *, frames: int | None = None,
                exclude: list[str] = (), verbose: bool = True, net: bool = False, keep_tables: bool = False,
                crops: int = 3, net_steps: int = 5000) -> dict:
    """Fit both tables of `checkpoint` on the folders' frames (or keep its own, `keep_tables`) and, with
    `net`, a context net on those frames plus `crops` random crops of each file; write the checkpoint
    `out`; returns its card entry."""
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
    if keep_tables and card.context_tables is None:
        raise ValueError(f"{checkpoint} has no context tables to keep")
    codec = Codec(model, card)
    symbols = _encode_all(codec, files, verbose, "frames")
    if keep_tables:
        tables, entry = card.context_tables, dict(card.card.get("context", {}))
    else:
        pairs = sequence_pairs(files)
        tables = {"spatial": context_model.fit_tables(symbols)}
        if pairs:  # without sequences (a folder of photos), no temporal table: clips code every frame alone
            tables["temporal"] = context_model.fit_temporal([(symbols[i], symbols[j]) for i, j, _ in pairs])
        entry = {
            "spatial": {"layout": context_model.SPATIAL.name, "frames": len(files)},
            "temporal": {"layout": context_model.TEMPORAL.name, "pairs": len(pairs), "steps": list(PAIR_STEPS)}
            if pairs else None,
            "folders": [folder_label(f) for f in folders],
            "excluded": list(exclude),
            "frame": list(FRAME),
            "smoothing": context_model.SMOOTHING,
            "encode_precision": codec.encode_precision,
        }
    net_tensors = None
    if net:
        from compressor import context_net_fit

        extra = encode_crops(codec, files, crops, verbose)
        trained = context_net_fit.train(np.stack(symbols + extra), steps=net_steps, log=print if verbose else None)
        net_tensors = context_net_fit.quantise(trained)
        entry["net"] = {"hidden": context_net_fit.HIDDEN, "width": context_net_fit.WIDTH,
                        "frames": len(symbols) + len(extra), "crops_per_file": crops, "steps": net_steps,
                        "batch": context_net_fit.BATCH, "folders": [folder_label(f) for f in folders],
                        "excluded": list(exclude)}
    entry["seconds"] = round(time.perf_counter() - start, 1)
    # The card's results measured the old coding's bytes: cleared, for `compressor eval --record` to measure anew.
    # A new file is a new model: it goes by its own name, not its seed's (files it writes name another id).
    update = {"context": entry, "results": {}, **({} if Path(out) == Path(checkpoint) else {"name": Path(out).stem})}
    model_id, legacy = save_with_context(checkpoint, out, tables, update, context_net=net_tensors)
    entry["model_id"], entry["legacy_model_id"] = f"{model_id:04x}", f"{legacy:04x}"
    return entry
