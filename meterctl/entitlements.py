"""Entitlements: may a customer use a feature, and how much more of it (`meterctl check`).

The plan in force at the instant asked (the customer's subscription that day, in its time
zone, and the plan's pricebook version in force then) decides. A boolean feature is
allowed when the plan lists it; a static one answers with its value; a metered one counts
the meter's value over the customer's events with timestamps in the reset window that
holds the instant, up to it (events at or after it do not count):

- day, week (from Monday) and month windows start at local midnight; `period` is the
  customer's billing period (calendar or anniversary); `never` counts from the customer's
  first subscription;
- allowed while usage < limit, or usage + quantity <= limit when a quantity is asked;
  `limit: null` is unlimited; a soft limit always allows, and says when it is exceeded.

Anything that cannot be answered (an unknown customer, no subscription then, a feature the
plan lacks) is denied, with the reason: an API that gates on it fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from meterctl.credits import exact
from meterctl.customers import CustomerVersion, billing_segments
from meterctl.metering import usage
from meterctl.meters import Meter
from meterctl.pricebook import Catalog
from meterctl.pricebook.models import Feature
from meterctl.pricing import text
from meterctl.usage import BillingWindow


@dataclass(frozen=True)
class CheckAnswer:
    customer_id: str
    feature: str
    allowed: bool
    reason: str
    kind: str | None = None  # boolean | static | metered (None: no such feature for the customer)
    value: Any = None  # a static feature's value
    usage: Decimal | None = None
    limit: Decimal | None = None  # None: unlimited (metered) or not metered
    remaining: Decimal | None = None
    soft: bool = False
    window: tuple[datetime, datetime | None] | None = None  # [start, end) of the reset window
    pricebook: str | None = None  # plan@version that entitles


def _denied(customer_id: str, feature: str, reason: str) -> CheckAnswer:
    return CheckAnswer(customer_id, feature, False, reason)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight as a UTC instant (so that a window's length is the time that passes)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def reset_window(reset: str, at: datetime, customer: CustomerVersion, catalog: Catalog) -> tuple[datetime, datetime | None]:
    """The reset window [start, end) that holds `at`, in the customer's time zone."""
    from meterctl.rating.plan import customer_cycle

    zone = ZoneInfo(customer.timezone)
    day = at.astimezone(zone).date()
    if reset == "day":
        return _midnight(day, zone), _midnight(day + timedelta(days=1), zone)
    if reset == "week":
        monday = day - timedelta(days=day.weekday())
        return _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone)
    if reset == "month":
        first = day.replace(day=1)
        return _midnight(first, zone), _midnight((first + timedelta(days=32)).replace(day=1), zone)
    if reset == "period":
        found = billing_segments([customer], cycle=customer_cycle(customer, catalog), start=day,
                                 end=day + timedelta(days=1))
        period = found[0][1].period
        return _midnight(period.start, zone), _midnight(period.end, zone)
    first = min(s.start for s in customer.subscriptions)
    return _midnight(first, zone), None


@exact
def check(events: Any, catalog: Catalog, meters: dict[str, Meter], customer: CustomerVersion | None,
          customer_id: str, key: str, at: datetime, quantity: Decimal | None = None) -> CheckAnswer:
    """The answer for `customer_id` using feature `key` at `at` (with `quantity` more)."""
    if customer is None:
        return _denied(customer_id, key, f"no customer '{customer_id}'")
    zone = ZoneInfo(customer.timezone)
    day = at.astimezone(zone).date()
    running = [s for s in customer.subscriptions if s.start <= day and (s.end is None or day < s.end)]
    if not running:
        return _denied(customer_id, key, f"no subscription in force on {day} ({customer.timezone})")
    plan = max(running, key=lambda s: s.start).plan
    book = catalog.in_force(plan, day)
    if book is None:
        return _denied(customer_id, key, f"plan '{plan}' has no pricebook version in force on {day}")
    feature = next((f for f in book.book.features if f.key == key), None)
    if feature is None:
        listed = ", ".join(f.key for f in book.book.features) or "none"
        return CheckAnswer(customer_id, key, False, f"{book.ref} does not include feature '{key}' (it includes: {listed})",
                           pricebook=book.ref)
    if feature.kind == "boolean":
        return CheckAnswer(customer_id, key, True, f"included in {book.ref}", "boolean", pricebook=book.ref)
    if feature.kind == "static":
        return CheckAnswer(customer_id, key, True, f"included in {book.ref}", "static", feature.value,
                           pricebook=book.ref)
    return _metered(events, catalog, meters, customer, feature, book.ref, at, quantity)


def _metered(events: Any, catalog: Catalog, meters: dict[str, Meter], customer: CustomerVersion, feature: Feature,
             ref: str, at: datetime, quantity: Decimal | None) -> CheckAnswer:
    start, end = reset_window(feature.reset, at, customer, catalog)
    used = Decimal(0)
    if start < at:
        meter = meters[feature.meter or ""].model_copy(update={"group_by": ()})  # the whole meter, all dimensions
        found = usage(events, [meter], window="period", start=start, end=at, tz=customer.timezone,
                      customers=[customer.customer_id], periods=[BillingWindow(customer.customer_id, start, at)])
        used = sum((row.value for row in found.rows if row.value is not None), Decimal(0))
    asked = quantity if quantity is not None else Decimal(0)
    common: dict[str, Any] = {"kind": "metered", "usage": used, "limit": feature.limit, "soft": feature.soft,
                              "window": (start, end), "pricebook": ref}
    if feature.limit is None:
        return CheckAnswer(customer.customer_id, feature.key, True, "unlimited", **common)
    limit = feature.limit
    over = used + asked > limit if quantity is not None else used >= limit
    remaining = max(limit - used, Decimal(0))
    if not over:
        return CheckAnswer(customer.customer_id, feature.key, True, "within the limit", remaining=remaining, **common)
    if feature.soft:
        return CheckAnswer(customer.customer_id, feature.key, True, "soft limit exceeded (allowed)", remaining=remaining,
                           **common)
    return CheckAnswer(customer.customer_id, feature.key, False, "limit reached" if quantity is None else
                       f"the quantity asked ({text(quantity)}) exceeds what remains ({text(remaining)})",
                       remaining=remaining, **common)
