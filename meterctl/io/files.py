"""Writing output files atomically: a reader (or a crash) sees the old file or the new one."""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
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


def write_directory_atomically(path: Path, files: Sequence[tuple[str, bytes]]) -> tuple[Path, ...]:
    """The directory `path` holding exactly these files (name, content), built in full beside
    it and renamed into place: a reader, or a crash at any moment, sees the old directory or
    the new one, never a part of it.

    An existing directory is replaced as a whole: it may hold the pages of an earlier export
    (`.html` files) and hidden files (`.keep`, `.DS_Store`, carried over); anything else in
    it is refused, since it would be replaced too. What a killed export left beside it is
    cleared first.
    """
    target = path.resolve() if path.is_symlink() else path.absolute()
    if target.exists() and not target.is_dir():
        raise OutputError(f"{path}: exists and is not a directory")
    cwd = Path.cwd().resolve()
    if cwd == target.resolve() or target.resolve() in cwd.parents:
        raise OutputError(f"{path}: is the directory you are in (or holds it); the export replaces its directory "
                          "as a whole: give a directory of its own, such as invoices/")
    kept = _hidden_files(path, target) if target.exists() else []
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{path}: cannot create the directory: {error.strerror}") from error
    for leftover in parent.glob(f".{glob.escape(target.name)}.*-export"):
        shutil.rmtree(leftover, ignore_errors=True)  # of an export killed before it was renamed into place
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    building = parent / f".{target.name}.{token}-export"
    retired = parent / f".{target.name}.{token}.old-export"
    try:
        building.mkdir()
        for name, data in files:
            with open(building / name, "xb") as file:
                file.write(data)
                os.fsync(file.fileno())
        for hidden in kept:
            try:
                os.link(hidden, building / hidden.name)
            except OSError:
                shutil.copy2(hidden, building / hidden.name)
        if target.exists():
            os.chmod(building, stat.S_IMODE(target.stat().st_mode))  # a private directory stays private
        _fsync_directory(building)
        if target.exists():
            os.rename(target, retired)
        os.rename(building, target)
        _fsync_directory(parent)
    except OSError as error:
        raise OutputError(f"{path}: cannot be written: {error.strerror or error}") from error
    finally:
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return tuple(target / name for name, _ in files)


def _fsync_directory(directory: Path) -> None:
    """Make the names in a directory durable (not every system can open a directory)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


# How write_bytes_atomically names its temporary file for a page (mkstemp's prefix).
_PAGE_TEMPORARY = re.compile(r"^\..+\.html\.[A-Za-z0-9_]+$")


def _hidden_files(path: Path, directory: Path) -> list[Path]:
    """The hidden files of a directory an export may replace; OutputError when it holds
    anything else than those and pages."""
    hidden, other = [], []
    for entry in sorted(directory.iterdir()):
        if _PAGE_TEMPORARY.match(entry.name):
            continue  # a page an earlier version was writing when it was killed: dropped
        if entry.name.startswith(".") and entry.is_file() and not entry.is_symlink():
            hidden.append(entry)
        elif not (entry.suffix.lower() == ".html" and entry.is_file()):
            other.append(entry.name)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise OutputError(f"{path}: holds other things than invoice pages ({shown}); the export replaces its "
                          "directory as a whole: give a directory of its own, such as invoices/")
    return hidden
