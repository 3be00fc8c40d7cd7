"""Writing output files atomically: a reader (or a crash) sees the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from meterctl.errors import OutputError


def _target(path: Path) -> Path:
    """Where to write: a symlink's target (the link stays), and never over a device or pipe."""
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file (a directory, pipe or device): not replaced")
    return path


def _temporary(path: Path) -> tuple[int, Path]:
    directory = path.resolve().parent
    if not directory.is_dir():
        raise OutputError(f"{path}: directory {directory} does not exist")
    try:
        handle, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    except OSError as error:
        raise OutputError(f"{path}: cannot be written: {error}") from error
    # mkstemp makes the file private (0600). A replaced file keeps its mode (a chmod 600
    # export stays private); a new one gets the usual mode, as open() would give.
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.fchmod(handle, mode)
    return handle, Path(name)


def _finish(temporary: Path, path: Path, work: Callable[[], None]) -> None:
    try:
        work()
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot be written: {error}") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)` beside `path`, flush it to disk, then rename it over `path`."""
    path = _target(path)
    handle, temporary = _temporary(path)
    os.close(handle)

    def work() -> None:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())

    _finish(temporary, path, work)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """`data` into a temporary file beside `path` (one open, one fsync), then renamed over it."""
    path = _target(path)
    handle, temporary = _temporary(path)

    def work() -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            os.fsync(handle)
        finally:
            os.close(handle)

    _finish(temporary, path, work)
