"""Opening the DuckDB file: waiting for the lock, session settings, numbered schema migrations.

All state lives in one DuckDB file. DuckDB lets one process write a file at a time;
a second process gets an IO error when it tries to take the lock, which we turn
into `StoreLockedError` (exit 75), optionally after retrying for `wait` seconds. A new
store is created whole or not at all; a damaged one is named as such (exit 66).
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from meterctl.errors import ConfigError, InputNotFoundError, OutputError, Param, StoreDamagedError
from meterctl.store.duckdb import health
from meterctl.store.duckdb.errors import is_lock_error, locked, translate
from meterctl.store.duckdb.transaction import transaction

ENV_MEMORY_LIMIT = "METERCTL_MEMORY_LIMIT"
# DuckDB's default (80% of RAM) lets one big ingest transaction hold gigabytes of appended
# rows in memory; with a limit it writes them out as it goes (10M events: 1.5 GiB peak RSS
# with 1GB, 5.8 GiB without, and faster).
DEFAULT_MEMORY_LIMIT = "1GB"
_MEMORY_LIMIT = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)

_MIGRATION_NAME = re.compile(r"^([0-9]{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> tuple[Migration, ...]:
    """The numbered migrations shipped in `migrations/` beside this module, in order."""
    found = []
    for entry in resources.files(__package__ or "").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    return tuple(found)


def _connect_once(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    limit = os.environ.get(ENV_MEMORY_LIMIT) or DEFAULT_MEMORY_LIMIT
    if not _MEMORY_LIMIT.match(limit):
        raise ConfigError(f"{ENV_MEMORY_LIMIT}: '{limit}' is not a memory size such as 1GB or 512MiB")
    con = duckdb.connect(str(path), read_only=read_only)
    _session(con)
    # SET takes no bound parameters; the value was checked against _MEMORY_LIMIT above.
    con.execute(f"SET memory_limit = '{limit}'")
    return con


def _session(con: duckdb.DuckDBPyConnection) -> None:
    # Session settings that make results independent of the machine running them:
    # UTC for every TIMESTAMPTZ rendering and date_trunc.
    con.execute("SET TimeZone = 'UTC'")


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the open store (for work on another thread), with the same
    session settings: a plain con.cursor() would render and cast TIMESTAMPTZ in the
    machine's time zone."""
    other = con.cursor()
    _session(other)
    return other


# Every DuckDB database file has this at byte 8 of its header, and begins with three
# header blocks of 4 KiB, written when it is created, before anything else.
_DUCKDB_MAGIC = b"DUCK"
_HEADER_BYTES = 3 * 4096


def _header(path: Path) -> tuple[bytes, int] | None:
    """The first bytes of the file at `path` and its size; None when there is no file."""
    try:
        with path.open("rb") as file:
            return file.read(12), os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise OutputError(f"{path}: is a directory, not a meterctl database file") from None
    except OSError as error:
        raise InputNotFoundError(f"{path}: cannot open the database: {error.strerror}") from None


def _is_stub(header: bytes, size: int) -> bool:
    """A store whose creation never completed (the disk filled up, the process was killed)
    before DuckDB wrote its three header blocks: it holds nothing, and can be created anew."""
    return size < _HEADER_BYTES and (header[8:12] == _DUCKDB_MAGIC or not header.strip(b"\0"))


def _refuse_other_files(path: Path, header: bytes) -> None:
    """DuckDB opens a CSV, JSON or Parquet file given as the database as an in-memory
    database over that file: everything written would vanish at exit without a word."""
    if header[8:12] != _DUCKDB_MAGIC:
        raise InputNotFoundError(f"{path}: is not a meterctl database: no DuckDB header (another kind of file, or "
                                 "a damaged store: see 'When the store is damaged' in the README); give ", Param("db"),
                                 " a new or existing database path")


