"""Damage to the store's file: how it is found, remembered, and checked again.

DuckDB keeps a checksum for every block it writes and checks it on every block it reads,
so a command sees damage in what it reads and nothing else: `status` reads the events'
customers, names and times, ingest reads the batches and the event keys, rating the
events of the month. Damage in blocks a command does not read goes unseen by that command.

So that one command's finding is not lost on the next, damage met by any command is
remembered beside the store (`<store>.damaged`, a line of text), and every command that
would write to the store first reads the whole store again while that file exists: it
refuses (exit 66) while the damage is there, and forgets it once the store reads clean (a
copy restored in its place, say). `verify` reads every block of every table, as
`meterctl status --verify` does on request.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from meterctl.errors import StoreDamagedError
from meterctl.store.duckdb.errors import damaged, is_damage


def marker(path: Path) -> Path:
    return path.with_name(path.name + ".damaged")


def remember(path: Path, error: StoreDamagedError) -> None:
    """Note the damage beside the store, as well as the disk allows: the error being
    reported is what matters, so a marker that cannot be written is left unwritten."""
    note = f"{datetime.now(UTC).isoformat(timespec='seconds')} {error}\n"
    try:
        with open(marker(path), "a", encoding="utf-8") as file:
            file.write(note)
    except OSError:
        pass


def known(path: Path) -> str | None:
    """The last damage noted for the store at `path`, if any."""
    try:
        lines = marker(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return lines[-1] if lines else ""


def forget(path: Path) -> None:
    try:
        os.unlink(marker(path))
    except FileNotFoundError:
        pass


def verify(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Read every column of every row of every table, so that DuckDB checks the checksum of
    every block in use; StoreDamagedError when one does not match."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary "
        "ORDER BY table_name").fetchall()
    for (table,) in tables:
        # A table name from the catalog, quoted; a bound parameter cannot name a table.
        quoted = '"' + table.replace('"', '""') + '"'
        try:
            con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {quoted} AS t").fetchall()
        except duckdb.Error as error:
            if is_damage(error):
                raise damaged(path, f"table {table}: {error}") from None
            raise


def check_before_writing(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A store found damaged before is read whole again before anything is written to it."""
    noted = known(path)
    if noted is None:
        return
    verify(con, path)
    forget(path)
