"""Metered events of a month that no invoice will carry, so that none goes unbilled in silence:
events of customer ids that were never imported, and events at times none of their
customer's subscriptions covers (before it starts, after it ends, in a gap)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time

from meterctl import cycles
from meterctl.customers import CustomerVersion
from meterctl.cycles import month_bounds
from meterctl.meters import Meter
from meterctl.store.ports import UnbilledQuery
from meterctl.usage import BillingWindow


def event_names(meters: Sequence[Meter]) -> tuple[str, ...]:
    """Every event name a meter reads (stop events included)."""
    return tuple(sorted({m.event_name for m in meters} | {m.stop_event for m in meters if m.stop_event}))


def unbilled_query(period: str, meters: Sequence[Meter], customers: Sequence[CustomerVersion],
                   chosen: Sequence[str] | None) -> UnbilledQuery:
    """What to count for the month (in UTC): with `chosen` customers only their uncovered
    times (an unknown id is nobody's to report then); otherwise every imported customer's,
    and the events of ids that are not imported."""
    month_start, month_end = (datetime.combine(day, time(), UTC) for day in month_bounds(period))
    wanted = set(chosen) if chosen else None
    gaps: list[BillingWindow] = []
    for customer in customers:
        if wanted and customer.customer_id not in wanted:
            continue
        tz = cycles.zone(customer.timezone)
        covered = sorted(
            (datetime.combine(sub.start, time(), tz).astimezone(UTC),
             datetime.combine(sub.end, time(), tz).astimezone(UTC) if sub.end else month_end)
            for sub in customer.subscriptions)
        cursor = month_start
        for start, end in covered:
            if start > cursor:
                gaps.append(BillingWindow(customer.customer_id, cursor, min(start, month_end)))
            cursor = max(cursor, end)
            if cursor >= month_end:
                break
        if cursor < month_end:
            gaps.append(BillingWindow(customer.customer_id, cursor, month_end))
    known = None if chosen else tuple(c.customer_id for c in customers)
    return UnbilledQuery(month_start, month_end, event_names(meters), known,
                         tuple(g for g in gaps if g.start < g.end))
