"""The EventStore port over DuckDB: batches, usage aggregation, lineage and inspection."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import duckdb

from meterctl.errors import NotFoundError, UsageOverflowError
from meterctl.instants import EpochCache, from_epoch_us
from meterctl.pricing import text
from meterctl.store.duckdb import sqlfiles, usage_sql
from meterctl.store.duckdb.connect import cursor
from meterctl.store.ports import (
    IngestReadings,
    LineEventQuery,
    MonthIntegrity,
    MonthQuery,
    MonthTally,
    Pending,
    PriorBatch,
    TracedEvent,
)
from meterctl.usage import AggregateRow, OpenSessionRow, UsageQuery

if TYPE_CHECKING:
    from meterctl.events import Conflict, DeadLetter, StoreStatus
    from meterctl.store.duckdb.batches import DuckDBBatch

# The inspection records (meterctl.events) are imported by the methods that make them: a
# frozen dataclass costs a millisecond to define, and most commands never inspect.

# TIMESTAMPTZ values are rendered in SQL (the session time zone is UTC) or fetched as epoch
# microseconds, so that Python never needs pytz to fetch them.
_ISO_MICROS = "%Y-%m-%dT%H:%M:%S.%fZ"


class DuckDBEventStore:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._macros = False

    def _install_macros(self) -> None:
        """The validation macros (event_macros.sql), which value expressions use too."""
        if not self._macros:
            sqlfiles.install_macros(self.con)
            self._macros = True

    # ------------------------------------------------------------ ingest

    def prepare_ingest(self) -> None:
        from meterctl.store.duckdb import batches  # with pyarrow: only ingest needs it (start-up time)

        batches.prepare(self.con)
        self._macros = True

    def batch_with_content(self, content_sha256: str) -> PriorBatch | None:
        row = self.con.execute(
            "SELECT batch_id, source FROM ingest_batches WHERE content_sha256 = ? ORDER BY batch_id LIMIT 1",
            [content_sha256],
        ).fetchall()
        return PriorBatch(row[0][0], row[0][1]) if row else None

    def unchanged_since_ingest(self, source_path: str, size_bytes: int | None, mtime_ns: int | None) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM ingest_batches WHERE source_path = ? AND size_bytes = ? AND mtime_ns = ?",
            [source_path, size_bytes, mtime_ns],
        ).fetchall()[0]
        return bool(row and row[0])

    @contextmanager
    def new_batch(self, source: str) -> Iterator[DuckDBBatch]:
        from meterctl.store.duckdb import batches

        with batches.new_batch(self.con, source) as batch:
            yield batch

    def last_batch(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(batch_id), 0) FROM ingest_batches").fetchall()[0][0])

    # ------------------------------------------------------------ usage

    def knows_time_zone(self, tz: str) -> bool:
        return bool(self.con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz]).fetchall()[0][0])

    def aggregate(self, query: UsageQuery) -> tuple[list[AggregateRow], list[OpenSessionRow]]:
        con = self.con
        if query.periods is not None:
            sqlfiles.temp_table(con, "usage_windows", {
                "customer_id": ("VARCHAR", [p.customer_id for p in query.periods]),
                "window_start": ("TIMESTAMPTZ", [p.start for p in query.periods]),
                "window_end": ("TIMESTAMPTZ", [p.end for p in query.periods]),
            })
        self._install_macros()
        params: dict[str, Any] = {"start": query.start, "end": query.end, "tz": query.tz,
                                  "customers": list(query.customers) if query.customers else None,
                                  "as_of_batch": query.as_of_batch}
        try:
            found, opened = self._aggregate(query, params)
        except duckdb.OutOfRangeException:
            raise UsageOverflowError(self._overflowing(query, params)) from None
        found.sort(key=lambda row: row[0])  # stable: keeps the SQL order inside each meter
        return found, opened

    def _overflowing(self, query: UsageQuery, params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """(customer_id, meter) of each sum that does not fit: a second look, after a failure
        only, so that the customers at fault can be named and set aside."""
        found: set[tuple[str, str]] = set()
        for index, meter in enumerate(query.meters):
            if meter.aggregation != "sum":
                continue
            statement = ("SELECT DISTINCT customer_id FROM ("
                         + usage_sql.plain_meter(meter, index, query.window, params, overflow_check=True)
                         + ") WHERE value > 0")
            rows = self.con.execute(statement, sqlfiles.bind(statement, params)).fetchall()
            found.update((customer, meter.name) for (customer,) in rows)
        return tuple(sorted(found))

    def _aggregate(self, query: UsageQuery, params: dict[str, Any]) -> tuple[list[AggregateRow], list[OpenSessionRow]]:
        """(rows, open sessions) of every meter, each row led by the meter's index."""
        instants = EpochCache()
        found: list[AggregateRow] = []
        opened: list[OpenSessionRow] = []
        meters = query.meters
        plain = [usage_sql.plain_meter(m, i, query.window, params) for i, m in enumerate(meters) if m.aggregation != "duration"]
        if plain:
            statement = usage_sql.union(plain)
            fetch = _fetch_rows if query.window == "period" else _fetch_columns
            found += fetch(self.con, statement, sqlfiles.bind(statement, params), instants,
                           any(m.group_by for m in meters if m.aggregation != "duration"))
        for index, meter in enumerate(meters):
            if meter.aggregation != "duration":
                continue
            statements = usage_sql.duration_meter(meter, index, query.window, params)
            rows = sqlfiles.execute(self.con, statements.spans, params).fetchall()
            rows += sqlfiles.execute(self.con, statements.unmeterable, params).fetchall()
            found += [(index, customer, instants[start], instants[end], dims, value, unmetered)
                      for customer, start, end, dims, value, unmetered in _merge_windows(rows)]
            opened += [(index, customer, session, instants[last])
                       for customer, session, last in sqlfiles.execute(self.con, statements.open_sessions, params).fetchall()]
        return found, opened

    def tally_month(self, query: MonthQuery) -> Pending:
        return _Background(self.con, lambda con: _tally(con, query))

    def ingest_readings(self, since: datetime, until: datetime) -> IngestReadings:
        # By each batch's ingest time (its start, the time its rules were checked against).
        totals = self.con.execute(
            "SELECT coalesce(sum(accepted), 0), coalesce(sum(duplicates), 0), coalesce(sum(conflicts), 0), "
            "coalesce(sum(dead_lettered), 0), epoch_us(max(started_at)) FROM ingest_batches WHERE started_at <= $until",
            {"until": until}).fetchall()[0]
        recent = self.con.execute(
            "SELECT coalesce(sum(lines_read), 0), coalesce(sum(duplicates), 0), coalesce(sum(dead_lettered), 0), "
            "coalesce(sum(accepted), 0), min(batch_id) FROM ingest_batches WHERE started_at >= $since "
            "AND started_at <= $until", {"since": since, "until": until}).fetchall()[0]
        lag, lag_sum = None, Decimal(0)
        if recent[3]:
            # The recent batches' events only: batch ids grow with the table, so the block
            # statistics skip every older block.
            found, total = self.con.execute("""
                SELECT quantile_disc(lag, [0.5, 0.99, 1.0]), CAST(sum(lag) AS VARCHAR)
                FROM (SELECT epoch_us(b.started_at) - epoch_us(e.ts) AS lag
                      FROM (SELECT batch_id, ts FROM events WHERE batch_id >= $first) AS e
                      JOIN ingest_batches AS b USING (batch_id)
                      WHERE b.started_at >= $since AND b.started_at <= $until)""",
                {"first": recent[4], "since": since, "until": until}).fetchall()[0]
            median, high, highest = (Decimal(micros).scaleb(-6) for micros in found)
            lag, lag_sum = (median, high, highest), Decimal(total).scaleb(-6)
        last = totals[4]
        return IngestReadings(int(totals[0]), int(totals[1]), int(totals[2]), int(totals[3]), int(recent[0]),
                              int(recent[1]), int(recent[2]), int(recent[3]), lag, lag_sum,
                              None if last is None else from_epoch_us(last))

    def month_integrity(self, start: datetime, end: datetime, month: tuple[date, date]) -> MonthIntegrity:
        params: dict[str, Any] = {"start": start, "end": end}
        # Ids are compared by their 64-bit hash first (8 bytes per event, not the id string);
        # only the ids whose hash repeats are looked at as text.
        events, distinct = self.con.execute("""
            SELECT count(*), count(DISTINCT id_hash) FROM events
            WHERE ts >= CAST($start AS TIMESTAMPTZ) AND ts < CAST($end AS TIMESTAMPTZ)""", params).fetchall()[0]
        # Duplicates are kept per UTC day of the event they repeat (see 0010_duplicate_days.sql).
        duplicates = self.con.execute(
            "SELECT coalesce(sum(duplicates), 0) FROM duplicate_days WHERE day >= ? AND day < ?", list(month)
        ).fetchall()[0][0]
        repeated: list[tuple[str, int]] = []
        if distinct != events:
            repeated = self.con.execute("""
                SELECT event_id, count(*) FROM events
                WHERE ts >= CAST($start AS TIMESTAMPTZ) AND ts < CAST($end AS TIMESTAMPTZ)
                  AND id_hash IN (SELECT id_hash FROM events
                                  WHERE ts >= CAST($start AS TIMESTAMPTZ) AND ts < CAST($end AS TIMESTAMPTZ)
                                  GROUP BY id_hash HAVING count(*) > 1)
                GROUP BY event_id HAVING count(*) > 1 ORDER BY event_id""", params).fetchall()
        # A conflict names the stored event it lost to by batch and line: few rows, joined to
        # the month's events on those two integers.
        conflicts = self.con.execute("""
            SELECT count(*) FROM conflicts AS c JOIN events AS e
              ON e.batch_id = c.billed_batch_id AND e.line_no = c.billed_line_no AND e.event_id = c.event_id
            WHERE e.ts >= CAST($start AS TIMESTAMPTZ) AND e.ts < CAST($end AS TIMESTAMPTZ)""", params).fetchall()[0][0]
        return MonthIntegrity(int(events), tuple((event_id, int(n)) for event_id, n in repeated), int(duplicates),
                              int(conflicts))

    # ------------------------------------------------------------ lineage

    def line_events(self, query: LineEventQuery, *, limit: int | None, with_events: bool
                    ) -> tuple[int, int, tuple[TracedEvent, ...]]:
        self._install_macros()  # a meter valued from a property reads it with mc_is_decimal_text
        where, params = _line_selection(query, query.as_of_batch)
        count = sqlfiles.execute(self.con, f"SELECT count(*) FROM events WHERE {where}", params).fetchall()[0][0]
        every, every_params = _line_selection(query, None)
        now = sqlfiles.execute(self.con, f"SELECT count(*) FROM events WHERE {every}", every_params).fetchall()[0][0]
        events: tuple[TracedEvent, ...] = ()
        if with_events:
            params["limit"] = limit
            rows = sqlfiles.execute(self.con, f"""
                SELECT e.event_id, strftime(e.ts, '{_ISO_MICROS}'), e.event_name, CAST(e.quantity AS VARCHAR),
                       e.properties, b.source, e.line_no, {_meterable_sql(query, params)}
                FROM (SELECT * FROM events WHERE {where}) AS e JOIN ingest_batches AS b USING (batch_id)
                ORDER BY e.ts, e.event_id LIMIT $limit""", params).fetchall()
            events = tuple(TracedEvent(r[0], r[1], r[2], None if r[3] is None else text(Decimal(r[3])),
                                          json.loads(r[4]) if r[4] is not None else None, r[5], r[6], bool(r[7]))
                           for r in rows)
        return int(count), int(now), events

    def count_later_events(self, customer_id: str, after_batch: int, event_names: Sequence[str],
                           start: datetime, end: datetime) -> int:
        return int(self.con.execute(
            "SELECT count(*) FROM events WHERE customer_id = $customer AND batch_id > $as_of "
            "AND list_contains($names, event_name) AND ts >= $start AND ts < $end",
            {"customer": customer_id, "as_of": after_batch, "names": list(event_names), "start": start, "end": end},
        ).fetchall()[0][0])

    def customers_with_events(self, customer_ids: Sequence[str]) -> set[str]:
        return {row[0] for row in self.con.execute(
            "SELECT DISTINCT customer_id FROM events WHERE list_contains($ids, customer_id)",
            {"ids": list(customer_ids)}).fetchall()}

    # ------------------------------------------------------------ inspection

    def status(self, last: int = 5) -> StoreStatus:
        from meterctl.events import BatchSummary, StoreStatus

        con = self.con
        events, customers, first, latest = con.execute(
            f"SELECT count(*), count(DISTINCT customer_id), strftime(min(ts), '{_ISO_MICROS}'), "
            f"strftime(max(ts), '{_ISO_MICROS}') FROM events").fetchall()[0]
        names = tuple((name, count) for name, count in
                      con.execute("SELECT event_name, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall())
        batch_count, duplicates, lines_read = con.execute(
            "SELECT count(*), coalesce(sum(duplicates), 0), coalesce(sum(lines_read), 0) FROM ingest_batches").fetchall()[0]
        dead = con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
        conflict_count = con.execute("SELECT count(*) FROM conflicts").fetchall()[0][0]
        recent = tuple(BatchSummary(*row) for row in con.execute(
            f"SELECT batch_id, source, format, strftime(finished_at, '{_ISO_MICROS}'), lines_read, accepted, "
            "duplicates, conflicts, dead_lettered FROM ingest_batches ORDER BY batch_id DESC LIMIT ?", [last]).fetchall())
        return StoreStatus(events=events, customers=customers, event_names=names, first_event_at=first,
                           last_event_at=latest, dead_letters=dead, conflicts=conflict_count, batches=batch_count,
                           duplicates=int(duplicates), lines_read=int(lines_read), last_ingests=recent)

    def dead_letters(self, *, limit: int | None = 100, batch_id: int | None = None,
                     reason_contains: str | None = None) -> tuple[DeadLetter, ...]:
        from meterctl.events import DeadLetter

        query = (_DEAD_LETTER_SELECT
                 + " WHERE ($batch IS NULL OR d.batch_id = $batch)"
                 + " AND ($reason IS NULL OR contains(lower(d.reason), lower($reason)))"
                 + " ORDER BY d.dead_letter_id LIMIT $limit")
        params = {"batch": batch_id, "reason": reason_contains, "limit": limit if limit is not None else 2**62}
        return tuple(DeadLetter(*row) for row in self.con.execute(query, params).fetchall())

    def dead_letter(self, dead_letter_id: int) -> DeadLetter:
        from meterctl.events import DeadLetter

        rows = self.con.execute(_DEAD_LETTER_SELECT + " WHERE d.dead_letter_id = ?", [dead_letter_id]).fetchall()
        if not rows:
            raise NotFoundError(f"dead letter {dead_letter_id} does not exist (see 'meterctl dlq list')")
        return DeadLetter(*rows[0])

    def conflicts(self, *, limit: int | None = 100, event_id: str | None = None) -> tuple[Conflict, ...]:
        from meterctl.events import Conflict

        query = f"""
            SELECT c.conflict_id, c.event_id, c.billed_hash, bb.source, c.billed_line_no,
                   c.new_hash, nb.source, c.line_no, c.raw, strftime(c.detected_at, '{_ISO_MICROS}')
            FROM conflicts AS c
            JOIN ingest_batches AS nb ON nb.batch_id = c.batch_id
            JOIN ingest_batches AS bb ON bb.batch_id = c.billed_batch_id
            WHERE ($event_id IS NULL OR c.event_id = $event_id)
            ORDER BY c.conflict_id
            LIMIT $limit
        """
        params = {"event_id": event_id, "limit": limit if limit is not None else 2**62}
        return tuple(Conflict(*row) for row in self.con.execute(query, params).fetchall())


_DEAD_LETTER_SELECT = f"""
SELECT d.dead_letter_id, d.batch_id, b.source, d.line_no, d.reason, d.event_id, d.raw,
       strftime(d.created_at, '{_ISO_MICROS}')
FROM dead_letters AS d
JOIN ingest_batches AS b USING (batch_id)
"""


# ---------------------------------------------------------------- usage helpers


def _fetch_rows(con: duckdb.DuckDBPyConnection, statement: str, params: dict[str, Any], instants: EpochCache,
                grouped: bool) -> list[AggregateRow]:
    """The plain meters' rows. Billing periods make a row per segment × meter × dimension
    value: few enough to fetch as tuples. (`grouped` is for _fetch_columns, which takes the
    same arguments.)"""
    return [(index, customer, instants[start], instants[end], dims, value, unmetered)
            for index, customer, start, end, dims, value, unmetered in con.execute(statement, params).fetchall()]


def _fetch_columns(con: duckdb.DuckDBPyConnection, statement: str, params: dict[str, Any], instants: EpochCache,
                   grouped: bool) -> list[AggregateRow]:
    """The same through Arrow, column by column: about a third of the cost of fetching tuples,
    which counts for clock windows (a month of hours is hundreds of thousands of rows)."""
    table = con.sql(statement, params=params).to_arrow_table()
    columns = [table.column(i) for i in range(table.num_columns)]
    values: list[list[Any]] = [column.to_pylist() for column in columns[:2]]
    # Window bounds take few distinct values: each instant is made once (see EpochCache).
    for position in (2, 3):
        values.append([instants[m] for m in columns[position].to_pylist()])
    # Without dimensions every row's list is empty: no need to convert it row by row.
    values.append(columns[4].to_pylist() if grouped else [()] * table.num_rows)
    values += [column.to_pylist() for column in columns[5:]]
    return list(zip(*values, strict=True))


def _merge_windows(rows: list[tuple]) -> list[tuple]:
    """One row per (customer, window, dimensions): metered seconds and unmeterable events
    of a duration meter come from two statements."""
    merged: dict[tuple, list] = {}
    for customer, start, end, dims, value, unmetered in rows:
        key = (customer, start, end, tuple(dims))
        if key not in merged:
            merged[key] = [customer, start, end, dims, value, unmetered]
            continue
        entry = merged[key]
        entry[4] = value if entry[4] is None else entry[4] if value is None else entry[4] + value
        entry[5] += unmetered
    return [tuple(entry) for _, entry in sorted(merged.items(), key=lambda item: _sort_key(item[0]))]


def _sort_key(key: tuple) -> tuple:
    customer, start, end, dims = key
    return (customer, start, end, tuple((d is None, d or "") for d in dims))


# ---------------------------------------------------------------- the month's events


class _Background:
    """Work on a cursor of its own, on a worker thread: DuckDB works outside the GIL, so it
    overlaps with what the caller does meanwhile. The cursor is a connection of its own, so
    it sees committed data only."""

    def __init__(self, con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], Any]) -> None:
        self._cursor = cursor(con)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterctl-background")
        self._future = self._pool.submit(work, self._cursor)
        self._closed = False

    def result(self) -> Any:
        try:
            value = self._future.result()
        except BaseException:  # the query failed, or Ctrl-C while waiting: stop it, then report
            self.cancel()
            raise
        self._close()
        return value

    def cancel(self) -> None:
        if not self._closed:
            self._cursor.interrupt()
            self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._pool.shutdown(wait=True)
            finally:
                self._cursor.close()


