"""Customers' wallets: grants made and voided, expiries recorded, balances and the ledger read.

Every change is an entry appended to the wallet ledger (see credits.py); nothing is ever
updated or deleted. A grant is checked whole before anything is written: a customer that
exists, its currency, a positive amount (or credits and a positive rate), an expiry after
the time it takes effect, credits that pay known meters. The same idempotency key with the
same request gives the first grant again and grants nothing more; with another request it
is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from meterctl.credits import (
    ALL,
    USAGE,
    Balance,
    Grant,
    GrantRequest,
    NewEntry,
    PayableLine,
    WalletEntry,
    apply_credits,
    balance,
    burn_order,
    exact,
    remaining,
)
from meterctl.customers import CustomerVersion
from meterctl.cycles import add_months
from meterctl.errors import DataError, NotFoundError, Param, UsageError
from meterctl.instants import local_instant, time_zone
from meterctl.invoices import InvoiceCredit
from meterctl.store.ports import Ledger

_MAX = Decimal(10) ** 20  # what a DECIMAL(38, 18) holds
_PLACES = 18


@dataclass(frozen=True)
class GrantAsked:
    """A grant as a caller gives it: text and numbers as typed, before they are checked."""

    customer_id: str
    amount: str | Decimal | None = None
    credits: str | Decimal | None = None
    rate: str | Decimal | None = None
    currency: str | None = None
    name: str | None = None
    priority: int | None = None
    effective: str | datetime | None = None
    expires: str | datetime | None = None
    applies_to: tuple[str, ...] = ()
    reason: str | None = None
    key: str | None = None

    def sha256(self) -> str:
        """What an idempotency key stands for: the request as given (a default such as
        'effective now' is not part of it, so a retry asks for the same)."""
        document = {name: (value if value is None or isinstance(value, int | tuple) else str(value))
                    for name, value in sorted(vars(self).items())}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class GrantOutcome:
    grant: Grant
    created: bool  # False: the idempotency key's earlier grant, returned again


@dataclass(frozen=True)
class VoidOutcome:
    grant: Grant
    voided_at: datetime
    released: Decimal  # what the grant held then, no longer available


@dataclass(frozen=True)
class LedgerLine:
    entry: WalletEntry
    grant_name: str
    balance: Decimal  # the wallet's running balance after this entry
    recorded: bool  # False: an expiry that is due but not written yet (the next write records it)


def _decimal(value: str | Decimal | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise UsageError(Param(name), f": '{value}' is not a decimal number") from None
    if not number.is_finite():
        raise UsageError(Param(name), f": '{value}' is not a finite number")
    return number


def _fits(value: Decimal, name: str) -> Decimal:
    """The value, when the ledger keeps it exactly (below 10^20, at most 18 decimals)."""
    plain = format(value, "f")
    places = len(plain.partition(".")[2].rstrip("0"))
    if abs(value) >= _MAX or places > _PLACES:
        raise UsageError(Param(name), f": {plain} cannot be kept exactly (below 10^20, at most 18 decimals)")
    return value


def _instant(given: str | datetime, zone_name: str, name: str) -> datetime:
    return local_instant(given, time_zone(zone_name), name)


def check_grant(asked: GrantAsked, customer: CustomerVersion | None, meters: Sequence[str] | None, now: datetime,
                source: str = "command") -> GrantRequest:
    """The request, checked whole; UsageError (or NotFoundError for an unknown customer) names
    what to fix, and nothing is written."""
    if customer is None:
        raise NotFoundError(Param("customer"), f": no customer '{asked.customer_id}' (see 'meterctl customers list')")
    amount, credits, rate = (_decimal(asked.amount, "amount"), _decimal(asked.credits, "credits"),
                             _decimal(asked.rate, "rate"))
    if amount is not None and (credits is not None or rate is not None):
        raise UsageError("give ", Param("amount"), " or ", Param("credits"), " with ", Param("rate"), ", not both")
    if amount is None:
        if credits is None or rate is None:
            raise UsageError("give ", Param("amount"), ", or ", Param("credits"), " with ", Param("rate"),
                             " (money per credit)")
        if credits <= 0:
            raise UsageError(Param("credits"), f": {credits} must be more than zero")
        if rate <= 0:
            raise UsageError(Param("rate"), f": {rate} must be more than zero (money per credit)")
        with localcontext() as exact:
            exact.prec = 80  # two DECIMAL(38, 18) multiplied, exactly
            amount = _fits(credits * rate, "credits")
    if amount <= 0:
        raise UsageError(Param("amount"), f": {amount} must be more than zero")
    _fits(amount, "amount")
    currency = asked.currency or customer.currency
    if currency != customer.currency:
        raise UsageError(Param("currency"), f": {customer.customer_id} is billed in {customer.currency}, not {currency}; "
                         "a wallet holds the customer's currency")
    effective = _instant(asked.effective, customer.timezone, "effective") if asked.effective is not None else now
    expires = _instant(asked.expires, customer.timezone, "expires") if asked.expires is not None else None
    if expires is not None and expires <= effective:
        raise UsageError(Param("expires"), f": {expires.isoformat()} must be after the grant takes effect "
                         f"({effective.isoformat()})")
    applies_to = tuple(dict.fromkeys(asked.applies_to)) or (USAGE,)
    scopes = {USAGE, ALL} & set(applies_to)
    if scopes and len(applies_to) > 1:
        raise UsageError(Param("applies_to"), f": '{next(iter(scopes))}' stands alone (usage: every usage line; all: "
                         "fees too), or name meters")
    if not scopes and meters is not None:
        unknown = sorted(set(applies_to) - set(meters))
        if unknown:
            raise UsageError(Param("applies_to"), f": unknown meter(s) {', '.join(unknown)} (meters: "
                             f"{', '.join(meters)}; or usage, all)")
    name = asked.name or ("Prepaid credits" if credits is not None else "Prepaid balance")
    return GrantRequest(customer.customer_id, currency, name, amount, credits, rate, asked.priority, effective, expires,
                        applies_to, asked.reason, asked.key, source)


def make_grant(ledger: Ledger, asked: GrantAsked, customer: CustomerVersion | None, meters: Sequence[str] | None,
               now: datetime, source: str = "command") -> GrantOutcome:
    request = check_grant(asked, customer, meters, now, source)
    with ledger.transaction():
        record_expiries(ledger, [request.customer_id], now)
        made, created = ledger.record_grant(request, asked.sha256(), now)
    return GrantOutcome(made, created)


@exact
def void_grant(ledger: Ledger, grant_id: str, at: str | datetime | None, timezone: str | None,
               now: datetime) -> VoidOutcome:
    """What remains of the grant is no longer available from `at` (default now); what it
    already paid stays paid."""
    with ledger.transaction():
        found = ledger.wallet_grant(grant_id)
        if found is None:
            raise NotFoundError(f"no grant '{grant_id}' (see 'meterctl wallet balance')")
        if found.voided_at is not None:
            raise DataError(f"grant {grant_id} was voided already, at {found.voided_at.isoformat()}")
        when = _instant(at, timezone or "UTC", "at") if at is not None else now
        if found.expires_at is not None and found.expires_at <= when:
            raise DataError(f"grant {grant_id} expired at {found.expires_at.isoformat()}: nothing is left to void then")
        record_expiries(ledger, [found.customer_id], now)
        # All it holds now, whenever the void takes effect: what it paid for periods that
        # ended after that stays paid (a revision of one gives it back from the void).
        held = remaining(e for e in ledger.wallet_entries([found.customer_id])
                         if e.grant_id == grant_id).get(grant_id, Decimal(0))
        ledger.add_wallet_entries([NewEntry(found.customer_id, grant_id, "void", -held, when, None)], now)
    voided = ledger.wallet_grant(grant_id)
    assert voided is not None
    return VoidOutcome(voided, when, held)


@exact
def due_expiries(grants: Sequence[Grant], entries: Sequence[WalletEntry], now: datetime) -> list[NewEntry]:
    """An expiry entry for each grant whose expiry has come and that has none yet: what it
    held then, taken out."""
    expired = {e.grant_id for e in entries if e.kind in ("expiry", "void")}
    by_grant: dict[str, list[WalletEntry]] = {}
    for entry in entries:
        by_grant.setdefault(entry.grant_id, []).append(entry)
    due = []
    for grant in grants:
        if grant.expires_at is None or grant.expires_at > now or grant.grant_id in expired:
            continue
        held = sum((e.amount for e in by_grant.get(grant.grant_id, ()) if e.at <= grant.expires_at), Decimal(0))
        due.append(NewEntry(grant.customer_id, grant.grant_id, "expiry", -held, grant.expires_at, None))
    return due


def record_expiries(ledger: Ledger, customer_ids: Sequence[str] | None, now: datetime) -> int:
    """Write the expiries that have come (inside the caller's transaction)."""
    due = due_expiries(ledger.wallet_grants(customer_ids), ledger.wallet_entries(customer_ids), now)
    ledger.add_wallet_entries(due, now)
    return len(due)


def balances(ledger: Ledger, customers: Sequence[CustomerVersion], at: datetime) -> tuple[Balance, ...]:
    """Each customer's wallet at `at` (customers without grants included, at zero)."""
    ids = [c.customer_id for c in customers]
    grants, entries = ledger.wallet_grants(ids), ledger.wallet_entries(ids)
    return tuple(balance(c.customer_id, c.currency, [g for g in grants if g.customer_id == c.customer_id],
                         [e for e in entries if e.customer_id == c.customer_id], at) for c in customers)


@exact
def ledger_lines(ledger: Ledger, customer_id: str, now: datetime) -> tuple[LedgerLine, ...]:
    """Every entry of the customer's wallet, oldest first, with the running balance; expiries
    that have come but are not written yet are shown where they belong."""
    grants = ledger.wallet_grants([customer_id])
    entries = list(ledger.wallet_entries([customer_id]))
    pending = due_expiries(grants, entries, now)
    names = {g.grant_id: g.name for g in grants}
    shown = [(e, True) for e in entries] + [
        (WalletEntry(0, p.customer_id, p.grant_id, p.kind, p.amount, p.at, None, now), False) for p in pending]
    shown.sort(key=lambda item: (item[0].at, not item[1], item[0].entry_id))
    running = Decimal(0)
    lines = []
    for entry, recorded in shown:
        running += entry.amount
        lines.append(LedgerLine(entry, names.get(entry.grant_id, ""), running, recorded))
    return tuple(lines)


class InvoiceCrediting:
    """The credits of one invoice run's invoices, worked out in the run's order.

    What a grant can still pay is its entries' sum, leaving out a void or expiry: such a
    grant is eligible only for periods that ended by then, and what it pays them after the
    fact is given back from that entry (so that it still holds nothing from then on). A
    revision gets the debits of the revision it supersedes back first, then takes afresh.
    Drafts only take in memory (later invoices of the run see it); a finalized revision's
    reversals, debits and give-backs are the entries returned by `finalized`.
    """

    @exact
    def __init__(self, ledger: Ledger, customer_ids: Sequence[str], now: datetime, *, record: bool = True) -> None:
        """`record` False works out what a run would do without writing (the expiries due)."""
        grants = ledger.wallet_grants(customer_ids)
        entries = list(ledger.wallet_entries(customer_ids))
        expiries = due_expiries(grants, entries, now)
        if record:
            ledger.add_wallet_entries(expiries, now)
        entries += [WalletEntry(0, e.customer_id, e.grant_id, e.kind, e.amount, e.at, e.invoice_id, now)
                    for e in expiries]
        self._grants: dict[str, list[Grant]] = {}
        for grant in burn_order(grants):
            self._grants.setdefault(grant.customer_id, []).append(grant)
        self._by_id = {grant.grant_id: grant for grant in grants}
        self._can_pay = remaining(e for e in entries if e.kind not in ("void", "expiry"))
        self._closed = {e.grant_id: e.kind for e in entries if e.kind in ("void", "expiry")}
        self._debited: dict[str, dict[str, Decimal]] = {}  # invoice revision → grant → net debit
        for e in entries:
            if e.invoice_id is not None and e.kind in ("debit", "reversal"):
                held = self._debited.setdefault(e.invoice_id, {})
                held[e.grant_id] = held.get(e.grant_id, Decimal(0)) - e.amount

    @exact
    def apply(self, customer_id: str, currency: str, minor_units: int, period_end: datetime,
              lines: Sequence[PayableLine], replaces: str | None) -> tuple[InvoiceCredit, ...]:
        for grant_id, amount in self._debited.get(replaces or "", {}).items():
            self._can_pay[grant_id] = self._can_pay.get(grant_id, Decimal(0)) + amount
        eligible = [g for g in self._grants.get(customer_id, ()) if g.eligible(currency, period_end)]
        applied = apply_credits(lines, eligible, self._can_pay, minor_units)
        for application in applied:
            self._can_pay[application.grant_id] -= Decimal(application.applied_minor).scaleb(-minor_units)
        return tuple(InvoiceCredit(a.grant_id, a.name, a.line_no, a.applied_minor) for a in applied)

    @exact
    def left(self, credits: Sequence[InvoiceCredit]) -> dict[str, Decimal]:
        """What each grant these credits came from holds now."""
        return {credit.grant_id: self._can_pay.get(credit.grant_id, Decimal(0)) for credit in credits}

    @exact
    def finalized(self, invoice_id: str, customer_id: str, minor_units: int, period_end: datetime,
                  credits: Sequence[InvoiceCredit], replaces: str | None) -> list[NewEntry]:
        """The entries of a revision finalized with these credits."""
        returned = self._debited.get(replaces or "", {})
        taken: dict[str, Decimal] = {}
        for credit in credits:
            taken[credit.grant_id] = taken.get(credit.grant_id, Decimal(0)) + Decimal(credit.applied_minor).scaleb(
                -minor_units)
        # Reversals, then what closed grants give back, then debits: in the order they are
        # written no grant ever holds less than nothing.
        entries = [NewEntry(customer_id, grant_id, "reversal", amount, period_end, replaces)
                   for grant_id, amount in sorted(returned.items()) if amount]
        for grant_id in sorted(set(returned) | set(taken)):
            kind = self._closed.get(grant_id)
            change = taken.get(grant_id, Decimal(0)) - returned.get(grant_id, Decimal(0))
            if kind is not None and change:
                grant = self._by_id[grant_id]
                closed_at = grant.expires_at if kind == "expiry" and grant.expires_at else period_end
                entries.append(NewEntry(customer_id, grant_id, kind, change, closed_at, invoice_id))
        entries += [NewEntry(customer_id, grant_id, "debit", -amount, period_end, invoice_id)
                    for grant_id, amount in sorted(taken.items())]
        self._debited[invoice_id] = taken
        if replaces:
            self._debited[replaces] = {}
        return entries


@exact
def with_ongoing(found: Balance, grants: Sequence[Grant], lines: Sequence[PayableLine], period: tuple[datetime, datetime],
                 minor_units: int) -> Balance:
    """The balance with what the open period's usage so far would take: the active grants
    (holding what they hold at `found.at`) paying these lines, by the invoice's rules."""
    active = {g.grant_id: g.remaining for g in found.grants if g.status == "active"}
    eligible = burn_order(g for g in grants if g.grant_id in active and g.eligible(found.currency, period[1]))
    taken = sum(a.applied_minor for a in apply_credits(lines, eligible, active, minor_units))
    return dataclasses.replace(found, ongoing=found.available - Decimal(taken).scaleb(-minor_units), open_period=period)


@dataclass(frozen=True)
class PlanSegment:
    """A segment of a billing period on a plan version that grants credits."""

    customer_id: str
    currency: str
    timezone: str
    period_start: date
    period_end: date
    segment_start: date
    plan: str
    ref: str  # plan@version
    credits: tuple[Any, ...]  # the version's PlanCredit entries


def plan_grants(ledger: Ledger, segments: Sequence[PlanSegment], now: datetime) -> int:
    """The grants plans give, made once per billing period (or once ever) for each customer
    on them, keyed so that an invoice run again makes none twice (inside the caller's
    transaction). A credit takes effect when the segment on its plan starts, in the
    customer's time zone, and expires at the period's end, never, or days or months later."""
    made = 0
    for segment in segments:
        zone = time_zone(segment.timezone)
        effective = datetime.combine(segment.segment_start, time(), zone)
        for credit in segment.credits:
            if credit.expires == "period_end":
                expires: datetime | None = datetime.combine(segment.period_end, time(), zone)
            elif credit.expires == "never":
                expires = None
            elif credit.expires.days is not None:
                expires = datetime.combine(segment.segment_start + timedelta(days=credit.expires.days), time(), zone)
            else:
                expires = datetime.combine(add_months(segment.segment_start, credit.expires.months), time(), zone)
            key = (f"plan {segment.ref} {credit.name} {segment.customer_id} {segment.period_start}"
                   if credit.every == "period" else f"plan {segment.plan} {credit.name} {segment.customer_id}")
            request = GrantRequest(segment.customer_id, segment.currency, credit.name, credit.value, credit.credits,
                                   credit.rate, credit.priority, effective, expires, tuple(credit.applies_to),
                                   f"included in {segment.ref}", key, f"plan {segment.ref}")
            _, created = ledger.record_grant(request, hashlib.sha256(key.encode()).hexdigest(), now)
            made += created
    return made
