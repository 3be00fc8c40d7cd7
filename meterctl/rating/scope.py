"""The stretches of time a month accounts for, per customer (see meterctl.unbilled for
what becomes of the events in them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time

from meterctl import cycles
from meterctl.customers import CustomerVersion
from meterctl.cycles import month_bounds
from meterctl.meters import Meter
from meterctl.rating.plan import Job
from meterctl.store.ports import MonthQuery, MonthWindow


def event_names(meters: Sequence[Meter]) -> tuple[str, ...]:
    """Every event name a meter reads (stop events included)."""
    return tuple(sorted({m.event_name for m in meters} | {m.stop_event for m in meters if m.stop_event}))


def month_query(period: str, jobs: Sequence[Job], customers: Sequence[CustomerVersion], chosen: Sequence[str] | None,
                meters: Sequence[Meter], ignored: Sequence[str], *, unplanned: Iterable[str] = (),
                late_after: dict[tuple[str, date], int] | None = None) -> MonthQuery:
    """What a month accounts for: each job's segment (events ingested after `late_after` of
    its customer × period are late), the customers' uncovered stretches of their calendar
    month, the covered ones of customers that could not be planned (`unplanned`), and, with
    no customer chosen, the UTC month of customer ids never imported."""
    month_start, month_end = month_bounds(period)
    wanted = set(chosen) if chosen else None
    late_after = late_after or {}
    windows = [MonthWindow(job.customer.customer_id, job.start_at, job.end_at, True,
                           late_after.get((job.customer.customer_id, job.segment.period.start)))
               for job in jobs]
    set_aside = set(unplanned)
    for customer in customers:
        if wanted and customer.customer_id not in wanted:
            continue
        uncovered, covered = _coverage(customer, month_start, month_end)
        windows += [MonthWindow(customer.customer_id, start, end, False) for start, end in uncovered]
        if customer.customer_id in set_aside:
            windows += [MonthWindow(customer.customer_id, start, end, True) for start, end in covered]
    utc_start, utc_end = (datetime.combine(day, time(), UTC) for day in (month_start, month_end))
    known = None if chosen else tuple(c.customer_id for c in customers)
    return MonthQuery(utc_start, utc_end, tuple(windows), known, tuple(meters), tuple(ignored))


Stretch = tuple[datetime, datetime]


def _coverage(customer: CustomerVersion, month_start: date, month_end: date) -> tuple[list[Stretch], list[Stretch]]:
    """The stretches of the customer's calendar month (local midnights) that no subscription
    covers, and those that one does."""
    tz = cycles.zone(customer.timezone)
    start_at, end_at = (datetime.combine(day, time(), tz).astimezone(UTC) for day in (month_start, month_end))
    subscribed = sorted(
        (max(datetime.combine(sub.start, time(), tz).astimezone(UTC), start_at),
         min(datetime.combine(sub.end, time(), tz).astimezone(UTC), end_at) if sub.end else end_at)
        for sub in customer.subscriptions)
    uncovered: list[Stretch] = []
    covered: list[Stretch] = []
    cursor = start_at
    for start, end in subscribed:
        if end <= start or end <= cursor:
            continue
        if start > cursor:
            uncovered.append((cursor, start))
            cursor = start
        covered.append((cursor, end))
        cursor = end
    if cursor < end_at:
        uncovered.append((cursor, end_at))
    return uncovered, covered