def _create(path: Path) -> None:
    """Create the store at `path` all at once: built and migrated beside it under a temporary
    name, then linked into place. A full disk or a kill while it is built leaves nothing at
    `path`; two processes creating it at once keep the first one's."""
    _clear_abandoned(path)
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        con = _connect_once(temporary, read_only=False)
        try:
            migrate(con)
            con.execute("CHECKPOINT")
        except BaseException:
            _close_quietly(con)
            raise
        con.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it meanwhile: that one stands
        except OSError:
            # A file system without hard links: a rename, which would replace a store
            # created meanwhile, so only when there is still none.
            if not path.exists():
                os.replace(temporary, path)
    except duckdb.Error as error:
        raise translate(error, path, creating=True) or OutputError(f"{path}: cannot create the database: {error}") from None
    except OSError as error:
        raise OutputError(f"{path}: cannot create the database: {error.strerror}") from None
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
            leftover.unlink(missing_ok=True)


def _clear_abandoned(path: Path) -> None:
    """Stores that processes killed while creating them left beside `path` (named after
    their process, which no longer runs)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        pid = leftover.name.removeprefix(f".{path.name}.new-").split("-")[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        leftover.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # running, as another user
    return True


def connect(path: Path, *, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the store, retrying for up to `wait` seconds while another process holds it.

    Only a writing command creates the store: a read-only open of a path that does not
    exist is refused (a mistyped --db must not leave an empty database behind and report
    that it holds nothing). A store found damaged before is read whole again before a
    writing command may go on (see health.py).
    """
    found = _header(path)
    if found is not None and _is_stub(*found):
        if read_only:
            found = None  # nothing was ever stored there
        else:
            # Nothing was ever committed to it (see _is_stub), nor to a log beside it.
            path.with_name(path.name + ".wal").unlink(missing_ok=True)
            path.unlink()
            found = None
    if found is None:
        if read_only:
            raise InputNotFoundError(f"{path}: no database there yet (check ", Param("db"), " or METERCTL_DB; "
                                     "'meterctl ingest' or 'meterctl customers import' creates it)")
        parent = path.resolve().parent
        if not parent.is_dir():
            raise OutputError(f"{path}: cannot create the database: directory {parent} does not exist")
        _create(path)
    else:
        _refuse_other_files(path, found[0])
    deadline = time.monotonic() + max(wait, 0.0)
    delay = 0.05
    while True:
        try:
            con = _connect_once(path, read_only)
            break
        except duckdb.Error as error:
            if not is_lock_error(error):
                mapped = translate(error, path, read_only=read_only)
                if isinstance(mapped, StoreDamagedError):
                    health.remember(path, mapped)
                raise mapped or OutputError(f"{path}: cannot open the database: {error}") from None
            if time.monotonic() >= deadline:
                raise locked(path, read_only=read_only, wait=wait) from None
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.01)))
            delay = min(delay * 2, 1.0)
    try:
        if not read_only:
            health.check_before_writing(con, path)
            migrate(con)
        elif pending(con):
            # A store last written by an older meterctl: its first open after the upgrade
            # brings it up to date, even for a reading command.
            con.close()
            connect(path, wait=wait).close()
            return connect(path, read_only=True, wait=wait)
    except BaseException:
        _close_quietly(con)  # the lock goes with it
        raise
    return con


def _close_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Close after a failure that is being raised: a close that fails too must not take its place."""
    try:
        con.close()
    except duckdb.Error:
        pass


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    return bool(found[0][0])


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not exists:
        return set()
    return {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}


def pending(con: duckdb.DuckDBPyConnection) -> bool:
    """Migrations this meterctl ships that the store has not had yet."""
    return bool({m.version for m in migrations()} - applied_versions(con))


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration not yet recorded; each one in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = applied_versions(con)
    applied = []
    for migration in migrations():
        if migration.version in done:
            continue
        with transaction(con):
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now())",
                [migration.version, migration.name],
            )
        applied.append(migration.version)
    return applied
