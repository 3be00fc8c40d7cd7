"""Customers and their subscriptions as meterctl keeps them: a version per change, history kept.

Re-importing the same data changes nothing; a changed customer gets a new version, and
the old versions stay readable. Reading the files a CRM exports is customers_file's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from meterctl import cycles
from meterctl.errors import DataError, NotFoundError


@dataclass(frozen=True)
class ImportResult:
    source: str
    customers: int
    added: int
    changed: int
    unchanged: int
    # Stored customers this file does not mention: kept as they are (an export may be partial),
    # and billed while their subscriptions run; end a subscription with `end:` to stop billing.
    absent: tuple[str, ...] = ()
    # What rating would refuse in these subscriptions (see plan_problems), when the
    # configuration could tell: the customers are imported all the same.
    plan_notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeriodSegment:
    """One segment of a billing period: the part of it billed on one plan."""

    customer_id: str
    period_start: date
    period_end: date
    timezone: str
    plan: str
    segment_start: date
    segment_end: date
    segment_start_at: datetime
    segment_end_at: datetime
    days: int
    # A first calendar period that starts mid-month is part of a full one: fees are
    # prorated against the full period's days.
    period_days: int


@dataclass(frozen=True)
class BillingPeriods:
    customer_id: str
    cycle: str
    segments: tuple[PeriodSegment, ...]


@dataclass(frozen=True)
class CustomerRecord:
    """A customer as one version of it is kept: what an import compares and adds."""

    customer_id: str
    name: str
    currency: str
    timezone: str
    billing: str  # calendar | anniversary
    subscriptions: tuple[cycles.Subscription, ...]  # by start
    content_sha256: str  # of the canonical record: equal = unchanged
    # Overrides of the plans' features: {"tokens": {"limit": "5000000"}, "seats": {"value": 25}}
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Billing details, the keys given: email, address (lines), tax_id, payment_terms_days,
    # taxes (codes), tax_exempt, locale.
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerVersion:
    customer_id: str
    version: int
    name: str
    currency: str
    timezone: str
    billing: str  # calendar | anniversary
    subscriptions: tuple[cycles.Subscription, ...]  # by start
    source: str
    imported_at: datetime
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # overrides of the plans' features
    details: Mapping[str, Any] = field(default_factory=dict)  # billing details (see CustomerRecord)



def imported(latest: Sequence[CustomerVersion]) -> tuple[CustomerVersion, ...]:
    """The latest version of every customer; none at all is an error for anything that bills."""
    if not latest:
        raise DataError("no customers imported yet: run 'meterctl customers import FILE' first")
    return tuple(latest)


def history(versions: Sequence[CustomerVersion], customer_id: str) -> tuple[CustomerVersion, ...]:
    """Every version of a customer (as the ledger gives them, newest first); none is an error."""
    if not versions:
        raise NotFoundError(f"customer '{customer_id}' does not exist (see 'meterctl customers list')")
    return tuple(versions)


def select_customers(latest: Sequence[CustomerVersion], customer_ids: Sequence[str] | None) -> tuple[CustomerVersion, ...]:
    """The given customers among `latest` (all when none are given); unknown ids are an error."""
    if not customer_ids:
        return tuple(latest)
    wanted = set(customer_ids)
    missing = sorted(wanted - {c.customer_id for c in latest})
    if missing:
        raise NotFoundError(f"customer(s) {', '.join(missing)} do not exist (see 'meterctl customers list')")
    return tuple(c for c in latest if c.customer_id in wanted)


def billing_segments(
    customers: Sequence[CustomerVersion],
    *,
    cycle: cycles.Cycle | Callable[[CustomerVersion], cycles.Cycle],
    start: date,
    end: date,
) -> tuple[tuple[str, cycles.Segment], ...]:
    """(customer_id, segment) of every billing period overlapping local dates [start, end),
    from each customer's time zone, billing alignment and subscriptions. The cycle is given,
    or a function of the customer (the billing cycle of its plans' pricebooks)."""
    found = []
    for customer in customers:
        for segment in cycles.periods_for_customer(
            subscriptions=customer.subscriptions, cycle=cycle if isinstance(cycle, cycles.Cycle) else cycle(customer),
            alignment=customer.billing, tz=customer.timezone, start=start, end=end,
        ):
            found.append((customer.customer_id, segment))
    return tuple(found)
