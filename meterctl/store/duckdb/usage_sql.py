"""The usage compiler: a meter definition and a window → the statements of sql/usage.sql.

The statements' shape is written once, as SQL, in sql/usage.sql; this module only fills
their `{{slots}}` with fragments made here from a closed vocabulary: the window
expressions of `hour`, `day` and `month`, one aggregate per aggregation, the selection
(event names, the range, filters, the customer list, an ingest batch) and the dimension
expressions. Names and values that come from configuration or input (event names, property
keys, filter values, the time zone) are always bound parameters, never text in the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from meterctl.store.duckdb import sqlfiles

if TYPE_CHECKING:
    from meterctl.meters import Meter

_SLOT = re.compile(r"\{\{([a-z_]+)\}\}")
_SECTION = re.compile(r"^-- section: ([a-z_]+)\n", re.MULTILINE)
_METER_PARAMETER = re.compile(r"\$p_")

# The clock windows and their SQL unit; "period" windows are joined from usage_windows.
CLOCK_WINDOWS = ("hour", "day", "month")

_AGGREGATE = {
    "sum": "sum(v)",
    "max": "max(v)",
    "min": "min(v)",
    "latest": "arg_max(v, (ts, event_id)) FILTER (v IS NOT NULL)",
    "count_unique": "CAST(count(DISTINCT v) AS DECIMAL(38, 18))",
    "count": "CAST(count(*) AS DECIMAL(38, 18))",
}

Reach = Literal["range", "lookback", "gap", "all"]


@cache
def _sections() -> dict[str, str]:
    text = sqlfiles.load("usage")
    parts = _SECTION.split(text)
    # parts: [header, name, body, name, body, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def fill(section: str, **fragments: str) -> str:
    """A section of usage.sql with every slot filled."""
    return fill_text(_sections()[section], f"usage.sql {section}", **fragments)


def fill_text(body: str, name: str, **fragments: str) -> str:
    """SQL with every slot filled; a slot left empty or a fragment with no slot is a mistake
    in the code, not in the input. (Comments never name a slot in braces.)"""
    slots = set(_SLOT.findall(body))
    if slots != set(fragments):
        raise AssertionError(f"{name}: slots {sorted(slots)}, fragments {sorted(fragments)}")
    return _SLOT.sub(lambda m: fragments[m.group(1)], body)


def window_bounds(window: str, instant: str) -> tuple[str, str]:
    """SQL for the start and end instants of the `window` holding `instant` (in $tz)."""
    if window not in CLOCK_WINDOWS:
        raise AssertionError(f"not a clock window: {window!r}")
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


def windows(window: str, alias: str) -> tuple[str, str, str]:
    """Window start and end expressions for events aliased `alias`, and the join they need:
    clock windows are computed from `ts`; billing-period windows come from the registered
    `usage_windows` table (customer_id, window_start, window_end)."""
    if window == "period":
        join = (f" JOIN usage_windows AS w ON w.customer_id = {alias}.customer_id"
                f" AND {alias}.ts >= w.window_start AND {alias}.ts < w.window_end")
        return "w.window_start", "w.window_end", join
    start, end = window_bounds(window, "ts")
    return start, end, ""


def _property(path: str) -> str:
    return path.removeprefix("properties.")


def _filter_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def selection(meter: Meter, params: dict[str, Any], p: str, event_names_sql: str,
              reach: Reach = "range") -> tuple[str, list[str]]:
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
    where += _filters(meter, params, p)
    dims = []
    for index, key in enumerate(meter.group_by):
        params[f"{p}gk{index}"] = _property(key)
        dims.append(f"properties ->> ${p}gk{index}")
    return " AND ".join(where), dims


def _filters(meter: Meter, params: dict[str, Any], p: str) -> list[str]:
    """The meter's property filters, each a condition on an event."""
    found = []
    for index, (key, allowed) in enumerate(sorted(meter.filters.items())):
        values = allowed if isinstance(allowed, list) else [allowed]
        params[f"{p}fk{index}"] = _property(key)
        params[f"{p}fv{index}"] = [_filter_text(v) for v in values]
        found.append(f"list_contains(${p}fv{index}, properties ->> ${p}fk{index})")
    return found


def selects_and_reads(meter: Meter, params: dict[str, Any], p: str) -> tuple[str, str]:
    """Conditions on one event: the meter selects it (its event names and filters, as usage
    selects events), and it can read the event's value (as usage reads it: an event it
    cannot is unmeterable)."""
    params[f"{p}event_name"] = meter.event_name
    names = f"event_name = ${p}event_name"
    if meter.stop_event:
        params[f"{p}stop_event"] = meter.stop_event
        names = f"({names} OR event_name = ${p}stop_event)"
    selects = " AND ".join([names, *_filters(meter, params, p)])
    if meter.aggregation == "count":
        return selects, "true"
    if meter.aggregation == "duration":
        params[f"{p}sk"] = _property(meter.session or "")
        return selects, f"(properties ->> ${p}sk) IS NOT NULL"
    return selects, f"({value_sql(meter, params, p)}) IS NOT NULL"


def value_sql(meter: Meter, params: dict[str, Any], p: str) -> str:
    """The meter's value of an event; NULL where it cannot be read (an unmeterable event)."""
    if meter.value == "quantity":
        return "quantity"
    params[f"{p}vk"] = _property(meter.value or "")
    if meter.aggregation == "count_unique":
        return f"properties ->> ${p}vk"
    text = f"(properties ->> ${p}vk)"
    # A value DECIMAL(38, 18) would round ("0.0000000000000000004" to 0) is unmeterable, not changed.
    return (f"CASE WHEN mc_is_decimal_text({text}) AND mc_fits_decimal({text}, TRY_CAST({text} AS DECIMAL(38, 18))) "
            f"THEN TRY_CAST({text} AS DECIMAL(38, 18)) END")


