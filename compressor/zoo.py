"""The shipped models: the one table of their names (timm-style `arch.tag`), files, aliases and former names.

    vit.default            the default: the pure ViT trained longest, encoder distilled from refinement
    {arch}.equal-budget    one per architecture, all four at the same training budget (the comparison)

Only the files named here are shipped (and go into the wheel), and `checkpoints/` holds only them. Former
checkpoints live in git history (commit d948f12 is the last that holds them all, 1726f52 the last with the
"-ft" models that the "-snap" ones replaced); a former name gives a one-line error naming the shipped model
that replaces it. Run `python -m compressor.zoo --normalise-cards` to rewrite the shipped files' model
cards without build-machine paths (tensors and model ids unchanged).
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from compressor.errors import ModelError


@dataclass(frozen=True)
class ShippedModel:
    name: str  # arch.tag
    file: str  # in checkpoints/ (file names kept from training: renaming 17 MB files costs a commit that size)
    summary: str

    @property
    def alias(self) -> str:
        """The name the model had before the zoo: its file's stem."""
        return Path(self.file).stem


SHIPPED: dict[str, ShippedModel] = {
    m.name: m
    for m in [
        ShippedModel("vit.default", "vit-distil2-snap.safetensors",
                     "pure ViT, longest trained, encoder distilled from refinement twice, decoder fine-tuned on its "
                     "codes snapped by the context net"),
        ShippedModel("vit.equal-budget", "vit-1m-distil-snap.safetensors",
                     "pure ViT at the comparison's budget (1M frames, distilled, decoder fine-tuned on snapped codes)"),
        ShippedModel("cvit.equal-budget", "cvit-1m-distil-snap.safetensors",
                     "windowed-attention ViT at the comparison's budget"),
        ShippedModel("hybrid.equal-budget", "hybrid-1m-distil-snap.safetensors",
                     "conv stem + global attention at the comparison's budget"),
        ShippedModel("convnext.equal-budget", "convnext-1m-distil-snap.safetensors",
                     "all-convolutional ConvNeXt at the comparison's budget"),
    ]
}
DEFAULT_MODEL = "vit.default"
ALIASES: dict[str, str] = {m.alias: m.name for m in SHIPPED.values()}

# Names of checkpoints shipped before, not now -> the shipped model that replaces each. Their weights
# stay in git history (d948f12:checkpoints/NAME.safetensors); their numbers in docs/training-record.md.
REMOVED: dict[str, str] = {
    "vit": "vit.equal-budget",
    "vit-1m": "vit.equal-budget",
    "vit-1m-distil": "vit.equal-budget",
    "vit-long": "vit.default",
    "vit-long2": "vit.default",
    "vit-distil": "vit.default",
    "vit-distil-ft": "vit.default",
    "vit-distil2": "vit.default",
    "vit-distil2-ft": "vit.default",  # its files still decode: vit.default carries its encoder and coding
    "cvit": "cvit.equal-budget",
    "cvit-1m": "cvit.equal-budget",
    "cvit-1m-distil": "cvit.equal-budget",
    "hybrid": "hybrid.equal-budget",
    "hybrid-1m": "hybrid.equal-budget",
    "hybrid-1m-distil": "hybrid.equal-budget",
    "convnext": "convnext.equal-budget",
    "convnext-1m": "convnext.equal-budget",
    "convnext-1m-distil": "convnext.equal-budget",
    # the equal-budget models before snapping; each successor carries its encoder and coding, so their files decode
    "vit-1m-distil-ft": "vit.equal-budget",
    "cvit-1m-distil-ft": "cvit.equal-budget",
    "hybrid-1m-distil-ft": "hybrid.equal-budget",
    "convnext-1m-distil-ft": "convnext.equal-budget",
}

# The source tree's checkpoints/; a wheel maps the shipped files into compressor/checkpoints/.
_SOURCE_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
_INSTALLED_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def canonical_name(name: str) -> str:
    """A shipped name or alias -> the shipped name; a former name or an unknown one -> ModelError."""
    if name in SHIPPED:
        return name
    if name in ALIASES:
        return ALIASES[name]
    if name in REMOVED:
        raise ModelError(f"model '{name}' is no longer shipped; use '{REMOVED[name]}' "
                         f"(git history keeps its checkpoint)")
    raise ModelError(f"unknown model '{name}' (shipped: {', '.join(SHIPPED)}; or pass a .safetensors path)")


