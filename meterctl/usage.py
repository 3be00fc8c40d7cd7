"""Stored events → usage per customer × meter × window (× dimension values).

Windows are half-open [start, end) in a time zone: `hour` windows follow the local clock
(an hour of a +05:30 zone starts at :30 UTC; the repeated hour of a DST fall-back is two
windows, one per offset), `day` and `month` windows start at local midnight, DST days
included. One SQL statement per meter aggregates all customers at once; Python only loops
over meters.

Events whose meter value is missing or not a number are *unmeterable*: they are counted and
reported, never treated as zero. For duration meters, an event without a session is
unmeterable.

Duration rule: within a session, the time from one event to the next counts when the two
are at most `heartbeat_gap_seconds` apart, or when the later one is the meter's stop
event; nothing counts after a stop. A span that crosses a window edge, or an edge of the
range asked for, is split at the edge: no second is counted twice, and a window's value does
not depend on the range it was asked with (a month rated alone gets its part of a session
that crosses into the next). For that, a heartbeat-only meter reads the gap beyond each edge,
and a meter with a stop event reads its whole history, since a start-to-stop span may be any
length. A session whose last event is not a stop and lies within the gap of the end of the
range is reported as open (it may still be running).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, NamedTuple

import duckdb

from meterctl import sql
from meterctl.errors import DataError, UsageError
from meterctl.meters import Meter

Window = Literal["hour", "day", "month"]
WINDOWS: tuple[str, ...] = ("hour", "day", "month", "period")
_ISO = "%Y-%m-%dT%H:%M:%SZ"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UsageRow(NamedTuple):
    """One customer × meter × window (× dimension values). A named tuple, not a frozen
    dataclass: a month of hourly usage is hundreds of thousands of rows, and a tuple is
    built several times faster."""

    customer_id: str
    meter: str
    window_start: str
    window_end: str
    dimensions: dict[str, str | None]
    value: Decimal | None  # None: every event of this window was unmeterable
    unmeterable: int = 0


@dataclass(frozen=True)
class Unmeterable:
    customer_id: str
    meter: str
    events: int
    reason: str


@dataclass(frozen=True)
class OpenSession:
    customer_id: str
    meter: str
    session: str
    last_event_at: str


@dataclass(frozen=True)
class UsageResult:
    window: str
    tz: str
    start: str
    end: str
    rows: tuple[UsageRow, ...]
    unmeterable: tuple[Unmeterable, ...]
    open_sessions: tuple[OpenSession, ...]


def _iso(epoch_micros: int) -> str:
    return (_EPOCH + timedelta(microseconds=epoch_micros)).strftime(_ISO)


def _property(path: str) -> str:
    return path.removeprefix("properties.")


def _filter_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _query(con: duckdb.DuckDBPyConnection, statement: str, params: dict) -> list[tuple]:
    return sql.execute(con, statement, params).fetchall()


def _window_sql(window: str, instant: str) -> tuple[str, str]:
    """SQL for the start and end instants of the window holding `instant` (in $tz)."""
    local = f"({instant} AT TIME ZONE $tz)"
    if window == "hour":
        # Floor the local clock to the hour and apply the same offset back.
        start = f"({instant} - to_microseconds(epoch_us({local}) % 3600000000))"
        return start, f"({start} + INTERVAL 1 HOUR)"
    start_local = f"date_trunc('{window}', {local})"
    return (
        f"({start_local} AT TIME ZONE $tz)",
        f"(({start_local} + INTERVAL 1 {window.upper()}) AT TIME ZONE $tz)",
    )


def _windows(window: str, alias: str) -> tuple[str, str, str]:
    """Window start and end expressions for events aliased `alias`, and the join they need.

    Clock windows are computed from `ts`; billing-period windows come from the registered
    `usage_windows` table (customer_id, window_start, window_end).
    """
    if window == "period":
        join = (f" JOIN usage_windows AS w ON w.customer_id = {alias}.customer_id"
                f" AND {alias}.ts >= w.window_start AND {alias}.ts < w.window_end")
        return "w.window_start", "w.window_end", join
    start, end = _window_sql(window, "ts")
    return start, end, ""


Reach = Literal["range", "lookback", "gap", "all"]


def selection(meter: Meter, params: dict, p: str, event_names_sql: str, reach: Reach = "range") -> tuple[str, list[str]]:
    """WHERE clause and dimension expressions for a meter; values go into params as $<p>….

    `reach` says which events: those of the range [$start, $end); `lookback` adds the
    heartbeat gap before it; `gap` adds it on both sides (a span that crosses an edge of the
    range is within the gap of it, unless it ends with a stop); `all` is every event, for the
    spans of a meter with a stop event, which may be any length."""
    gap = f" - to_seconds(CAST(${p}gap AS BIGINT))"
    bounds = {
        "range": ["ts >= CAST($start AS TIMESTAMPTZ)", "ts < CAST($end AS TIMESTAMPTZ)"],
        "lookback": ["ts >= CAST($start AS TIMESTAMPTZ)" + gap, "ts < CAST($end AS TIMESTAMPTZ)"],
        "gap": ["ts >= CAST($start AS TIMESTAMPTZ)" + gap, "ts < CAST($end AS TIMESTAMPTZ)" + gap.replace(" - ", " + ")],
        "all": [],
    }[reach]
    where = [event_names_sql, *bounds, "($customers IS NULL OR list_contains($customers, customer_id))"]
    if params.get("as_of_batch") is not None:
        # As of an ingest batch (re-deriving an old invoice ignores events that came later);
        # left out otherwise, so that the usual query does not read batch_id at all.
        where.append("batch_id <= CAST($as_of_batch AS BIGINT)")
    for index, (key, allowed) in enumerate(sorted(meter.filters.items())):
        values = allowed if isinstance(allowed, list) else [allowed]
        params[f"{p}fk{index}"] = _property(key)
        params[f"{p}fv{index}"] = [_filter_text(v) for v in values]
        where.append(f"list_contains(${p}fv{index}, properties ->> ${p}fk{index})")
    dims = []
    for index, key in enumerate(meter.group_by):
        params[f"{p}gk{index}"] = _property(key)
        dims.append(f"properties ->> ${p}gk{index}")
    return " AND ".join(where), dims


def value_sql(meter: Meter, params: dict, p: str) -> str:
    if meter.value == "quantity":
        return "quantity"
    params[f"{p}vk"] = _property(meter.value or "")
    if meter.aggregation == "count_unique":
        return f"properties ->> ${p}vk"
    text = f"(properties ->> ${p}vk)"
    # A value DECIMAL(38, 18) would round ("0.0000000000000000004" to 0) is unmeterable, not changed.
    return (f"CASE WHEN mc_is_decimal_text({text}) AND mc_fits_decimal({text}, TRY_CAST({text} AS DECIMAL(38, 18))) "
            f"THEN TRY_CAST({text} AS DECIMAL(38, 18)) END")


_AGGREGATE = {
    "sum": "sum(v)",
    "max": "max(v)",
    "min": "min(v)",
    "latest": "arg_max(v, (ts, event_id)) FILTER (v IS NOT NULL)",
    "count_unique": "CAST(count(DISTINCT v) AS DECIMAL(38, 18))",
    "count": "CAST(count(*) AS DECIMAL(38, 18))",
}


def _plain_meter_sql(meter: Meter, index: int, window: str, params: dict) -> str:
    """One SELECT giving (meter_index, customer_id, window_start, window_end, dims, value, unmeterable)."""
    p = f"m{index}_"
    params[f"{p}event_name"] = meter.event_name
    where, dims = selection(meter, params, p, f"event_name = ${p}event_name")
    value = "NULL" if meter.aggregation == "count" else value_sql(meter, params, p)
    w_start, w_end, periods_join = _windows(window, "e")
    dim_cols = "".join(f", {d} AS d{i}" for i, d in enumerate(dims))
    dim_names = "".join(f", d{i}" for i in range(len(dims)))
    unmetered = "0" if meter.aggregation == "count" else "count(*) FILTER (v IS NULL)"
    # A window whose events are all unmeterable still appears, with no value.
    aggregate = _AGGREGATE[meter.aggregation]
    if meter.aggregation != "count":
        aggregate = f"CASE WHEN count(v) > 0 THEN {aggregate} END"
    return f"""
        SELECT {index} AS meter_index, e.customer_id,
               -- As epoch microseconds: Python formats each distinct bound once (see usage()).
               epoch_us({w_start}) AS window_start, epoch_us({w_end}) AS window_end,
               [{', '.join(f'd{i}' for i in range(len(dims)))}]::VARCHAR[] AS dims,
               CAST({aggregate} AS DECIMAL(38, 18)) AS value, CAST({unmetered} AS BIGINT) AS unmeterable
        FROM (
            SELECT customer_id, ts, event_id, {value} AS v{dim_cols}
            FROM events WHERE {where}
        ) AS e{periods_join}
        GROUP BY e.customer_id, {w_start}, {w_end}{dim_names}
    """


def _duration_meter(con, meter: Meter, index: int, window: str, params: dict):
    p = f"m{index}_"
    params[f"{p}event_name"] = meter.event_name
    params[f"{p}gap"] = meter.heartbeat_gap_seconds
    params[f"{p}stop_event"] = meter.stop_event
    params[f"{p}sk"] = _property(meter.session or "")
    names = f"(event_name = ${p}event_name OR event_name = ${p}stop_event)"
    where, dims = selection(meter, params, p, names, reach="lookback")
    # The spans that reach into the range, whole: a span is cut at the edges of the range
    # below, never dropped because one of its events lies outside it.
    span_where, _ = selection(meter, params, p, names, reach="all" if meter.stop_event else "gap")
    dim_cols = "".join(f", {d} AS d{i}" for i, d in enumerate(dims))
    dim_list = "".join(f", d{i}" for i in range(len(dims)))
    if window == "period":
        pieces = """bounded AS (
            SELECT s.*, w.window_start AS w_start, w.window_end AS w_end
            FROM spans AS s JOIN usage_windows AS w
              ON w.customer_id = s.customer_id AND w.window_start < s.b AND w.window_end > s.a
        )"""
    else:
        a_start, _ = _window_sql(window, "a")
        step = f"INTERVAL 1 {window.upper()}"
        # Hours step in absolute time (the repeated hour of a DST fall-back is two windows, as
        # for the other meters); days and months step on the local calendar.
        if window == "hour":
            series = f"unnest(generate_series({a_start}, b, {step}))"
        else:
            series = f"unnest(generate_series({a_start} AT TIME ZONE $tz, b AT TIME ZONE $tz, {step})) AT TIME ZONE $tz"
        pieces = f"""pieces AS (
            SELECT s.*, w.ws AS w_start
            FROM spans AS s,
                 LATERAL (SELECT {series} AS ws) AS w
        ),
        bounded AS (
            SELECT *, CASE WHEN '{window}' = 'hour' THEN w_start + INTERVAL 1 HOUR
                           ELSE ((w_start AT TIME ZONE $tz) + {step}) AT TIME ZONE $tz END AS w_end
            FROM pieces
        )"""
    spans_sql = f"""
        WITH selected AS (
            SELECT customer_id, ts, event_id, properties ->> ${p}sk AS session,
                   coalesce(event_name = ${p}stop_event, false) AS is_stop{dim_cols}
            FROM events WHERE {span_where}
        ),
        ordered AS (
            SELECT *, lag(ts) OVER w AS prev_ts, lag(is_stop) OVER w AS prev_stop
            FROM selected WHERE session IS NOT NULL
            WINDOW w AS (PARTITION BY customer_id, session{dim_list} ORDER BY ts, event_id)
        ),
        spans AS (
            SELECT customer_id, session{dim_list},
                   greatest(prev_ts, CAST($start AS TIMESTAMPTZ)) AS a, least(ts, CAST($end AS TIMESTAMPTZ)) AS b
            FROM ordered
            WHERE prev_ts IS NOT NULL AND NOT prev_stop
              AND (is_stop OR ts - prev_ts <= to_seconds(CAST(${p}gap AS BIGINT)))
              AND ts > CAST($start AS TIMESTAMPTZ) AND prev_ts < CAST($end AS TIMESTAMPTZ)
        ),
        {pieces}
        SELECT customer_id, strftime(w_start, '{_ISO}'), strftime(w_end, '{_ISO}'),
               [{', '.join(f'd{i}' for i in range(len(dims)))}]::VARCHAR[],
               -- DECIMAL division would give a DOUBLE: multiply by an exact 10^-6 instead.
               CAST(sum(epoch_us(least(b, w_end)) - epoch_us(greatest(a, w_start))) AS DECIMAL(38, 6)) * CAST(0.000001 AS DECIMAL(7, 6)),
               0
        FROM bounded
        WHERE least(b, w_end) > greatest(a, w_start)
        GROUP BY customer_id, w_start, w_end{dim_list}
    """
    rows = _query(con, spans_sql + " ORDER BY ALL", params)
    w_start, w_end, join = _windows(window, "e")
    rows += _query(
        con,
        f"SELECT e.customer_id, strftime({w_start}, '{_ISO}'), strftime({w_end}, '{_ISO}'), "
        f"[{', '.join(dims)}]::VARCHAR[], NULL, count(*) "
        f"FROM (SELECT * FROM events WHERE {where} AND ts >= CAST($start AS TIMESTAMPTZ)) AS e{join} "
        f"WHERE (properties ->> ${p}sk) IS NULL GROUP BY ALL",
        params,
    )
    open_sessions = _query(
        con,
        f"""
        SELECT customer_id, session, strftime(max(ts), '{_ISO}')
        FROM (SELECT customer_id, ts, properties ->> ${p}sk AS session,
                     coalesce(event_name = ${p}stop_event, false) AS is_stop, event_id
              FROM events WHERE {where})
        WHERE session IS NOT NULL
        GROUP BY customer_id, session
        HAVING NOT arg_max(is_stop, (ts, event_id))
           AND max(ts) > CAST($end AS TIMESTAMPTZ) - to_seconds(CAST(${p}gap AS BIGINT))
        ORDER BY ALL
        """,
        params,
    )
    return rows, open_sessions


def _merge_windows(rows: list[tuple]) -> list[tuple]:
    """One row per (customer, window, dimensions): metered seconds and unmeterable events
    of a duration meter come from two queries."""
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


def usage(
    con: duckdb.DuckDBPyConnection,
    meters: Sequence[Meter],
    *,
    window: str,
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    customers: Sequence[str] | None = None,
    periods: Sequence[tuple[str, datetime, datetime]] | None = None,
    as_of_batch: int | None = None,
) -> UsageResult:
    """Usage of each meter per customer × window in [start, end).

    With window="period", `periods` gives each customer's billing windows (customer_id,
    start, end): billing periods, split where the plan changes. Events outside every
    window of their customer are not part of any period's usage. `as_of_batch` counts only
    events ingested by that ingest batch (for re-deriving what was rated then).
    """
    if window not in WINDOWS:
        raise UsageError(f"--window must be one of {', '.join(WINDOWS)}, not '{window}'")
    if window == "period":
        if periods is None:
            raise UsageError("--window period needs the customers' billing periods")
        sql.temp_table(con, "usage_windows", {
            "customer_id": ("VARCHAR", [p[0] for p in periods]),
            "window_start": ("TIMESTAMPTZ", [p[1] for p in periods]),
            "window_end": ("TIMESTAMPTZ", [p[2] for p in periods]),
        })
    if start >= end:
        raise UsageError("--from must be before --to")
    _check_time_zone(con, tz)
    sql.install_macros(con)
    params: dict = {"start": start, "end": end, "tz": tz, "customers": list(customers) if customers else None,
                    "as_of_batch": as_of_batch}
    try:
        found, opened = _aggregate(con, meters, window, params)
    except duckdb.OutOfRangeException:
        summed = ", ".join(m.name for m in meters if m.aggregation == "sum") or "?"
        raise DataError(f"usage cannot be totalled: a sum of meter {summed} reaches 10^20 or more, beyond DECIMAL(38, 18); "
                        "find the events with huge values (e.g. meterctl usage --meter NAME --window day) "
                        "and correct them at the source") from None
    found.sort(key=lambda row: row[0])  # stable: keeps the SQL order inside each meter
    names = [m.name for m in meters]
    keys = [m.dimension_keys for m in meters]
    make = UsageRow._make
    rows = [
        make((customer, names[index], ws, we, dict(zip(keys[index], dims)) if dims else {}, value, unmetered))
        for index, customer, ws, we, dims, value, unmetered in found
    ]
    per_meter_customer: dict[tuple[int, str], int] = {}
    for index, customer, *_rest, unmetered in found:
        if unmetered:
            per_meter_customer[(index, customer)] = per_meter_customer.get((index, customer), 0) + int(unmetered)
    unmeterable = [
        Unmeterable(customer, meters[index].name, count,
                    "no session property" if meters[index].aggregation == "duration"
                    else f"{meters[index].value} missing or not a number")
        for (index, customer), count in per_meter_customer.items()
    ]
    open_sessions = [OpenSession(c, meters[index].name, s, last) for index, c, s, last in opened]
    # Rows come ordered by SQL: meter (as configured), then customer, window, dimensions.
    unmeterable.sort(key=lambda u: (u.customer_id, u.meter))
    return UsageResult(
        window=window,
        tz=tz,
        start=start.strftime(_ISO),
        end=end.strftime(_ISO),
        rows=tuple(rows),
        unmeterable=tuple(unmeterable),
        open_sessions=tuple(open_sessions),
    )


def _aggregate(con: duckdb.DuckDBPyConnection, meters: Sequence[Meter], window: str, params: dict) -> tuple[list, list]:
    """(rows, open sessions) of every meter, each row led by the meter's index."""
    found: list[tuple] = []
    opened: list[tuple] = []
    # Every count/sum/max/... meter in one statement (DuckDB runs the branches in parallel
    # and Python receives one ordered result); duration meters need their own.
    plain = [_plain_meter_sql(m, i, window, params) for i, m in enumerate(meters) if m.aggregation != "duration"]
    if plain:
        statement = " UNION ALL ".join(f"({q})" for q in plain) + " ORDER BY ALL"
        found += (_fetch_columns if window != "period" else _fetch_rows)(
            con, statement, sql.bind(statement, params),
            grouped=any(m.group_by for m in meters if m.aggregation != "duration"))
    for index, meter in enumerate(meters):
        if meter.aggregation == "duration":
            rows_found, sessions = _duration_meter(con, meter, index, window, params)
            found += [(index, *row) for row in _merge_windows(rows_found)]
            opened += [(index, *row) for row in sessions]
    return found, opened


