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


class AtomicFile:
    """A file written beside `path` (at `self.tmp`) and renamed into place by `commit`, or removed by `abort`:
    output written over a while (a clip archive from a stream of frames) appears whole or not at all.

    The file gets the permissions a plain open() would give it (the temp file's are owner-only). A target
    that exists and is not a regular file (/dev/null, a pipe) is written into on commit, not replaced. A
    missing output folder is an OSError whose message names it (the CLI prints it as one line).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._scratch = None
        if self.path.exists() and not self.path.is_file() and not self.path.is_dir():
            self._scratch = tempfile.TemporaryDirectory()
            self.tmp = str(Path(self._scratch.name) / ("out" + self.path.suffix))
            return
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if not directory.is_dir():
            raise FileNotFoundError(f"output folder does not exist: {directory}")
        self._mode = new_file_mode(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as e:  # name the output, not the temporary file beside it
            raise OSError(e.errno, f"cannot write {self.path}: {e.strerror}") from None
        os.close(fd)

    def commit(self) -> None:
        try:
            if self._scratch is not None:
                data = Path(self.tmp).read_bytes()
                with open(self.path, "wb") as f:
                    f.write(data)
                self._scratch.cleanup()
            else:
                os.chmod(self.tmp, self._mode)
                os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
        else:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


def write_atomic(path: Path, data: bytes | None = None, *, writer=None) -> None:
    """Write bytes (or call writer(tmp_path)) to a temp file beside `path`, then rename it into place
    (`AtomicFile`, whose rules it follows)."""
    out = AtomicFile(path)
    try:
        if data is not None:
            with open(out.tmp, "wb") as f:
                f.write(data)
        if writer is not None:
            writer(out.tmp)
    except BaseException:
        out.abort()
        raise
    out.commit()
