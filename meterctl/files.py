"""Writing output files atomically: a reader (or a crash) sees the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from meterctl.errors import OutputError


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary)` beside `path`, flush it to disk, then rename it over `path`."""
    directory = path.resolve().parent
    if not directory.is_dir():
        raise OutputError(f"{path}: directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    os.close(handle)
    # mkstemp makes the file private (0600); an export gets the usual mode, as open() would give.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot be written: {error}") from error
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path, data: bytes) -> None:
    write_atomically(path, lambda temporary: temporary.write_bytes(data))
