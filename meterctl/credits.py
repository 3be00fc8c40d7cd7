"""Prepaid credits: grants, the wallet ledger, and how credits pay an invoice's lines.

The semantics of DESIGN.md "Credits", as pure functions over typed values:

- A grant adds money to a customer's wallet, in the customer's currency: an `amount`, or
  `credits` × `rate` (money per credit), exact. It is eligible for an invoice of the period
  [start, end) when effective < end, not voided before end, expiring at or after end (or
  never), in the invoice's currency.
- Burn order: priority (lower first; none after every set one), then the earliest expiry
  (none last), then the earliest effective, then the order grants were made.
- Lines are paid in line order, each from the grants in burn order, in whole minor units:
  what a grant holds below one minor unit (dust, from a rate such as 1.123456) stays in it
  until it expires. A grant pays usage lines (every line with a meter: usage, minimum and
  maximum) by default, every line with `all`, or the lines of the meters it names. A
  maximum line (negative: a cap) lowers what is due on the lines of its meter and segment
  before it, so credits never pay more than the invoice asks for.
- The wallet is an append-only ledger of entries: grant (+), void (− what was left),
  debit (− what an invoice revision took), reversal (+ a superseded revision's debits),
  expiry (− what was left at expiry). A grant's remaining value is the sum of its entries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Literal, NamedTuple, ParamSpec, TypeVar

EntryKind = Literal["grant", "void", "debit", "reversal", "expiry"]
USAGE, ALL = "usage", "all"

P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """The function with its decimal arithmetic exact: wallet amounts are DECIMAL(38, 18), and
    Python's default 28 digits would round a sum of them without a word."""

    @functools.wraps(function)
    def exactly(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext() as context:
            context.prec = 80
            return function(*args, **kwargs)

    return exactly


@dataclass(frozen=True)
class Grant:
    grant_id: str  # <customer>-g<n>: the customer's n-th grant
    customer_id: str
    currency: str
    name: str
    amount: Decimal  # the money granted, exact (credits × rate when given so)
    credits: Decimal | None
    rate: Decimal | None
    priority: int | None  # lower burns first; None after every set one
    effective_at: datetime
    expires_at: datetime | None
    applies_to: tuple[str, ...]  # ("usage",), ("all",) or meter names
    reason: str | None
    key: str | None  # idempotency key
    source: str  # "command", a grants file, or a plan version
    sequence: int  # the order grants were made in, over the whole store
    created_at: datetime
    voided_at: datetime | None = None

    def burn_key(self) -> tuple:
        return (self.priority is None, self.priority or 0, self.expires_at is None,
                self.expires_at or self.effective_at, self.effective_at, self.sequence)

    def eligible(self, currency: str, period_end: datetime) -> bool:
        """Whether the grant may pay an invoice in `currency` for a period ending at `period_end`."""
        return (self.currency == currency and self.effective_at < period_end
                and (self.voided_at is None or self.voided_at >= period_end)
                and (self.expires_at is None or self.expires_at >= period_end))

    def covers(self, line: PayableLine) -> bool:
        if ALL in self.applies_to:
            return True
        if USAGE in self.applies_to:
            return line.meter is not None
        return line.meter in self.applies_to

    def status(self, at: datetime) -> str:
        if self.voided_at is not None and self.voided_at <= at:
            return "voided"
        if self.effective_at > at:
            return "scheduled"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "active"


class WalletEntry(NamedTuple):
    entry_id: int
    customer_id: str
    grant_id: str
    kind: EntryKind
    amount: Decimal  # signed, in the currency's units
    at: datetime  # when it takes effect: the grant's effective time, a void's time, a period's end, an expiry
    invoice_id: str | None  # debit, reversal: the invoice revision
    created_at: datetime


@dataclass(frozen=True)
class GrantRequest:
    """A grant as asked for, checked (see wallets.py), before the ledger names it."""

    customer_id: str
    currency: str
    name: str
    amount: Decimal
    credits: Decimal | None
    rate: Decimal | None
    priority: int | None
    effective_at: datetime
    expires_at: datetime | None
    applies_to: tuple[str, ...]
    reason: str | None
    key: str | None
    source: str


class NewEntry(NamedTuple):
    customer_id: str
    grant_id: str
    kind: EntryKind
    amount: Decimal
    at: datetime
    invoice_id: str | None


class PayableLine(NamedTuple):
    """What credits need to know of an invoice line."""

    line_no: int
    kind: str  # fee | usage | minimum | maximum
    meter: str | None
    segment: object  # lines of one meter and segment are capped together
    amount_minor: int


class Application(NamedTuple):
    grant_id: str
    name: str
    line_no: int
    applied_minor: int


def burn_order(grants: Iterable[Grant]) -> list[Grant]:
    return sorted(grants, key=Grant.burn_key)


@exact
def remaining(entries: Iterable[WalletEntry]) -> dict[str, Decimal]:
    """What each grant holds after these entries."""
    held: dict[str, Decimal] = {}
    for entry in entries:
        held[entry.grant_id] = held.get(entry.grant_id, Decimal(0)) + entry.amount
    return held


def due_per_line(lines: Sequence[PayableLine]) -> list[int]:
    """What is due on each line: its amount, a negative line (a maximum) taken off the lines of
    the same meter and segment before it; never below zero."""
    due = [max(line.amount_minor, 0) for line in lines]
    for index, line in enumerate(lines):
        owed = -line.amount_minor
        back = index - 1
        while owed > 0 and back >= 0:
            earlier = lines[back]
            if earlier.meter == line.meter and earlier.segment == line.segment and due[back] > 0:
                taken = min(due[back], owed)
                due[back] -= taken
                owed -= taken
            back -= 1
    return due


@exact
def apply_credits(lines: Sequence[PayableLine], grants: Sequence[Grant], held: Mapping[str, Decimal],
                  minor_units: int) -> tuple[Application, ...]:
    """How `grants` (eligible, in burn order, holding `held`) pay these lines."""
    unit = Decimal(1).scaleb(-minor_units)
    left = {grant.grant_id: held.get(grant.grant_id, Decimal(0)) for grant in grants}
    applied: list[Application] = []
    for line, due in zip(lines, due_per_line(lines), strict=True):
        for grant in grants:
            if due <= 0:
                break
            if not grant.covers(line):
                continue
            whole = int((left[grant.grant_id] / unit).to_integral_value(rounding=ROUND_FLOOR))
            paid = min(due, whole)
            if paid <= 0:
                continue
            applied.append(Application(grant.grant_id, grant.name, line.line_no, paid))
            left[grant.grant_id] -= paid * unit
            due -= paid
    return tuple(applied)


@dataclass(frozen=True)
class GrantBalance:
    grant_id: str
    name: str
    remaining: Decimal
    priority: int | None
    effective_at: datetime
    expires_at: datetime | None
    status: str  # active | scheduled | expired | voided


@dataclass(frozen=True)
class Balance:
    customer_id: str
    currency: str
    at: datetime
    available: Decimal  # what the active grants hold
    grants: tuple[GrantBalance, ...]
    # Available minus what the usage so far of the billing period open at `at` would take,
    # rated now (None when no period is open then: no subscription).
    ongoing: Decimal | None = None
    open_period: tuple[datetime, datetime] | None = None


@exact
def balance(customer_id: str, currency: str, grants: Sequence[Grant], entries: Sequence[WalletEntry],
            at: datetime) -> Balance:
    """The wallet at `at`: each grant with what it holds from its entries up to then; the
    available balance is what the active ones hold."""
    held = remaining(entry for entry in entries if entry.at <= at)
    shown = []
    for grant in burn_order(grants):
        status = grant.status(at)
        value = held.get(grant.grant_id, Decimal(0)) if status == "active" else Decimal(0)
        if status == "scheduled":
            value = grant.amount
        shown.append(GrantBalance(grant.grant_id, grant.name, value, grant.priority, grant.effective_at,
                                  grant.expires_at, status))
    available = sum((g.remaining for g in shown if g.status == "active"), Decimal(0))
    return Balance(customer_id, currency, at, available, tuple(shown))
