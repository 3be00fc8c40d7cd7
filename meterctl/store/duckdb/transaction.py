"""The one way meterctl opens, commits and rolls back a DuckDB transaction.

A failure inside the block is the error reported: the rollback after it is attempted
quietly, since the failure has often aborted the transaction already (DuckDB then answers
ROLLBACK with "no transaction is active", which must not replace the real cause). A failed
COMMIT is reported as itself for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


class Transaction:
    """An open transaction; `rollback()` ends it early without an error (nothing to keep)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.open = True

    def rollback(self) -> None:
        if self.open:
            self.open = False
            self._con.execute("ROLLBACK")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[Transaction]:
    con.execute("BEGIN TRANSACTION")
    handle = Transaction(con)
    try:
        yield handle
    except BaseException:
        if handle.open:
            handle.open = False
            rollback_quietly(con)
        raise
    if handle.open:
        handle.open = False
        try:
            con.execute("COMMIT")
        except BaseException:
            rollback_quietly(con)
            raise


def rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failure that is being raised: a rollback that fails too (the
    transaction is already aborted, or gone) must not take the failure's place."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
