"""Every event of a month accounted for: the stretches of time a month covers per customer,
and the events no invoice will carry, by reason.

A month accounts for every stored event with a timestamp in the billing periods that end in
it (per customer, in the customer's time zone); for the time no subscription covers, the
customer's calendar month; for a customer id that was never imported, the UTC month. Each
such event has exactly one fate, the first of these that applies (EVENT_FATES):

- `ignored`: its event name is in meters.yaml's `ignore_events` (billed by nobody, on purpose);
- `no_meter`: no meter selects it (its event name, or its properties fail every filter);
- `unknown_customer`: its customer id was never imported;
- `outside_subscription`: no subscription of its customer covers its time;
- `unmeterable`: a meter that selects it cannot read its value (missing, or not a number);
- billable: on the lines of its period (reconciliation says whether they are invoiced).

Everything but `ignored` is revenue that no invoice carries: `--strict` makes it an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from meterctl.errors import DataError
from meterctl.pricing import text
from meterctl.store.ports import EVENT_FATES, MonthTally

# The reasons an event is not billed, in the order they are checked and shown.
REASONS = tuple(fate for fate in EVENT_FATES if fate != "billable")
# Customers named per reason: enough to start looking, short enough for a cron mail.
SHOWN_CUSTOMERS = 5

# What a user does about each reason.
REMEDY = {
    "ignored": "declared in meters.yaml ignore_events",
    "no_meter": "add a meter for them to meters.yaml, or list their names in ignore_events",
    "unknown_customer": "import these customers ('meterctl customers import')",
    "outside_subscription": "correct the customers' subscriptions ('meterctl customers show ID')",
    "unmeterable": "the meter cannot read their value: fix the sender (see 'meterctl explain')",
}


@dataclass(frozen=True)
class UnbilledReason:
    events: int = 0
    quantity: Decimal = Decimal(0)  # Σ of the events' own quantity (0 where they carry none)
    customers: tuple[str, ...] = ()  # the first few customer ids, in order
    customer_count: int = 0
    first_event_id: str | None = None  # the earliest event (by time, then id)
    first_at: datetime | None = None

    def document(self) -> dict[str, object]:
        return {"events": self.events, "quantity": text(self.quantity), "customers": list(self.customers),
                "customer_count": self.customer_count, "first_event_id": self.first_event_id}


@dataclass(frozen=True)
class Unbilled:
    """The events of a month no invoice carries, by reason (every reason, zero or not)."""

    period: str
    reasons: dict[str, UnbilledReason] = field(default_factory=dict)

    def __getitem__(self, reason: str) -> UnbilledReason:
        return self.reasons.get(reason, UnbilledReason())

    def any(self) -> bool:
        return any(found.events for found in self.reasons.values())

    @property
    def lost(self) -> int:
        """Events unbilled for a reason other than `ignored`: revenue no invoice carries."""
        return sum(self[reason].events for reason in REASONS if reason != "ignored")

    def document(self) -> dict[str, dict[str, object]]:
        return {reason: self[reason].document() for reason in REASONS}

    def refusal(self) -> DataError | None:
        """For `--strict`: events no invoice carries (other than ignored ones) are exit 65."""
        if not self.lost:
            return None
        found = "; ".join(f"{self[r].events} {r}" for r in REASONS if r != "ignored" and self[r].events)
        return DataError(f"{self.lost} event(s) in {self.period} are not billed ({found}); "
                         f"see 'meterctl reconcile --period {self.period}'")


def summarize(period: str, tallies: Iterable[MonthTally]) -> Unbilled:
    """The unbilled events of a month's tallies, by reason."""
    events: dict[str, int] = {}
    quantity: dict[str, Decimal] = {}
    customers: dict[str, set[str]] = {}
    first: dict[str, tuple[datetime, str]] = {}
    for tally in tallies:
        if tally.fate == "billable":
            continue
        reason = tally.fate
        events[reason] = events.get(reason, 0) + tally.events
        quantity[reason] = quantity.get(reason, Decimal(0)) + tally.quantity
        customers.setdefault(reason, set()).add(tally.customer_id)
        if tally.first_at is not None and tally.first_event_id is not None:
            earliest = (tally.first_at, tally.first_event_id)
            if reason not in first or earliest < first[reason]:
                first[reason] = earliest
    return Unbilled(period, {
        reason: UnbilledReason(events[reason], quantity[reason], tuple(sorted(customers[reason])[:SHOWN_CUSTOMERS]),
                               len(customers[reason]), first[reason][1] if reason in first else None,
                               first[reason][0] if reason in first else None)
        for reason in REASONS if reason in events})
