"""Writing files: the permission bits a file written through a temporary file should end up with."""
from __future__ import annotations

import os
import stat
from pathlib import Path


def new_file_mode(path: Path) -> int:
    """The permission bits `path` should get: an existing file's own, else what open() gives under the umask.

    Temporary files (mkstemp, safetensors' writer) are owner-only; a file renamed into place from one
    would otherwise stay 0600 whatever the umask says.
    """
    try:
        return stat.S_IMODE(Path(path).stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
