"""Atomic file output: write beside the target, then rename, so a reader never sees a half-written file."""
from __future__ import annotations

import os
import stat
import tempfile
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


def write_atomic(path: Path, data: bytes | None = None, *, writer=None) -> None:
    """Write bytes (or call writer(tmp_path)) to a temp file beside `path`, then rename it into place.

    The file gets the permissions a plain open() would give it (the temp file's are owner-only). A target
    that exists and is not a regular file (/dev/null, a pipe) is written into, not replaced. A missing
    output folder is an OSError whose message names it (the CLI prints it as one line).
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        if data is None:
            with tempfile.TemporaryDirectory() as scratch:
                tmp = Path(scratch) / ("out" + path.suffix)
                writer(str(tmp))
                data = tmp.read_bytes()
        with open(path, "wb") as f:
            f.write(data)
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {directory}")
    mode = new_file_mode(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:  # name the output, not the temporary file beside it
        raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if data is not None:
                f.write(data)
        if writer is not None:
            writer(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