def _fetch_rows(con: duckdb.DuckDBPyConnection, statement: str, params: dict, grouped: bool) -> list[tuple]:
    """The plain meters' rows, with window bounds as text. Billing periods make a row per
    segment × meter × dimension value: few enough to fetch as tuples. (`grouped` is for
    _fetch_columns, which takes the same arguments.)"""
    rows = con.execute(statement, params).fetchall()
    text = {m: _iso(m) for m in {row[2] for row in rows} | {row[3] for row in rows}}
    return [(index, customer, text[start], text[end], dims, value, unmetered)
            for index, customer, start, end, dims, value, unmetered in rows]


def _fetch_columns(con: duckdb.DuckDBPyConnection, statement: str, params: dict, grouped: bool) -> list[tuple]:
    """The same through Arrow, column by column: about a third of the cost of fetching tuples,
    which counts for clock windows (a month of hours is hundreds of thousands of rows)."""
    table = con.sql(statement, params=params).to_arrow_table()
    columns = [table.column(i) for i in range(table.num_columns)]
    values = [column.to_pylist() for column in columns[:2]]
    # Window bounds take few distinct values: format each once, not once per row.
    for position in (2, 3):
        micros = columns[position].to_pylist()
        text = {m: _iso(m) for m in set(micros)}
        values.append([text[m] for m in micros])
    # Without dimensions every row's list is empty: no need to convert it row by row.
    values.append(columns[4].to_pylist() if grouped else [()] * table.num_rows)
    values += [column.to_pylist() for column in columns[5:]]
    return list(zip(*values))


def _check_time_zone(con: duckdb.DuckDBPyConnection, tz: str) -> None:
    known = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [tz]).fetchall()[0][0]
    if not known:
        raise UsageError(f"--tz: unknown time zone '{tz}' (use an IANA name such as Europe/Paris)")
