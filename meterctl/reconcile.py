"""Closing a month: every event accounted for, every invoice adding up, late events found.

`reconcile` tallies the month's events in one pass (see meterctl.unbilled for the fates an
event can have) and runs six checks, each with what was expected, what was found and the gap:

1. conservation: the events of the month = billed + unbilled by reason + not invoiced yet,
   in all and per meter (an event two meters select counts for each);
2. invoice arithmetic: for each current invoice (and the finalized one a draft would
   replace), Σ lines = subtotal, subtotal − credits + tax = total, the credits its lines
   took = credits, and for a finalized revision the wallet ledger's debits = credits;
3. rated = invoiced: the rating run behind each invoice holds exactly its lines;
4. no duplicates: no event id stored twice; the month's duplicates and conflicts counted;
5. late events: billable events ingested after the finalized invoice of their period was
   rated, when they would change it: the revision each calls for and its difference;
6. periods invoiced: every period ending in the month with billable usage has an invoice.

It writes nothing. The month is clean (exit 0) when every check holds and no event is
unbilled for a reason other than `ignored`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from meterctl.customers import imported, select_customers
from meterctl.cycles import month_bounds
from meterctl.errors import DataError
from meterctl.invoicing import due_revisions
from meterctl.meters import Meter
from meterctl.pricing import minor_units, text
from meterctl.rating.plan import Job, plan_jobs
from meterctl.rating.scope import month_query
from meterctl.store.ports import InvoiceFilter, MonthTally
from meterctl.unbilled import REASONS, Unbilled, summarize

if TYPE_CHECKING:
    from meterctl.billing_terms import Tax
    from meterctl.config_yaml import Problem
    from meterctl.invoices import Invoice
    from meterctl.pricebook import Catalog
    from meterctl.store.ports import EventStore, Ledger

# Problems listed per check: enough to act on, short enough to read.
SHOWN_PROBLEMS = 20
NO_METER = "(no meter)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    expected: int | str
    actual: int | str
    gap: int | str
    problems: tuple[str, ...] = ()  # what does not hold, one line each (the first SHOWN_PROBLEMS)
    see: str | None = None  # the command that shows more

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "expected": self.expected, "actual": self.actual, "gap": self.gap,
                "problems": list(self.problems), "see": self.see}


@dataclass(frozen=True)
class LateInvoice:
    """A finalized invoice that events ingested after it would change."""

    invoice_id: str
    number: str | None
    customer_id: str
    period_start: date
    events: int
    total_minor: int  # what a revision would total
    delta_minor: int | None  # a revision's total minus this invoice's (None: the currency changed)
    currency: str

    def document(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "number": self.number, "customer_id": self.customer_id,
                "period_start": self.period_start.isoformat(), "events": self.events,
                "total_minor": self.total_minor, "delta_minor": self.delta_minor, "currency": self.currency}


@dataclass(frozen=True)
class DraftBehind:
    """A draft (with no finalized revision before it) that events ingested since it was built
    would change: not an error, `invoice` (or `invoice --finalize`) prices them."""

    invoice_id: str
    customer_id: str
    events: int


class Count(NamedTuple):
    events: int = 0
    quantity: Decimal = Decimal(0)  # Σ of the events' own quantity

    def __add__(self, other: object) -> Count:
        assert isinstance(other, Count)
        return Count(self.events + other.events, self.quantity + other.quantity)

    def document(self) -> dict[str, Any]:
        return {"events": self.events, "quantity": text(self.quantity)}


@dataclass(frozen=True)
class MeterAccount:
    """One meter's events of the month (or those no meter selects, as NO_METER), counted
    and summed by what became of them."""

    meter: str
    in_period: Count = Count()
    billed: Count = Count()
    not_invoiced: Count = Count()
    unbilled: dict[str, Count] = field(default_factory=dict)

    @property
    def accounted(self) -> Count:
        return sum(self.unbilled.values(), self.billed + self.not_invoiced)

    def document(self) -> dict[str, Any]:
        return {"meter": self.meter, "in_period": self.in_period.document(), "billed": self.billed.document(),
                "not_invoiced": self.not_invoiced.document(),
                "unbilled": {reason: count.document() for reason, count in self.unbilled.items()}}


@dataclass(frozen=True)
class Reconciliation:
    period: str
    customers: tuple[str, ...] | None  # the customer filter
    in_period: int  # events the month accounts for
    billed: int
    not_invoiced: int  # billable, in a period with no invoice yet
    unbilled: Unbilled
    late_events: int  # billable events ingested after their period's finalized invoice
    late: tuple[LateInvoice, ...]  # the invoices those events would change
    absorbed_events: int  # ingested late, but changing nothing on their invoice
    duplicates: int
    conflicts: int
    meters: tuple[MeterAccount, ...]
    checks: tuple[Check, ...]
    drafts_behind: tuple[DraftBehind, ...] = ()
    by_event_name: tuple[tuple[str, int], ...] = ()  # the month's events per name, as `status` counts them

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and not self.unbilled.lost

    def document(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "customers": list(self.customers) if self.customers else None,
            "ok": self.ok,
            "events": {"in_period": self.in_period, "billed": self.billed, "not_invoiced": self.not_invoiced,
                       "duplicates": self.duplicates, "conflicts": self.conflicts,
                       "by_event_name": dict(self.by_event_name)},
            "unbilled": self.unbilled.document(),
            "late": {"events": sum(i.events for i in self.late), "absorbed_events": self.absorbed_events,
                     "invoices": [i.document() for i in self.late],
                     "drafts_behind": [{"invoice_id": d.invoice_id, "customer_id": d.customer_id, "events": d.events}
                                       for d in self.drafts_behind]},
            "meters": [m.document() for m in self.meters],
            "checks": [c.document() for c in self.checks],
        }

    def refusal(self) -> DataError | None:
        """A month that does not reconcile is exit 65 for a caller that acts on it."""
        if self.ok:
            return None
        failing = [c.name for c in self.checks if not c.ok]
        if self.unbilled.lost:
            failing.append(f"{self.unbilled.lost} unbilled event(s)")
        return DataError(f"{self.period} does not reconcile: {', '.join(failing)}")


def reconcile(events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], period: str, *,
              customers: Sequence[str] | None = None, ignored: Sequence[str] = (),
              now: datetime | None = None, taxes: Mapping[str, Tax] | None = None) -> Reconciliation:
    now = now or datetime.now(UTC)
    month_start, month_end = month_bounds(period)
    latest = imported(ledger.latest_customers())
    chosen = select_customers(latest, customers)
    unplanned: dict[str, list[Problem]] = {}
    jobs = plan_jobs(chosen, catalog, period, set_aside=unplanned)
    wanted = tuple(customers) if customers else None
    current = ledger.invoices(InvoiceFilter(month_start, month_end, wanted, None, True))
    finalized = ledger.invoices(InvoiceFilter(month_start, month_end, wanted, "finalized", True))
    # An invoice saw the events ingested up to its rating run's last batch: those after the
    # finalized one's are late; those after a draft's (with nothing finalized) are news to it.
    drafts = [i for i in current if i.number is None]
    runs = {run_id: ledger.run(run_id) for run_id in {i.rating_run_id for i in [*finalized, *drafts]}}
    late_after = {(i.customer_id, i.period_start): run.as_of_batch for i in [*drafts, *finalized]
                  if (run := runs[i.rating_run_id]) is not None}
    query = month_query(period, jobs, latest, customers, meters, ignored, unplanned=unplanned, late_after=late_after)
    pending = events.tally_month(query)
    try:
        # The ledger's checks run while the store tallies the events.
        arithmetic = _arithmetic(ledger, current, finalized)
        rated = _rated_equals_invoiced(ledger, current)
        scan_start = min([w.start for w in query.windows] + [query.start])
        scan_end = max([w.end for w in query.windows] + [query.end])
        integrity = events.month_integrity(scan_start, scan_end, (month_start, month_end))
        tallies: tuple[MonthTally, ...] = pending.result()
    except BaseException:
        pending.cancel()
        raise
    invoiced = {(i.customer_id, i.period_start) for i in current}
    period_of = [(job.customer.customer_id, job.segment.period.start) for job in jobs]
    unbilled = summarize(period, tallies)
    accounts = _meter_accounts(tallies, meters, period_of, invoiced)
    in_period = sum(t.events for t in tallies)
    billed, not_invoiced, late_by_period = _billable(tallies, period_of, invoiced)
    finalized_periods = {(i.customer_id, i.period_start) for i in finalized}
    behind = tuple(DraftBehind(i.invoice_id, i.customer_id, late_by_period[(i.customer_id, i.period_start)])
                   for i in drafts if (i.customer_id, i.period_start) in late_by_period
                   and (i.customer_id, i.period_start) not in finalized_periods)
    late_by_period = {key: n for key, n in late_by_period.items() if key in finalized_periods}
    late, absorbed = _late(events, ledger, catalog, meters, period, late_by_period, finalized, now, taxes)
    checks = (
        _conservation(in_period, billed, not_invoiced, unbilled, accounts),
        arithmetic,
        rated,
        _no_duplicates(integrity.repeated_ids),
        _late_check(late, period),
        _periods_invoiced(tallies, jobs, invoiced, unplanned, period),
    )
    names: dict[str, int] = {}
    for tally in tallies:
        names[tally.event_name] = names.get(tally.event_name, 0) + tally.events
    return Reconciliation(period, wanted, in_period, billed, not_invoiced, unbilled,
                          sum(i.events for i in late), late, absorbed, integrity.duplicates, integrity.conflicts,
                          accounts, checks, behind, tuple(sorted(names.items())))


class Watch:
    """What monitoring follows of a month, without the rest of the checks: its unbilled
    events, and the finalized invoices late events would change. The month's events are
    tallied in the background from construction on; `result()` waits for them."""

    def __init__(self, events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], period: str, *,
                 ignored: Sequence[str] = (), now: datetime | None = None,
                 taxes: Mapping[str, Tax] | None = None) -> None:
        self._args = (events, ledger, catalog, meters, period)
        self._taxes = taxes
        self._now = now or datetime.now(UTC)
        month_start, month_end = month_bounds(period)
        latest = imported(ledger.latest_customers())
        unplanned: dict[str, list[Problem]] = {}
        self._jobs = plan_jobs(latest, catalog, period, set_aside=unplanned)
        self._finalized = ledger.invoices(InvoiceFilter(month_start, month_end, None, "finalized", True))
        runs = {run_id: ledger.run(run_id) for run_id in {i.rating_run_id for i in self._finalized}}
        self._late_after = {(i.customer_id, i.period_start): run.as_of_batch for i in self._finalized
                            if (run := runs[i.rating_run_id]) is not None}
        query = month_query(period, self._jobs, latest, None, meters, ignored, unplanned=unplanned,
                            late_after=self._late_after)
        self._pending = events.tally_month(query)

    def cancel(self) -> None:
        self._pending.cancel()

    def result(self) -> tuple[Unbilled, tuple[LateInvoice, ...]]:
        events, ledger, catalog, meters, period = self._args
        tallies: tuple[MonthTally, ...] = self._pending.result()
        period_of = [(job.customer.customer_id, job.segment.period.start) for job in self._jobs]
        _, _, late_by_period = _billable(tallies, period_of, set())
        late_by_period = {key: n for key, n in late_by_period.items() if key in self._late_after}
        late, _ = _late(events, ledger, catalog, meters, period, late_by_period, self._finalized, self._now,
                        self._taxes)
        return summarize(period, tallies), late


# ---------------------------------------------------------------- the events


def _billable(tallies: Sequence[MonthTally], period_of: Sequence[tuple[str, date]], invoiced: set[tuple[str, date]]
              ) -> tuple[int, int, dict[tuple[str, date], int]]:
    """(billed events, billable events with no invoice, late events per customer × period)."""
    billed = not_invoiced = 0
    late: dict[tuple[str, date], int] = {}
    for tally in tallies:
        if tally.fate != "billable":
            continue
        key = period_of[tally.window] if tally.window is not None and tally.window < len(period_of) else None
        if key is not None and key in invoiced:
            billed += tally.events
        else:
            not_invoiced += tally.events
        if key is not None and tally.late_events:
            late[key] = late.get(key, 0) + tally.late_events
    return billed, not_invoiced, late


def _meter_accounts(tallies: Sequence[MonthTally], meters: Sequence[Meter], period_of: Sequence[tuple[str, date]],
                    invoiced: set[tuple[str, date]]) -> tuple[MeterAccount, ...]:
    names = [m.name for m in meters]
    found: dict[str, dict[str, Count]] = {name: {} for name in [*names, NO_METER]}
    for tally in tallies:
        if tally.fate != "billable":
            fate = tally.fate
        elif tally.window is not None and tally.window < len(period_of) and period_of[tally.window] in invoiced:
            fate = "billed"
        else:
            fate = "not_invoiced"
        count = Count(tally.events, tally.quantity)
        for name in [name for index, name in enumerate(names) if tally.meters >> index & 1] or [NO_METER]:
            found[name]["in_period"] = found[name].get("in_period", Count()) + count
            found[name][fate] = found[name].get(fate, Count()) + count
    return tuple(MeterAccount(name, c.get("in_period", Count()), c.get("billed", Count()), c.get("not_invoiced", Count()),
                              {r: c[r] for r in REASONS if r in c})
                 for name, c in found.items() if c or name != NO_METER)


def _conservation(in_period: int, billed: int, not_invoiced: int, unbilled: Unbilled,
                  accounts: Sequence[MeterAccount]) -> Check:
    """In all by events; per meter by events and by quantity."""
    accounted = billed + not_invoiced + sum(unbilled[r].events for r in REASONS)
    problems = [f"meter {a.meter}: {a.in_period.events} event(s) of quantity {text(a.in_period.quantity)} in the "
                f"month, {a.accounted.events} of quantity {text(a.accounted.quantity)} accounted for"
                for a in accounts if a.accounted != a.in_period]
    return Check("conservation", accounted == in_period and not problems, in_period, accounted,
                 in_period - accounted, tuple(problems[:SHOWN_PROBLEMS]), "meterctl status")


def _no_duplicates(repeated: Sequence[tuple[str, int]]) -> Check:
    problems = [f"event {event_id} is stored {copies} times" for event_id, copies in repeated]
    return Check("no_duplicates", not repeated, 0, len(repeated), len(repeated), tuple(problems[:SHOWN_PROBLEMS]),
                 "meterctl conflicts list")


def _periods_invoiced(tallies: Sequence[MonthTally], jobs: Sequence[Job], invoiced: set[tuple[str, date]],
                      unplanned: dict[str, list[Problem]], period: str) -> Check:
    """Periods ending in the month with billable events and no invoice (and customers whose
    periods could not be worked out, with billable events)."""
    used: dict[tuple[str, date], int] = {}
    unplanned_events: dict[str, int] = {}
    for tally in tallies:
        if tally.fate != "billable" or tally.window is None:
            continue
        if tally.window < len(jobs):
            job = jobs[tally.window]
            key = (job.customer.customer_id, job.segment.period.start)
            used[key] = used.get(key, 0) + tally.events
        else:
            unplanned_events[tally.customer_id] = unplanned_events.get(tally.customer_id, 0) + tally.events
    ends = {(job.customer.customer_id, job.segment.period.start): job.segment.period.end for job in jobs}
    missing = sorted(key for key in used if key not in invoiced)
    problems = [f"{customer} [{start}, {ends[(customer, start)]}): {used[(customer, start)]} billable event(s), "
                "no invoice" for customer, start in missing]
    problems += [f"{customer}: {count} billable event(s), not rated: "
                 + "; ".join(str(p) for p in unplanned.get(customer, ()))
                 for customer, count in sorted(unplanned_events.items())]
    expected = len(used) + len(unplanned_events)
    return Check("periods_invoiced", not problems, expected, expected - len(problems), len(problems),
                 tuple(problems[:SHOWN_PROBLEMS]), f"meterctl invoice --period {period}")


# ---------------------------------------------------------------- late events


def _late(events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], period: str,
          late_by_period: dict[tuple[str, date], int], finalized: Sequence[Invoice], now: datetime,
          taxes: Mapping[str, Tax] | None = None) -> tuple[tuple[LateInvoice, ...], int]:
    """The finalized invoices that their late events would change, and the late events that
    would change nothing (within a free allowance, below a maximum...)."""
    if not late_by_period:
        return (), 0
    by_period = {(i.customer_id, i.period_start): i for i in finalized}
    affected = sorted({customer for customer, _ in late_by_period})
    due = {(d.customer_id, d.period_start): d for d in due_revisions(events, ledger, catalog, meters, period,
                                                                        affected, now, taxes)}
    late: list[LateInvoice] = []
    absorbed = 0
    for key, count in sorted(late_by_period.items()):
        invoice = by_period.get(key)
        revision = due.get(key)
        if invoice is None or revision is None or revision.replaces.invoice_id != invoice.invoice_id:
            absorbed += count
            continue
        late.append(LateInvoice(invoice.invoice_id, invoice.number, invoice.customer_id, invoice.period_start, count,
                                revision.total_minor, revision.delta_minor, invoice.currency))
    return tuple(late), absorbed


def _late_check(late: Sequence[LateInvoice], period: str) -> Check:
    count = sum(i.events for i in late)
    problems = [f"{i.number or i.invoice_id} ({i.customer_id}): {i.events} late event(s), a revision would "
                + (f"change the total by {_signed(i.delta_minor, i.currency)} {i.currency}"
                   if i.delta_minor is not None else "bill another currency")
                for i in late]
    return Check("late_events", not late, 0, count, count, tuple(problems[:SHOWN_PROBLEMS]),
                 f"meterctl invoice --period {period} (a revision), then --finalize")


def _signed(minor: int, currency: str) -> str:
    from meterctl.pricing import major

    shown = major(minor, minor_units(currency))
    return f"+{shown}" if minor > 0 else shown


# ---------------------------------------------------------------- invoices


def _arithmetic(ledger: Ledger, current: Sequence[Invoice], finalized: Sequence[Invoice]) -> Check:
    """Σ lines = subtotal; subtotal − credits + tax = total; credits = what the lines took;
    and for a finalized revision, credits = its debits in the wallet ledger."""
    seen = {i.invoice_id for i in current}
    invoices = [*current, *(i for i in finalized if i.invoice_id not in seen)]
    sums = ledger.invoice_sums([i.invoice_id for i in invoices])
    debits: dict[str, Decimal] = {}
    if any(i.number for i in invoices):
        for entry in ledger.wallet_entries(sorted({i.customer_id for i in invoices if i.number})):
            if entry.kind == "debit" and entry.invoice_id is not None:
                debits[entry.invoice_id] = debits.get(entry.invoice_id, Decimal(0)) - entry.amount
    problems: list[str] = []
    broken = 0
    for invoice in invoices:
        name = invoice.number or invoice.invoice_id
        found: list[str] = []
        lines, taken = sums.get(invoice.invoice_id, (0, 0))
        if lines != invoice.subtotal_minor:
            found.append(f"{name}: lines add up to {lines}, subtotal is {invoice.subtotal_minor}")
        total = max(invoice.subtotal_minor - invoice.credits_minor, 0) + invoice.tax_minor
        if total != invoice.total_minor:
            found.append(f"{name}: subtotal − credits + tax = {total}, total is {invoice.total_minor}")
        if taken != invoice.credits_minor:
            found.append(f"{name}: its lines took {taken} in credits, credits are {invoice.credits_minor}")
        if invoice.number:
            debited = debits.get(invoice.invoice_id, Decimal(0)).scaleb(invoice.minor_units)
            if debited != invoice.credits_minor:
                found.append(f"{name}: the wallet ledger debits {text(debited)}, credits are {invoice.credits_minor}")
        broken += bool(found)
        problems += found
    return Check("invoice_arithmetic", not problems, len(invoices), len(invoices) - broken, broken,
                 tuple(problems[:SHOWN_PROBLEMS]), "meterctl invoice verify ID")


def _rated_equals_invoiced(ledger: Ledger, current: Sequence[Invoice]) -> Check:
    """Each current invoice's lines are exactly its rating run's lines for the customer and period."""
    expected, matched, mismatches = ledger.lines_against_runs([i.invoice_id for i in current], SHOWN_PROBLEMS)
    problems = tuple(
        f"{m.invoice}: rated line {m.rated_line_no} of run {m.run_id} is on no invoice line" if m.line_no is None
        else f"{m.invoice} line {m.line_no}: {m.problem} (rated line {m.rated_line_no} of run {m.run_id})"
        for m in mismatches)
    return Check("rated_equals_invoiced", not problems, expected, matched, expected - matched, problems,
                 "meterctl explain ID")
