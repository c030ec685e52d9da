"""The files of a data folder, at any depth: how training data and token datasets are found."""
from __future__ import annotations

import os
from pathlib import Path


def files_under(folder: str | Path, suffixes) -> list[Path]:
    """Files under `folder` whose lower-cased suffix is in `suffixes`, at any depth, sorted by path.

    Linked folders are followed, since a data set is often a folder of links to drives kept on other disks
    (pathlib's rglob skips them before Python 3.13); each real folder is read once, so a link loop ends.
    """
    seen: set[str] = set()
    found: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []  # reached again through a link: already read, and its links may lead back here
            continue
        seen.add(real)
        dirs.sort()  # a folder reached two ways is read under the name a sorted walk meets first, on any file system
        found += [Path(root, n) for n in names
                  if Path(n).suffix.lower() in suffixes and os.path.isfile(os.path.join(root, n))]
    return sorted(found)
