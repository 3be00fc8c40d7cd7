"""The store over one embedded DuckDB file: the only package that imports duckdb.

`connect` opens the file (lock, session settings, migrations); `event_store` and `ledger`
implement the two ports over one connection; `batches` stages input chunks; `usage_sql`
builds the usage statements of `sql/usage.sql`; `transaction` is the one way a transaction
is opened and ended.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from meterctl.store.duckdb import health
from meterctl.store.duckdb.connect import connect
from meterctl.store.duckdb.event_store import DuckDBEventStore
from meterctl.store.duckdb.ledger import DuckDBLedger
from meterctl.store.ports import EventStore, Ledger


class DuckDBStore:
    """One open DuckDB file, as both ports."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.con = con
        self.events: EventStore = DuckDBEventStore(con)
        self.ledger: Ledger = DuckDBLedger(con)

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False, wait: float = 0.0) -> DuckDBStore:
        return cls(path, connect(path, read_only=read_only, wait=wait))

    def verify(self) -> None:
        health.verify(self.con, self.path)
        health.forget(self.path)  # whatever was noted before, the store reads clean now

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