def shipped_path(name: str) -> Path | None:
    """Where a shipped model's file is (the installed package's, else the source tree's), or None."""
    file = SHIPPED[canonical_name(name)].file
    for folder in (_INSTALLED_CHECKPOINTS, _SOURCE_CHECKPOINTS):  # installed first: site-packages/checkpoints is no one's
        if (folder / file).is_file():
            return folder / file
    return None


def shipped_models() -> dict[str, Path]:
    """Shipped names -> paths, the default first, for the files present."""
    found = {name: shipped_path(name) for name in SHIPPED}
    return {name: path for name, path in found.items() if path is not None}


def name_of(path: str | os.PathLike) -> str | None:
    """The shipped name of a checkpoint path, or None if it is not one of the shipped files."""
    path = Path(path).resolve()
    for name, shipped in shipped_models().items():
        if shipped.resolve() == path:
            return name
    return None


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped name ("vit.default"), an alias ("vit-distil2-snap") or a .safetensors path -> the file's path."""
    text = str(name_or_path)
    if text in SHIPPED or text in ALIASES:
        path = shipped_path(text)
        if path is None:
            raise ModelError(f"shipped model '{canonical_name(text)}' is not installed "
                             f"({SHIPPED[canonical_name(text)].file} is missing)")
        return path
    path = Path(text)
    if path.suffix == ".safetensors" or os.sep in text or path.exists():
        if not path.is_file():
            raise ModelError(f"checkpoint not found: {path}")
        return path
    canonical_name(text)  # raises: a former name, or unknown
    raise AssertionError("unreachable")


@lru_cache(maxsize=64)
def _card_of(path: str, mtime_ns: int):
    from compressor.checkpoint import read_card

    return read_card(path)


def find_shipped(model_id: int, version: int = 1) -> Path | None:
    """The shipped checkpoint that wrote a .bin header with this model id and payload coding
    (`Header.coding_version`), or None; only the shipped files are looked at.

    A per-channel or raw payload may carry a checkpoint's legacy id (written before its context tables were added).
    `compressor.decode` asks this for every file it decodes, so each checkpoint's header is read once
    (again only if the file changes), not once per decoded frame.
    """
    for path in shipped_models().values():
        if _card_of(str(path), path.stat().st_mtime_ns).accepts(model_id, version):
            return path
    return None


# --- model cards without build-machine paths -----------------------------------------------------
# "../shared/data/train/driving" or "/srv/shared/data/train" -> "train/driving", "train": the data set's
# name inside the data folder. Any other path that reaches outside the repo keeps its last part only.
_DATA_PATH = re.compile(r"/?(?:[\w.+~-]+/)*data/((?:train|eval)(?:/[\w.+-]+)*)")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+([\w.+-]+)")
_CHECKPOINT_PATH = re.compile(r"/?(?:[\w.+-]+/)+([\w.+-]+)\.safetensors")  # absolute or relative


def _clean_text(text: str) -> str:
    text = _DATA_PATH.sub(r"\1", text)
    text = _CHECKPOINT_PATH.sub(r"\1", text)  # a warm start's seed: the model's name, as git history keeps it
    return _ABSOLUTE_PATH.sub(r"\1", text)


def normalise_card(card):
    """A model card (any JSON value) with paths replaced by data-set and model names; all else kept.

    Data folders become data-set names (`train/driving`), checkpoint paths the model's former name
    (`vit-1m-distil`), other absolute paths their last part, so the training history stays readable.
    """
    if isinstance(card, dict):
        return {k: normalise_card(v) for k, v in card.items()}
    if isinstance(card, list):
        return [normalise_card(v) for v in card]
    if isinstance(card, str):
        return _clean_text(card)
    return card


def normalise_shipped_cards() -> list[str]:
    """Rewrite each shipped file's card: normalised, under its shipped name (former name kept as `alias`)."""
    from compressor.checkpoint import read_card, update_card

    lines = []
    for name, path in shipped_models().items():
        card = normalise_card(read_card(path).card)
        card = {**card, "name": name, "alias": SHIPPED[name].alias}
        update_card(path, card)
        lines.append(f"{name}: rewrote the card of {path.name}")
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["--normalise-cards"]:
        print("usage: python -m compressor.zoo --normalise-cards", file=sys.stderr)
        return 2
    for line in normalise_shipped_cards():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
