"""Billing periods: cycles, alignment, anchors, month-end clamping and plan-change segments.

Pure calendar arithmetic on local dates; no database. A period is a half-open range of
local calendar dates ``[start, end)`` in the customer's time zone; its instants
(``start_at``/``end_at``) are local midnights converted to UTC, so a period that spans a
DST change is not a whole number of 24-hour days long.

Alignment:

- ``calendar``: periods begin on the 1st of a month (quarterly: Jan/Apr/Jul/Oct; yearly:
  Jan 1). A subscription that starts between two boundaries gets a partial first period
  ``[anchor, next boundary)``.
- ``anniversary``: periods begin every N months after the anchor (the subscription start),
  on the anchor's day of the month, clamped to the month end. Each boundary is computed from
  the anchor, never from the previous clamped date: Jan 31 → Feb 28/29 → Mar 31 → Apr 30.

No period starts before the anchor. A plan change does not move the anchor; it splits the
period it falls in into segments, one per plan, each with the fraction of the period's days
it covers (for proration).
"""

from __future__ import annotations

import calendar
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterctl.errors import ConfigError, Param, UsageError

__all__ = [
    "Alignment",
    "Cycle",
    "Period",
    "Segment",
    "Subscription",
    "billing_periods",
    "parse_period_month",
    "period_containing",
    "periods_for_customer",
    "segments",
    "zone",
]

# Segment fractions are rounded to this many decimal places (see Segment.fraction).
FRACTION_PLACES = 20


class Cycle(StrEnum):
    """How long a billing period is."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return _CYCLE_MONTHS[self]


_CYCLE_MONTHS = {Cycle.MONTHLY: 1, Cycle.QUARTERLY: 3, Cycle.YEARLY: 12}


def cycle_named(given: Cycle | str, name: str = "cycle") -> Cycle:
    """A billing cycle from its name; another name is the caller's error on parameter `name`."""
    try:
        return Cycle(given)
    except ValueError:
        raise UsageError(Param(name), f" must be monthly, quarterly or yearly, not '{given}'") from None


class Alignment(StrEnum):
    """Where billing periods begin: calendar month starts, or the subscription's anniversary."""

    CALENDAR = "calendar"
    ANNIVERSARY = "anniversary"


def zone(tz: str) -> ZoneInfo:
    """The IANA time zone `tz`; an unknown name is a configuration error that names it."""
    if not isinstance(tz, str) or not tz:
        raise ConfigError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone '{tz}' (use an IANA name such as Europe/Paris)") from None


