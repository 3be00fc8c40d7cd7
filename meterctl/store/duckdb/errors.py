"""DuckDB's exceptions as meterctl's errors: the engine's words stop at the store.

Each place that knows what a failure means there (a file that cannot be ingested within
the memory limit, a total beyond a column's type) maps it with its own message; what any
statement may meet (the lock of another process) is recognised here.
"""

from __future__ import annotations

import duckdb


def is_lock_error(error: duckdb.Error) -> bool:
    """Another process holds the database file."""
    text = str(error)
    return "Could not set lock" in text or "Conflicting lock" in text

