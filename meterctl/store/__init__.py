"""Where meterctl keeps its state: one store, reached through two ports.

The billing core talks to an `EventStore` (ingest, deduplication, usage aggregation,
lineage) and a `Ledger` (customers, pricebook snapshots, rating runs, invoices), both
defined in `ports.py`. `duckdb/` implements them over one embedded DuckDB file; it is the
only package that imports duckdb. This module stays free of any engine, so the command
line can name the default database without loading one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from meterctl.errors import MeterctlError, StoreDamagedError

if TYPE_CHECKING:
    from meterctl.store.ports import Store


def open_store(path: Path, *, read_only: bool = False, wait: float = 0.0) -> Store:
    """Open (and, unless read-only, create and migrate) the store at `path`.

    Another process holding it is retried for up to `wait` seconds, then StoreLockedError.
    A read-only open of a path where no store exists is refused: it would otherwise report
    an empty history instead of a mistyped path.
    """
    from meterctl.store.duckdb import DuckDBStore

    return DuckDBStore.open(path, read_only=read_only, wait=wait)


@contextmanager
def faults(path: Path, *, read_only: bool = False) -> Iterator[None]:
    """Engine failures inside the block as meterctl's errors: the store locked (75), a write
    the disk refused (73), a damaged file (66, remembered so that no write goes ahead on it);
    anything else is left as it is (a bug)."""
    try:
        yield
    except MeterctlError:
        raise
    except Exception as error:
        # Only an engine's own exception is looked at (and its module loaded for that).
        if not type(error).__module__.lstrip("_").startswith("duckdb"):
            raise
        from meterctl.store.duckdb.errors import translate

        mapped = translate(error, path, read_only=read_only)
        if mapped is None:
            raise
        if isinstance(mapped, StoreDamagedError):
            from meterctl.store.duckdb.health import remember

            remember(path, mapped)
        raise mapped from error