def _local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of local date `day`, in UTC.

    `fold=0` gives the earlier of two repeated midnights, and a midnight that falls in a
    DST gap maps to the transition instant, which is the first instant of that local day.
    """
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _check_date(name: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a date (a local calendar day), not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Period:
    """One billing period: local dates ``[start, end)`` in time zone `tz`."""

    start: date
    end: date
    tz: str

    def __post_init__(self) -> None:
        _check_date("start", self.start)
        _check_date("end", self.end)
        if self.start >= self.end:
            raise ValueError(f"a period must end after it starts: [{self.start}, {self.end})")
        zone(self.tz)

    @property
    def start_at(self) -> datetime:
        """Local midnight at `start`, as an aware UTC datetime."""
        return _local_midnight_utc(self.start, zone(self.tz))

    @property
    def end_at(self) -> datetime:
        """Local midnight at `end` (exclusive), as an aware UTC datetime."""
        return _local_midnight_utc(self.end, zone(self.tz))

    @property
    def days(self) -> int:
        """Number of local calendar days in the period."""
        return (self.end - self.start).days

    @property
    def duration(self) -> timedelta:
        """Elapsed time from `start_at` to `end_at` (not a whole number of days across DST)."""
        return self.end_at - self.start_at

    def contains(self, at: date | datetime) -> bool:
        """Whether a local date, or an aware instant, falls inside the period."""
        if isinstance(at, datetime):
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError("an instant must be timezone-aware")
            return self.start_at <= at < self.end_at
        return self.start <= at < self.end

    def __str__(self) -> str:
        return f"[{self.start}, {self.end}) {self.tz}"


class SubscriptionLike(Protocol):
    @property
    def plan(self) -> str: ...
    @property
    def start(self) -> date: ...
    @property
    def end(self) -> date | None: ...


@dataclass(frozen=True)
class Subscription:
    """A plan from local date `start` until `end` (exclusive), or open-ended."""

    plan: str
    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.plan, str) or not self.plan:
            raise ValueError("a subscription needs a plan name")
        _check_date("start", self.start)
        if self.end is not None:
            _check_date("end", self.end)
            if self.end <= self.start:
                raise ValueError(f"subscription to {self.plan} must end after it starts: [{self.start}, {self.end})")


@dataclass(frozen=True)
class Segment:
    """The part ``[start, end)`` of a period that is billed on one plan."""

    period: Period
    plan: str
    start: date
    end: date

    def __post_init__(self) -> None:
        _check_date("start", self.start)
        _check_date("end", self.end)
        if not (self.period.start <= self.start < self.end <= self.period.end):
            raise ValueError(f"segment [{self.start}, {self.end}) is not a non-empty part of period {self.period}")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def full(self) -> bool:
        """Whether the segment covers its whole period."""
        return self.start == self.period.start and self.end == self.period.end

    @property
    def start_at(self) -> datetime:
        return _local_midnight_utc(self.start, zone(self.period.tz))

    @property
    def end_at(self) -> datetime:
        return _local_midnight_utc(self.end, zone(self.period.tz))

    @property
    def fraction(self) -> Decimal:
        """Segment days / period days, as a Decimal with at most 20 decimal places.

        Computed as the difference of the rounded cumulative positions of the segment's ends
        within the period (``round(end offset / days) - round(start offset / days)``), so
        the fractions of segments that tile a period sum to exactly 1, and a whole period is
        exactly 1. Exact when the ratio terminates within 20 places (1/2, 1/4, 3/5...);
        otherwise within 1e-20 of ``days / period.days``. For exact proration use
        ``days`` and ``period.days``.
        """
        first = (self.start - self.period.start).days
        last = (self.end - self.period.start).days
        total = self.period.days
        return (_rounded_ratio(last, total) - _rounded_ratio(first, total)).normalize()


def _rounded_ratio(numerator: int, denominator: int) -> Decimal:
    """numerator/denominator rounded half-even to FRACTION_PLACES, exactly (integer arithmetic)."""
    scaled, remainder = divmod(numerator * 10**FRACTION_PLACES, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and scaled % 2):
        scaled += 1
    return Decimal(f"{scaled}E-{FRACTION_PLACES}")


# ---------------------------------------------------------------- period boundaries


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _date_in_month(index: int, day: int) -> date:
    """Day `day` of month `index` (year*12 + month-1), clamped to the month's last day."""
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError("billing periods cannot extend past the year 9999")
    if day > 28:  # clamp to the month's last day (monthrange() also works out the weekday: slower)
        day = min(day, _MONTH_DAYS[month0] + (month0 == 1 and calendar.isleap(year)))
    return date(year, month0 + 1, day)


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's last day (Jan 31 + 1 = Feb 28/29)."""
    return _date_in_month(_month_index(day) + months, day.day)


def calendar_window(per: str, day: date) -> tuple[date, date]:
    """The local day, week (from Monday) or month holding `day`, as dates [start, end)."""
    if per == "day":
        return day, day + timedelta(days=1)
    if per == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if per == "month":
        first = day.replace(day=1)
        return first, add_months(first, 1)
    raise ValueError(f"unknown window {per!r} (day, week or month)")


