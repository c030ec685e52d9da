"""What the commands share: the one-line user error, exit statuses, path checks, output formats.

User errors print one line on stderr and exit with status 1 (2 for bad arguments); outputs are
written to a temporary file and renamed into place, so a failure leaves no partial file, and the
input is never overwritten.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from compressor.errors import CompressorError


class UserError(CompressorError):
    """A bad command line or file that is not the library's concern (same path twice, say)."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a scheduler's stop, `kill`) cleans up as Ctrl-C does


def _run(prog: str, fn, args) -> int:
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        return fn(args) or 0
    except CompressorError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # unreadable files, full disks, bad numbers
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _check_paths(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise UserError(f"input {src} is a folder; give a file" if src.is_dir() else f"input not found: {src}")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"output {dst} is the input; refusing to overwrite it")
    if dst.is_dir():
        raise UserError(f"output {dst} is a folder; give a file name")


def _check_not_input(dst: Path, inputs: list[Path]) -> None:
    for src in inputs:
        if dst.exists() and src.exists() and dst.resolve() == src.resolve():
            raise UserError(f"output {dst} is an input; refusing to overwrite it")


def _named_as_image(path: Path) -> bool:
    """Whether `path`'s suffix is an image format's (ours to read, or any Pillow knows)."""
    from PIL import Image

    from compressor.images import IMAGE_SUFFIXES

    Image.init()
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in Image.EXTENSION


def _check_compressed_output(dst: Path) -> None:
    """`compress` writes a .bin (or a clip archive): an output named as an image or a video is a swapped
    command (`compress in.png out.png` for `decompress`), refused before anything is read or written."""
    from compressor.frames import is_video_path

    if _named_as_image(dst) or is_video_path(dst):
        raise UserError(f"output {dst} is named as an image or a video, but compress writes a compressed "
                        f"file: name it .bin (decompress turns .bin files into images)")
    if dst.suffix.lower() in (".npy", ".json"):  # a token file's names: a .bin under them would pass for one
        raise UserError(f"output {dst} is named as a token file or its sidecar, but compress writes a compressed "
                        f"file: name it .bin")


def _image_format(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"cannot tell the image format of {path}; use .png, .jpg, .webp, ...")
    if fmt not in Image.SAVE:  # Pillow reads some formats (PSD, CUR, FITS, ...) it cannot write
        raise UserError(f"cannot write {fmt} images ({path}); use .png, .jpg, .webp, ...")
    return fmt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