_ONE_SUM = ("CAST(coalesce(sum(quantity), 0) AS VARCHAR) AS whole, "
            "CAST(0 AS DECIMAL(38, 18)) AS fraction")
_PARTS_SUM = ("CAST(coalesce(sum(CAST(trunc(quantity) AS HUGEINT)), 0) AS VARCHAR) AS whole, "
              "coalesce(sum(quantity - trunc(quantity)), 0) AS fraction")


def _tally(con: duckdb.DuckDBPyConnection, query: MonthQuery) -> tuple[MonthTally, ...]:
    params: dict[str, Any] = {}
    meters, unreadable = [], []
    for index, meter in enumerate(query.meters):
        selects, reads = usage_sql.selects_and_reads(meter, params, f"m{index}_")
        meters.append(f"(CASE WHEN coalesce({selects}, false) THEN {1 << index} ELSE 0 END)")
        unreadable.append(f"(coalesce({selects}, false) AND NOT coalesce({reads}, false))")
    def statement(quantity: str) -> str:
        return usage_sql.fill_text(sqlfiles.load("month_tally"), "month_tally", quantity=quantity,
                                   meters=" + ".join(meters) or "0", unreadable=" OR ".join(unreadable) or "false")

    windows = query.windows
    starts = [w.start for w in windows] + [query.start]
    ends = [w.end for w in windows] + [query.end]
    params.update({"start": query.start, "end": query.end, "scan_start": min(starts), "scan_end": max(ends),
                   "known": list(query.known) if query.known is not None else None, "ignored": list(query.ignored)})
    sqlfiles.install_macros(con)  # a meter valued from a property reads it with mc_is_decimal_text
    sqlfiles.temp_table(con, "month_windows", {
        "window_id": ("INTEGER", list(range(len(windows)))),
        "customer_id": ("VARCHAR", [w.customer_id for w in windows]),
        "start_at": ("TIMESTAMPTZ", [w.start for w in windows]),
        "end_at": ("TIMESTAMPTZ", [w.end for w in windows]),
        "covered": ("BOOLEAN", [w.covered for w in windows]),
        "late_after": ("BIGINT", [w.late_after for w in windows]),
    })
    try:
        try:
            rows = sqlfiles.execute(con, statement(_ONE_SUM), params).fetchall()
        except duckdb.OutOfRangeException:
            rows = sqlfiles.execute(con, statement(_PARTS_SUM), params).fetchall()
    finally:
        # The cursor is the background's own and closes next: a failed drop must not hide
        # what failed before it.
        try:
            con.execute("DROP TABLE IF EXISTS temp.month_windows")
        except duckdb.Error:
            pass
    instants = EpochCache()
    return tuple(MonthTally(fate, window, customer, name, int(mask), int(events), _exact_sum(whole, fraction), int(late),
                            None if first is None else instants[first], first_id)
                 for fate, window, customer, name, mask, events, whole, fraction, late, first, first_id in rows)


