"""DuckDB's exceptions as meterctl's errors: the engine's words stop at the store.

Each place that knows what a failure means there (a file that cannot be ingested within
the memory limit, a total beyond a column's type) maps it with its own message; what any
statement may meet is recognised here: the lock of another process (75), a disk that
cannot take the write (73), a file that cannot be read back (damaged, 66).

DuckDB says which by its message only (a checksum mismatch is a plain `duckdb.Error`, a
failed commit a `TransactionException`), so the messages are matched; DuckDB's own words
stay at the end of ours, for the report.
"""

from __future__ import annotations

from pathlib import Path

from meterctl.errors import MeterctlError, OutputError, Param, StoreDamagedError, StoreLockedError

RECOVERY = ("restore a copy, or rebuild it by ingesting the event files into a new store "
            "(see 'When the store is damaged' in the README)")

# The operating system's words for a write the disk refused (ENOSPC, EDQUOT, EFBIG, EROFS, EACCES).
_WRITE_REFUSED = {
    "No space left on device": "the disk is full",
    "Disk quota exceeded": "the disk quota is used up",
    "File too large": "the file has reached the size this system allows",
    "Read-only file system": "the file system is read-only",
    "Permission denied": "permission denied",
}

# How DuckDB says a block it read back is not what it wrote.
_DAMAGE = (
    "Corrupt database file",
    "Could not read enough bytes",
    "not a valid DuckDB database file",
    "Failure while replaying WAL",
    "database file is corrupt",
    "Input/output error",  # EIO: the disk could not read the block back
)


def is_lock_error(error: BaseException) -> bool:
    """Another process holds the database file."""
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text


def is_damage(error: BaseException) -> bool:
    return any(sign in str(error) for sign in _DAMAGE)


def translate(error: BaseException, path: Path, *, read_only: bool = False,
              creating: bool = False) -> MeterctlError | None:
    """The meterctl error for an engine failure on the store at `path`, or None when it is
    none of these (a bug, reported as such)."""
    text = str(error)
    if is_lock_error(error):
        return locked(path, read_only=read_only)
    for sign, meaning in _WRITE_REFUSED.items():
        if sign in text:
            kept = ("no store was created" if creating else
                    "nothing of this command was kept, the store is as it was before it")
            return OutputError(f"{path}: cannot write the store: {meaning} ({_detail(text)}); {kept}: make room "
                               "(or move the store with ", Param("db"), ") and run it again")
    if is_damage(error):
        return damaged(path, text)
    return None


def damaged(path: Path, detail: str) -> StoreDamagedError:
    hint = ""
    if "WAL" in detail:
        hint = (f" (the write-ahead log {path}.wal does not belong to this file: if the store was restored from "
                "a copy, move that .wal file away)")
    return StoreDamagedError(f"{path}: the store is damaged and cannot be read{hint}: {_detail(detail)}; {RECOVERY}")


def locked(path: Path, *, read_only: bool, wait: float = 0.0) -> StoreLockedError:
    """Another process writes the store. DuckDB lets no other process open the file while one
    writes it, not even to read: a reading command waits like a writing one."""
    why = (" that is writing to it (DuckDB lets no other process open a store while one writes it, "
           "not even to read)" if read_only else "")
    hint: tuple[str | Param, ...] = ((f" (waited {wait:g}s)",) if wait > 0 else
                                     ("; use ", Param("wait"), " SECONDS to retry"))
    return StoreLockedError(f"{path}: database is locked by another meterctl process{why}", *hint)


def _detail(text: str) -> str:
    """DuckDB's message, on one line, without its class prefix."""
    first = " ".join(text.split())
    for prefix in ("TransactionContext Error: ", "IO Error: ", "Error: "):
        first = first.removeprefix(prefix)
    return first[:300]

