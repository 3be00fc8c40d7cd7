"""Stored events → usage per customer × meter × window (× dimension values).

Windows are half-open [start, end) in a time zone: `hour` windows follow the local clock
(an hour of a +05:30 zone starts at :30 UTC; the repeated hour of a DST fall-back is two
windows, one per offset), `day` and `month` windows start at local midnight, DST days
included. `period` windows are given: each customer's billing periods, split where the plan
changes. The event store aggregates all customers of a meter at once; Python only shapes
the aggregates.

Events whose meter value is missing or not a number are *unmeterable*: they are counted and
reported, never treated as zero. For duration meters, an event without a session is
unmeterable.

Duration rule: within a session, the time from one event to the next counts when the two
are at most `heartbeat_gap_seconds` apart, or when the later one is the meter's stop
event; nothing counts after a stop. A span that crosses a window edge, or an edge of the
range asked for, is split at the edge: no second is counted twice, and a window's value does
not depend on the range it was asked with (a month rated alone gets its part of a session
that crosses into the next). A session whose last event is not a stop and lies within the
gap of the end of the range is reported as open (it may still be running).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from meterctl.errors import Param, UsageError
from meterctl.usage import WINDOWS, BillingWindow, OpenSession, Unmeterable, UsageQuery, UsageResult, UsageRow

if TYPE_CHECKING:
    from meterctl.meters import Meter
    from meterctl.store.ports import EventStore


def usage(
    events: EventStore,
    meters: Sequence[Meter],
    *,
    window: str,
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    customers: Sequence[str] | None = None,
    periods: Sequence[BillingWindow] | None = None,
    as_of_batch: int | None = None,
) -> UsageResult:
    """Usage of each meter per customer × window in [start, end).

    With window="period", `periods` gives each customer's billing windows: billing periods,
    split where the plan changes. Events outside every window of their customer are not part
    of any period's usage. `as_of_batch` counts only events ingested by that ingest batch
    (for re-deriving what was rated then).
    """
    if window not in WINDOWS:
        raise UsageError(Param("window"), f" must be one of {', '.join(WINDOWS)}, not '{window}'")
    if window == "period" and periods is None:
        raise UsageError(Param("window"), " period needs the customers' billing periods")
    if start >= end:
        raise UsageError(Param("start"), " must be before ", Param("end"))
    if not events.knows_time_zone(tz):
        raise UsageError(Param("tz"), f": unknown time zone '{tz}' (use an IANA name such as Europe/Paris)")
    query = UsageQuery(tuple(meters), window, start, end, tz, tuple(customers) if customers else None,
                       tuple(periods) if periods is not None else None, as_of_batch)
    found, opened = events.aggregate(query)
    names = [m.name for m in meters]
    keys = [m.dimension_keys for m in meters]
    make = UsageRow._make
    rows = [
        make((customer, names[index], ws, we, dict(zip(keys[index], dims, strict=True)) if dims else {}, value, unmetered))
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
    unmeterable.sort(key=lambda u: (u.customer_id, u.meter))
    open_sessions = [OpenSession(c, meters[index].name, s, last) for index, c, s, last in opened]
    return UsageResult(window, tz, start, end, tuple(rows), tuple(unmeterable), tuple(open_sessions))