def _aliases(dims: list[str]) -> tuple[str, str, str]:
    """The dimension columns of a subquery (', expr AS d0, ...'), their names after a
    leading comma (', d0, ...') and as a list ('d0, ...')."""
    columns = "".join(f", {d} AS d{i}" for i, d in enumerate(dims))
    names = [f"d{i}" for i in range(len(dims))]
    return columns, "".join(f", {n}" for n in names), ", ".join(names)


# 1 where a sum of DECIMAL(38, 18) values would reach 10^20 (beyond the type), else 0: the
# whole and fractional parts summed apart cannot overflow (each whole part is below 10^20,
# a HUGEINT holds 10^38).
_SUM_OVERFLOWS = (
    "CASE WHEN sum(CAST(trunc(v) AS HUGEINT)) + CAST(floor(sum(v - trunc(v))) AS HUGEINT) "
    ">= CAST('100000000000000000000' AS HUGEINT) "
    "OR sum(CAST(trunc(v) AS HUGEINT)) + CAST(ceil(sum(v - trunc(v))) AS HUGEINT) "
    "<= CAST('-100000000000000000000' AS HUGEINT) THEN 1 ELSE 0 END"
)


def plain_meter(meter: Meter, index: int, window: str, params: dict[str, Any], *,
                overflow_check: bool = False) -> str:
    """One SELECT giving (meter_index, customer_id, window_start, window_end, dims, value, unmeterable).

    With `overflow_check` (a sum meter), the value is 1 where the sum would not fit, else 0."""
    p = f"m{index}_"
    params[f"{p}event_name"] = meter.event_name
    where, dims = selection(meter, params, p, f"event_name = ${p}event_name")
    counted = meter.aggregation == "count"
    aggregate = _SUM_OVERFLOWS if overflow_check else _AGGREGATE[meter.aggregation]
    if not counted:
        aggregate = f"CASE WHEN count(v) > 0 THEN {aggregate} END"
    w_start, w_end, join = windows(window, "e")
    columns, names, listed = _aliases(dims)
    return fill(
        "plain", meter_index=str(index), window_start=w_start, window_end=w_end, dimension_list=listed,
        aggregate=aggregate, unmeterable="0" if counted else "count(*) FILTER (v IS NULL)",
        value="NULL" if counted else value_sql(meter, params, p), dimension_columns=columns, where=where,
        period_join=join, dimension_names=names,
    )


@dataclass(frozen=True)
class DurationStatements:
    spans: str  # (customer, window start, window end, dims, seconds, 0)
    unmeterable: str  # (customer, window start, window end, dims, NULL, events without a session)
    open_sessions: str  # (customer, session, last event)


def duration_meter(meter: Meter, index: int, window: str, params: dict[str, Any]) -> DurationStatements:
    """The three statements of a duration meter (see usage.sql)."""
    p = f"m{index}_"
    params[f"{p}event_name"] = meter.event_name
    params[f"{p}gap"] = meter.heartbeat_gap_seconds
    params[f"{p}stop_event"] = meter.stop_event
    params[f"{p}sk"] = _property(meter.session or "")
    names_sql = f"(event_name = ${p}event_name OR event_name = ${p}stop_event)"
    where, dims = selection(meter, params, p, names_sql, reach="lookback")
    # The spans that reach into the range, whole: a span is cut at the edges of the range,
    # never dropped because one of its events lies outside it.
    span_where, _ = selection(meter, params, p, names_sql, reach="all" if meter.stop_event else "gap")
    columns, names, listed = _aliases(dims)
    if window == "period":
        pieces = fill("duration_pieces_period")
    else:
        a_start, _ = window_bounds(window, "a")
        step = f"INTERVAL 1 {window.upper()}"
        # Hours step in absolute time (the repeated hour of a DST fall-back is two windows, as
        # for the other meters); days and months step on the local calendar.
        if window == "hour":
            series = f"unnest(generate_series({a_start}, b, {step}))"
            next_start = f"w_start + {step}"
        else:
            series = f"unnest(generate_series({a_start} AT TIME ZONE $tz, b AT TIME ZONE $tz, {step})) AT TIME ZONE $tz"
            next_start = f"((w_start AT TIME ZONE $tz) + {step}) AT TIME ZONE $tz"
        pieces = fill("duration_pieces_clock", series=series, next_start=next_start)
    spans = fill("duration_spans", dimension_columns=columns, where=span_where, dimension_names=names,
                 pieces=pieces, dimension_names_list=listed)
    w_start, w_end, join = windows(window, "e")
    unmeterable = fill("duration_unmeterable", window_start=w_start, window_end=w_end, dimension_list=", ".join(dims),
                       where=where, period_join=join)
    open_sessions = fill("duration_open_sessions", where=where)
    return DurationStatements(*(_METER_PARAMETER.sub(f"${p}", s) for s in (spans, unmeterable, open_sessions)))


def union(statements: Iterable[str]) -> str:
    """The plain meters' statements as one (DuckDB runs the branches in parallel, and
    Python receives one ordered result)."""
    return " UNION ALL ".join(f"({q})" for q in statements) + " ORDER BY ALL"
