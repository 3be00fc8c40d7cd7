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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from meterctl.credits import exact
from meterctl.customers import CustomerVersion, billing_segments
from meterctl.cycles import calendar_window
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
    if reset in ("day", "week", "month"):
        start, end = calendar_window(reset, day)
        return _midnight(start, zone), _midnight(end, zone)
    if reset == "period":
        found = billing_segments([customer], cycle=customer_cycle(customer, catalog), start=day,
                                 end=day + timedelta(days=1))
        period = found[0][1].period
        return _midnight(period.start, zone), _midnight(period.end, zone)
    first = min(s.start for s in customer.subscriptions)
    return _midnight(first, zone), None


def for_customer(feature: Feature, customer: CustomerVersion) -> Feature:
    """The feature on the customer's own terms: the customers file may override its limit
    (null: unlimited), its value or whether the limit is soft. An override never entitles
    to a feature the plan lacks."""
    given = customer.features.get(feature.key)
    if not given:
        return feature
    update: dict[str, Any] = {}
    if "limit" in given:
        update["limit"] = None if given["limit"] is None else Decimal(str(given["limit"]))
    if "value" in given:
        update["value"] = given["value"]
    if "soft" in given:
        update["soft"] = bool(given["soft"])
    return feature.model_copy(update=update)


def _plan_in_force(customer: CustomerVersion, catalog: Catalog, at: datetime) -> tuple[Any, str | None]:
    """(pricebook version in force for the customer at `at`, or None with why not)."""
    day = at.astimezone(ZoneInfo(customer.timezone)).date()
    running = [s for s in customer.subscriptions if s.start <= day and (s.end is None or day < s.end)]
    if not running:
        return None, f"no subscription in force on {day} ({customer.timezone})"
    plan = max(running, key=lambda s: s.start).plan
    book = catalog.in_force(plan, day)
    if book is None:
        return None, f"plan '{plan}' has no pricebook version in force on {day}"
    return book, None


@exact
def check(events: Any, catalog: Catalog, meters: dict[str, Meter], customer: CustomerVersion | None,
          customer_id: str, key: str, at: datetime, quantity: Decimal | None = None) -> CheckAnswer:
    """The answer for `customer_id` using feature `key` at `at` (with `quantity` more)."""
    if customer is None:
        return _denied(customer_id, key, f"no customer '{customer_id}'")
    book, why = _plan_in_force(customer, catalog, at)
    if book is None:
        return _denied(customer_id, key, why or "")
    feature = next((for_customer(f, customer) for f in book.book.features if f.key == key), None)
    if feature is None:
        listed = ", ".join(f.key for f in book.book.features) or "none"
        return CheckAnswer(customer_id, key, False, f"{book.ref} does not include feature '{key}' (it includes: {listed})",
                           pricebook=book.ref)
    if feature.kind != "metered":
        return _answer(customer, feature, book.ref, None, None, quantity)
    start, end = reset_window(feature.reset, at, customer, catalog)
    used = Decimal(0)
    if start < at:
        meter = meters[feature.meter or ""].model_copy(update={"group_by": ()})  # the whole meter, all dimensions
        found = usage(events, [meter], window="period", start=start, end=at, tz=customer.timezone,
                      customers=[customer.customer_id], periods=[BillingWindow(customer.customer_id, start, at)])
        used = sum((row.value for row in found.rows if row.value is not None), Decimal(0))
    return _answer(customer, feature, book.ref, used, (start, end), quantity)


def _answer(customer: CustomerVersion, feature: Feature, ref: str, used: Decimal | None,
            window: tuple[datetime, datetime | None] | None, quantity: Decimal | None) -> CheckAnswer:
    """The answer for a feature the plan includes (a metered one with its usage so far)."""
    cid = customer.customer_id
    if feature.kind == "boolean":
        return CheckAnswer(cid, feature.key, True, f"included in {ref}", "boolean", pricebook=ref)
    if feature.kind == "static":
        return CheckAnswer(cid, feature.key, True, f"included in {ref}", "static", feature.value, pricebook=ref)
    used = used if used is not None else Decimal(0)
    asked = quantity if quantity is not None else Decimal(0)
    common: dict[str, Any] = {"kind": "metered", "usage": used, "limit": feature.limit, "soft": feature.soft,
                              "window": window, "pricebook": ref}
    if feature.limit is None:
        return CheckAnswer(cid, feature.key, True, "unlimited", **common)
    limit = feature.limit
    over = used + asked > limit if quantity is not None else used >= limit
    remaining = max(limit - used, Decimal(0))
    if not over:
        return CheckAnswer(cid, feature.key, True, "within the limit", remaining=remaining, **common)
    if feature.soft:
        return CheckAnswer(cid, feature.key, True, "soft limit exceeded (allowed)", remaining=remaining, **common)
    return CheckAnswer(cid, feature.key, False, "limit reached" if quantity is None else
                       f"the quantity asked ({text(quantity)}) exceeds what remains ({text(remaining)})",
                       remaining=remaining, **common)


