"""Usage: what the event store aggregates per customer × meter × window (× dimension values),
and the query that asks it.

Windows are half-open [start, end) in a time zone: `hour` windows follow the local clock
(an hour of a +05:30 zone starts at :30 UTC; the repeated hour of a DST fall-back is two
windows, one per offset), `day` and `month` windows start at local midnight, DST days
included. `period` windows are given: each customer's billing periods, split where the plan
changes. How usage is computed from events, and the rules for durations, are in metering.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from meterctl.meters import Meter

WINDOWS: tuple[str, ...] = ("hour", "day", "month", "period")


class UsageRow(NamedTuple):
    """One customer × meter × window (× dimension values). A named tuple, not a frozen
    dataclass: a month of hourly usage is hundreds of thousands of rows, and a tuple is
    built several times faster."""

    customer_id: str
    meter: str
    window_start: datetime
    window_end: datetime
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
    last_event_at: datetime


@dataclass(frozen=True)
class UsageResult:
    window: str
    tz: str
    start: datetime
    end: datetime
    rows: tuple[UsageRow, ...]
    unmeterable: tuple[Unmeterable, ...]
    open_sessions: tuple[OpenSession, ...]


class BillingWindow(NamedTuple):
    """One customer's billing segment as a usage window: [start, end) in UTC."""

    customer_id: str
    start: datetime
    end: datetime


class UsageQuery(NamedTuple):
    """What to aggregate: the event store's side of `usage()`, checked already."""

    meters: tuple[Meter, ...]
    window: str  # hour | day | month | period
    start: datetime
    end: datetime
    tz: str
    customers: tuple[str, ...] | None
    periods: tuple[BillingWindow, ...] | None  # window "period": each customer's windows
    as_of_batch: int | None  # only events stored by this ingest batch


# A row as the event store aggregates it: (meter index in the query, customer_id, window
# start, window end, dimension values in the meter's group_by order, value, unmeterable
# events). Plain tuples: there can be hundreds of thousands.
AggregateRow = tuple[int, str, datetime, datetime, Sequence[str | None], Decimal | None, int]
# (meter index, customer_id, session, last event)
OpenSessionRow = tuple[int, str, str, datetime]