class _Boundaries:
    """Period boundaries b(k), increasing in k, with b(0) <= anchor < b(1)."""

    def __init__(self, cycle: Cycle, alignment: Alignment, anchor: date) -> None:
        self.months = cycle.months
        self.alignment = alignment
        self.anchor = anchor
        if alignment is Alignment.ANNIVERSARY:
            self.base = _month_index(anchor)
        else:
            self.base = _month_index(anchor) - _month_index(anchor) % self.months

    def __call__(self, k: int) -> date:
        index = self.base + k * self.months
        if self.alignment is Alignment.ANNIVERSARY:
            # Always from the anchor's day, so a clamped Feb 28 goes back to Mar 31.
            return _date_in_month(index, self.anchor.day)
        return _date_in_month(index, 1)

    def index_of(self, day: date) -> int:
        """The k with b(k) <= day < b(k+1), for day >= anchor."""
        k = (_month_index(day) - self.base) // self.months
        while self(k) > day:
            k -= 1
        while self(k + 1) <= day:
            k += 1
        return k


def _coerce(cycle: Cycle | str, alignment: Alignment | str) -> tuple[Cycle, Alignment]:
    try:
        cycle = Cycle(cycle)
    except ValueError:
        raise ValueError(f"unknown billing cycle {cycle!r} (use monthly, quarterly or yearly)") from None
    try:
        alignment = Alignment(alignment)
    except ValueError:
        raise ValueError(f"unknown billing alignment {alignment!r} (use calendar or anniversary)") from None
    return cycle, alignment


def _check_range(start: date, end: date) -> None:
    _check_date("start", start)
    _check_date("end", end)
    if start >= end:
        raise ValueError(f"the range must end after it starts: [{start}, {end})")


def _iter_periods(boundaries: _Boundaries, tz: str, start: date, end: date) -> Iterator[Period]:
    anchor = boundaries.anchor
    day = max(start, anchor)
    if day >= end:
        return
    k = boundaries.index_of(day)
    while True:
        period_start = max(boundaries(k), anchor)
        if period_start >= end:
            return
        yield Period(period_start, boundaries(k + 1), tz)
        k += 1


def billing_periods(
    *,
    cycle: Cycle | str,
    alignment: Alignment | str,
    anchor: date,
    tz: str,
    start: date,
    end: date,
) -> tuple[Period, ...]:
    """Every billing period that overlaps local dates ``[start, end)``, in order.

    Periods are returned whole (the first may begin before `start`, the last may end after
    `end`), they tile time with no gap or overlap, and none begins before `anchor` (the
    subscription start): with calendar alignment the first period is ``[anchor, next
    boundary)``. A range that ends on or before the anchor has no periods.
    """
    cycle, alignment = _coerce(cycle, alignment)
    zone(tz)
    _check_date("anchor", anchor)
    _check_range(start, end)
    return tuple(_iter_periods(_Boundaries(cycle, alignment, anchor), tz, start, end))


def period_containing(
    *,
    cycle: Cycle | str,
    alignment: Alignment | str,
    anchor: date,
    tz: str,
    at: date | datetime,
) -> Period:
    """The billing period that contains a local date, or an aware instant (read in `tz`).

    A day before the anchor belongs to no period: ValueError.
    """
    cycle, alignment = _coerce(cycle, alignment)
    tzinfo = zone(tz)
    _check_date("anchor", anchor)
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("an instant must be timezone-aware")
        day = at.astimezone(tzinfo).date()
    else:
        day = _check_date("at", at)
    if day < anchor:
        raise ValueError(f"{day} is before the billing anchor {anchor}: it belongs to no billing period")
    boundaries = _Boundaries(cycle, alignment, anchor)
    k = boundaries.index_of(day)
    return Period(max(boundaries(k), anchor), boundaries(k + 1), tz)


# ---------------------------------------------------------------- plan changes