def _exact_sum(whole: str, fraction: Decimal) -> Decimal:
    with localcontext() as exact:
        exact.prec = 80  # 38 digits before the point and 18 after: beyond the default 28
        return Decimal(whole) + fraction


# ---------------------------------------------------------------- lineage helpers


def _line_selection(query: LineEventQuery, as_of_batch: int | None) -> tuple[str, dict[str, Any]]:
    """The WHERE clause of the events behind a line, as usage selects them."""
    meter = query.meter
    params: dict[str, Any] = {
        "as_of_batch": as_of_batch,
        "start": query.start,
        "end": query.end,
        "customers": [query.customer_id],
        "name": meter.event_name,
        "stop": meter.stop_event,
    }
    duration = meter.aggregation == "duration"
    names = "(event_name = $name OR event_name = $stop)" if duration else "event_name = $name"
    # A duration counts from the heartbeat before the window to the one after it (within the gap).
    params["m_gap"] = meter.heartbeat_gap_seconds
    where, dims = usage_sql.selection(meter, params, "m_", names, reach="gap" if duration else "range")
    # A line priced by a dimension value covers the events with that value (or without the property).
    for index, key in enumerate(meter.dimension_keys):
        if key in query.dimensions:
            params[f"dv{index}"] = query.dimensions[key]
            where += f" AND {dims[index]} IS NOT DISTINCT FROM $dv{index}"
    return where, params


def _meterable_sql(query: LineEventQuery, params: dict[str, Any]) -> str:
    """Whether the meter can read an event's value, as usage decides it."""
    meter = query.meter
    if meter.aggregation == "count":
        return "true"
    if meter.aggregation == "duration":
        params["m_sk"] = (meter.session or "").removeprefix("properties.")
        return "(e.properties ->> $m_sk) IS NOT NULL"
    return f"({usage_sql.value_sql(meter, params, 'm_')}) IS NOT NULL"  # properties and quantity: only events has them