@dataclass(frozen=True)
class EntitlementState:
    """A customer × feature as a gateway needs it: the check answer, and where it stands."""

    answer: CheckAnswer
    state: str  # ok | warning | over_soft_limit | at_limit | not_entitled
    percent: Decimal | None  # usage as a percentage of the limit
    alert: Decimal | None  # the highest alert threshold crossed


def _state(answer: CheckAnswer, feature: Feature | None) -> EntitlementState:
    if feature is None or answer.kind is None:
        return EntitlementState(answer, "not_entitled", None, None)
    if answer.kind != "metered" or answer.limit is None or answer.usage is None:
        return EntitlementState(answer, "ok", None, None)
    limit, used = answer.limit, answer.usage
    percent = (used * 100 / limit).quantize(Decimal("0.01")) if limit else None
    crossed = [a for a in feature.alerts if used >= a * limit]
    alert = max(crossed) if crossed else None
    if used >= limit:
        state = "over_soft_limit" if feature.soft else "at_limit"
    else:
        state = "warning" if crossed else "ok"
    return EntitlementState(answer, state, percent, alert)


@exact
def states(events: Any, catalog: Catalog, meters: dict[str, Meter], customers: Sequence[CustomerVersion],
           at: datetime, keys: Sequence[str] | None = None) -> tuple[EntitlementState, ...]:
    """Every customer × feature of the plan in force at `at` (or the features `keys`, a
    customer whose plan lacks one being not entitled to it), with usage from one
    aggregation per meter over every customer's reset windows."""
    wanted: list[tuple[CustomerVersion, Feature | None, str, str | None, tuple[datetime, datetime | None] | None]] = []
    for customer in customers:
        book, why = _plan_in_force(customer, catalog, at)
        features = tuple(for_customer(f, customer) for f in book.book.features) if book is not None else ()
        chosen = [f for f in features if keys is None or f.key in keys]
        for asked in keys or ():
            if not any(f.key == asked for f in features):
                reason = why or f"{book.ref} does not include feature '{asked}'"
                wanted.append((customer, None, asked, reason, None))
        for feature in chosen:
            window = reset_window(feature.reset, at, customer, catalog) if feature.kind == "metered" else None
            wanted.append((customer, feature, book.ref, None, window))
    # One aggregation per meter, over the windows of every customer that counts it.
    used: dict[tuple[str, str, datetime], Decimal] = {}
    by_meter: dict[str, set[tuple[str, datetime]]] = {}
    for customer, listed, _, _, window in wanted:
        if listed is not None and listed.meter is not None and window is not None and window[0] < at:
            by_meter.setdefault(listed.meter, set()).add((customer.customer_id, window[0]))
    for name, windows in sorted(by_meter.items()):
        meter = meters[name].model_copy(update={"group_by": ()})
        periods = [BillingWindow(cid, start, at) for cid, start in sorted(windows)]
        found = usage(events, [meter], window="period", start=min(p.start for p in periods), end=at,
                      customers=sorted({cid for cid, _ in windows}), periods=periods)
        for row in found.rows:
            if row.value is not None:
                counted = (name, row.customer_id, row.window_start)
                used[counted] = used.get(counted, Decimal(0)) + row.value
    found_states = []
    for customer, listed, ref_or_key, why_not, window in wanted:
        if listed is None:
            found_states.append(_state(_denied(customer.customer_id, ref_or_key, why_not or ""), None))
            continue
        value = used.get((listed.meter or "", customer.customer_id, window[0]), Decimal(0)) if window else None
        found_states.append(_state(_answer(customer, listed, ref_or_key, value, window, None), listed))
    return tuple(found_states)
