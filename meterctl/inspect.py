"""Read-only views of the store: status, dead letters, conflicts."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from meterctl.errors import NotFoundError

# TIMESTAMPTZ values are rendered in SQL (session time zone is UTC) so that Python
# never needs pytz to fetch them.
_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    source: str
    format: str
    finished_at: str
    read: int
    accepted: int
    duplicates: int
    conflicts: int
    dead_lettered: int


@dataclass(frozen=True)
class StoreStatus:
    events: int
    customers: int
    event_names: tuple[tuple[str, int], ...]
    first_event_at: str | None
    last_event_at: str | None
    dead_letters: int
    conflicts: int
    batches: int
    duplicates: int
    lines_read: int
    last_ingests: tuple[BatchSummary, ...]


@dataclass(frozen=True)
class DeadLetter:
    dead_letter_id: int
    batch_id: int
    source: str
    line_no: int
    reason: str
    event_id: str | None
    raw: str
    created_at: str


@dataclass(frozen=True)
class Conflict:
    conflict_id: int
    event_id: str
    billed_hash: str
    billed_source: str
    billed_line_no: int
    new_hash: str
    source: str
    line_no: int
    raw: str
    detected_at: str


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> list[tuple]:
    return con.execute(query, params or []).fetchall()


def status(con: duckdb.DuckDBPyConnection, last: int = 5) -> StoreStatus:
    events, customers, first, latest = _rows(
        con,
        f"SELECT count(*), count(DISTINCT customer_id), strftime(min(ts), '{_ISO}'), "
        f"strftime(max(ts), '{_ISO}') FROM events",
    )[0]
    names = tuple(
        (name, count)
        for name, count in _rows(con, "SELECT event_name, count(*) FROM events GROUP BY ALL ORDER BY ALL")
    )
    batches, duplicates, lines_read = _rows(
        con, "SELECT count(*), coalesce(sum(duplicates), 0), coalesce(sum(lines_read), 0) FROM ingest_batches"
    )[0]
    dead = _rows(con, "SELECT count(*) FROM dead_letters")[0][0]
    conflicts = _rows(con, "SELECT count(*) FROM conflicts")[0][0]
    recent = tuple(
        BatchSummary(*row)
        for row in _rows(
            con,
            f"SELECT batch_id, source, format, strftime(finished_at, '{_ISO}'), lines_read, accepted, "
            "duplicates, conflicts, dead_lettered FROM ingest_batches ORDER BY batch_id DESC LIMIT ?",
            [last],
        )
    )
    return StoreStatus(
        events=events,
        customers=customers,
        event_names=names,
        first_event_at=first,
        last_event_at=latest,
        dead_letters=dead,
        conflicts=conflicts,
        batches=batches,
        duplicates=int(duplicates),
        lines_read=int(lines_read),
        last_ingests=recent,
    )


_DEAD_LETTER_SELECT = f"""
SELECT d.dead_letter_id, d.batch_id, b.source, d.line_no, d.reason, d.event_id, d.raw,
       strftime(d.created_at, '{_ISO}')
FROM dead_letters AS d
JOIN ingest_batches AS b USING (batch_id)
"""


def dead_letters(
    con: duckdb.DuckDBPyConnection,
    *,
    limit: int | None = 100,
    batch_id: int | None = None,
    reason_contains: str | None = None,
) -> tuple[DeadLetter, ...]:
    query = (
        _DEAD_LETTER_SELECT
        + " WHERE ($batch IS NULL OR d.batch_id = $batch)"
        + " AND ($reason IS NULL OR contains(lower(d.reason), lower($reason)))"
        + " ORDER BY d.dead_letter_id LIMIT $limit"
    )
    params = {"batch": batch_id, "reason": reason_contains, "limit": limit if limit is not None else 2**62}
    return tuple(DeadLetter(*row) for row in con.execute(query, params).fetchall())


def dead_letter(con: duckdb.DuckDBPyConnection, dead_letter_id: int) -> DeadLetter:
    rows = _rows(con, _DEAD_LETTER_SELECT + " WHERE d.dead_letter_id = ?", [dead_letter_id])
    if not rows:
        raise NotFoundError(f"dead letter {dead_letter_id} does not exist (see 'meterctl dlq list')")
    return DeadLetter(*rows[0])


def conflicts(con: duckdb.DuckDBPyConnection, *, limit: int | None = 100, event_id: str | None = None) -> tuple[Conflict, ...]:
    query = f"""
        SELECT c.conflict_id, c.event_id, c.billed_hash, bb.source, c.billed_line_no,
               c.new_hash, nb.source, c.line_no, c.raw, strftime(c.detected_at, '{_ISO}')
        FROM conflicts AS c
        JOIN ingest_batches AS nb ON nb.batch_id = c.batch_id
        JOIN ingest_batches AS bb ON bb.batch_id = c.billed_batch_id
        WHERE ($event_id IS NULL OR c.event_id = $event_id)
        ORDER BY c.conflict_id
        LIMIT $limit
    """
    params = {"event_id": event_id, "limit": limit if limit is not None else 2**62}
    return tuple(Conflict(*row) for row in con.execute(query, params).fetchall())