def _plan_spans(subscriptions: Iterable[SubscriptionLike]) -> list[tuple[str, date, date | None]]:
    """(plan, start, end) per subscription: each runs until the next one starts or it ends."""
    ordered = sorted(subscriptions, key=lambda s: s.start)
    for before, after in itertools.pairwise(ordered):
        if before.start == after.start:
            raise ValueError(f"two subscriptions start on {after.start}: {before.plan} and {after.plan}")
    spans = []
    for i, sub in enumerate(ordered):
        _check_date("subscription start", sub.start)
        stop = sub.end
        if i + 1 < len(ordered):
            following = ordered[i + 1].start
            stop = following if stop is None else min(stop, following)
        if stop is not None and stop <= sub.start:
            raise ValueError(f"subscription to {sub.plan} must end after it starts: [{sub.start}, {stop})")
        spans.append((sub.plan, sub.start, stop))
    return spans


def _segments(period: Period, spans: list[tuple[str, date, date | None]]) -> tuple[Segment, ...]:
    pieces: list[tuple[str, date, date]] = []
    for plan, sub_start, sub_end in spans:
        lo = max(period.start, sub_start)
        hi = period.end if sub_end is None else min(period.end, sub_end)
        if lo >= hi:
            continue
        if pieces and pieces[-1][0] == plan and pieces[-1][2] == lo:
            # Back-to-back subscriptions to the same plan are not a plan change.
            pieces[-1] = (plan, pieces[-1][1], hi)
        else:
            pieces.append((plan, lo, hi))
    return tuple(Segment(period, plan, lo, hi) for plan, lo, hi in pieces)


def segments(period: Period, subscriptions: Iterable[SubscriptionLike]) -> tuple[Segment, ...]:
    """Split `period` at plan changes: one segment per plan in force, in order.

    A subscription runs from its start until the next subscription's start or its own end,
    whichever comes first. Days with no subscription produce no segment; back-to-back
    subscriptions to the same plan make one segment. Accepts any objects with `plan`,
    `start` and `end` (e.g. the customers module's subscription models).
    """
    return _segments(period, _plan_spans(subscriptions))


def periods_for_customer(
    *,
    subscriptions: Iterable[SubscriptionLike],
    cycle: Cycle | str,
    alignment: Alignment | str,
    tz: str,
    start: date,
    end: date,
) -> tuple[Segment, ...]:
    """The segments of every billing period overlapping local dates ``[start, end)``.

    Periods are anchored on the earliest subscription start; a plan change does not
    re-anchor, it splits the period it falls in. Periods (and their segments) are whole:
    they are not clipped to ``[start, end)``. A period with no subscription on any day
    contributes nothing.
    """
    cycle, alignment = _coerce(cycle, alignment)
    zone(tz)
    _check_range(start, end)
    spans = _plan_spans(subscriptions)
    if not spans:
        raise ValueError("a customer needs at least one subscription to have billing periods")
    boundaries = _Boundaries(cycle, alignment, spans[0][1])
    last_stop = spans[-1][2]
    if last_stop is not None:
        end = min(end, last_stop)  # nothing to bill after the last subscription ends
        if start >= end:
            return ()
    result: list[Segment] = []
    for period in _iter_periods(boundaries, tz, start, end):
        result.extend(_segments(period, spans))
    return tuple(result)


# ---------------------------------------------------------------- parsing

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def parse_period_month(text: str) -> tuple[date, date]:
    """``"2026-10"`` → ``(date(2026, 10, 1), date(2026, 11, 1))``: a calendar month, half-open.

    Exactly YYYY-MM, without surrounding space: the text is kept as the month of a rating
    run, and invoice numbers take their year from it."""
    match = _MONTH.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid month {text!r}: expected YYYY-MM, e.g. 2026-10")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise ValueError(f"invalid month {text!r}: month must be 01 to 12")
    # A period ending in the month may have begun a year before it, and the month after it
    # must exist: years 2 to 9999, but for 9999-12.
    if not 2 <= year <= 9999 or (year, month) == (9999, 12):
        raise ValueError(f"invalid month {text!r}: year out of range")
    start = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1)
    return start, end


def month_bounds(period: str) -> tuple[date, date]:
    """The bounds of the month a command works on (its billing periods end in it); a
    malformed one is the caller's error on that parameter."""
    try:
        return parse_period_month(period)
    except ValueError as error:
        raise UsageError(Param("period"), f": {error}") from None
