"""Rated lines → invoices: one per customer per billing period, in revisions.

`build_invoices` rates the month afresh (so an invoice always reflects the events stored
now; when a rating run of the month already holds these very lines from the same events and
meters, that run is used rather than recorded again), then for each customer × period
compares the new content with what is stored:

- same content as the latest finalized revision: nothing to do (`unchanged`);
- a draft exists: it is regenerated in place (`regenerated`), or kept if equal;
- otherwise a new draft revision is written (`created`, or `revised` when it supersedes a
  finalized revision: late events never change a finalized invoice).

`finalize=True` then finalizes the drafts: each gets the next number of the year of the
period's end (INV-2026-000042: sequential, gap-free, never reused, since finalized rows are
never deleted) and is immutable from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from meterctl.credits import PayableLine
from meterctl.cycles import month_bounds
from meterctl.errors import DataError, MeterctlError, NotFoundError, Param
from meterctl.invoices import (
    Invoice,
    InvoiceChanges,
    InvoiceCredit,
    InvoiceOutcome,
    InvoiceTax,
    NewInvoice,
    Numbered,
    StoredInvoice,
    Totals,
    content_hash,
    invoice_id,
    invoice_taxes,
    invoice_totals,
    taxable_minor,
)
from meterctl.pricing import minor_units
from meterctl.store.ports import InvoiceFilter

if TYPE_CHECKING:
    from meterctl.billing_terms import Tax
    from meterctl.customers import CustomerVersion

    # Rating (with pydantic and the pricebook models) is imported when invoices are built,
    # not when they are only read: list, show and export start faster without it.
    from meterctl.meters import Meter
    from meterctl.pricebook import Catalog
    from meterctl.pricing import Rounding
    from meterctl.rating.lines import RatedLine
    from meterctl.rating.month import RatingResult
    from meterctl.store.ports import EventStore, Ledger
    from meterctl.wallets import InvoiceCrediting, PlanSegment


@dataclass(frozen=True)
class InvoiceRun:
    period: str
    rating: RatingResult
    outcomes: tuple[InvoiceOutcome, ...]

    @property
    def invoices(self) -> tuple[InvoiceOutcome, ...]:
        """What became of each invoice of the month (its id, customer, total, action)."""
        return self.outcomes

    def refusal(self) -> MeterctlError | None:
        """See RatingResult.refusal: customers left unpriced, or no invoice at all."""
        return self.rating.refusal(len(self.outcomes), "no invoices")


def _in_force(stored: list[StoredInvoice], start: date, end: date) -> tuple[StoredInvoice | None, StoredInvoice | None]:
    """The finalized invoice a new one for [start, end) would replace, and its draft.

    Any finalized invoice whose period overlaps counts, not only one with the same start: if
    a subscription's start date is corrected, the period moves, and the new invoice must
    supersede the old one rather than bill the month a second time.
    """
    overlapping = [row for row in stored if row.period_start < end and row.period_end > start]
    replaced = {row.supersedes for row in overlapping if row.status == "finalized" and row.supersedes}
    finals = [row for row in overlapping if row.status == "finalized" and row.invoice_id not in replaced]
    latest = max(finals, key=lambda row: row.number_order or 0) if finals else None
    draft = next((row for row in overlapping if row.status == "draft" and row.period_start == start), None)
    return latest, draft


def _refuse_open_periods(lines: Sequence[RatedLine], now: datetime) -> None:
    """Checked before the rating run is recorded: a refused command writes nothing."""
    still_open = sorted({(line.customer_id, line.period_start, line.period_end) for line in lines
                         if line.window_end > now})
    if still_open:
        shown = ", ".join(f"{c} [{start}, {end})" for c, start, end in still_open[:3])
        shown += f" and {len(still_open) - 3} more" if len(still_open) > 3 else ""
        raise DataError(f"cannot finalize {len(still_open)} invoice(s) whose billing period has not ended yet: {shown}; "
                        "build drafts now (without ", Param("finalize"), ") and finalize once the period is over")


def build_invoices(
    events: EventStore,
    ledger: Ledger,
    catalog: Catalog,
    meters: Sequence[Meter],
    period: str,
    *,
    customers: Sequence[str] | None = None,
    finalize: bool = False,
    now: datetime | None = None,
    ignored: Sequence[str] = (),
    taxes: Mapping[str, Tax] | None = None,
    payment_terms_days: int = 30,
) -> InvoiceRun:
    """Invoices for every billing period ending in month `period` (YYYY-MM)."""
    from meterctl.rating.month import price_month
    from meterctl.rating.record import record_month
    from meterctl.wallets import InvoiceCrediting, plan_grants

    now = now or datetime.now(UTC)
    # A run that `meterctl rate` (or an earlier invoice run) recorded from the very same
    # inputs is used as it is: its lines are these lines, stored once.
    priced = price_month(events, ledger, catalog, meters, period, customers=customers, reuse_recorded=True,
                         ignored=ignored)
    if finalize:
        _refuse_open_periods(priced.lines, now)
    rating = record_month(ledger, meters, priced, reuse_identical=True)
    year = month_bounds(period)[0].year
    versions = {c.customer_id: c for c in ledger.latest_customers()}
    rates = customer_tax_rates(versions.values(), taxes or {})
    groups: dict[tuple[str, date], list[tuple[int, RatedLine]]] = {}
    for number, line in enumerate(rating.lines, 1):
        groups.setdefault((line.customer_id, line.period_start), []).append((number, line))
    still_open = {key for key, numbered in groups.items() if max(line.window_end for _, line in numbered) > now}
    outcomes: list[InvoiceOutcome] = []
    changes = InvoiceChanges()
    with ledger.transaction():
        stored_all = ledger.stored_invoices([customer for customer, _ in groups])
        plan_grants(ledger, _plan_segments(groups, catalog), now)  # what the plans include, once per period
        wallets = InvoiceCrediting(ledger, sorted({customer for customer, _ in groups}), now)
        # Numbers are handed out in customer order, inside the transaction: gap-free.
        last_seq = ledger.last_invoice_number(year)
        for (customer_id, period_start), numbered in sorted(groups.items()):
            lines = [line for _, line in numbered]
            first = lines[0]
            latest_final, draft = _in_force(stored_all.get(customer_id, []), period_start, first.period_end)
            replaces = latest_final.invoice_id if latest_final else None
            period_end_at, minor, credits, taxed, totals, digest = _content(
                wallets, lines, replaces, rates.get(customer_id, ()), catalog.get(first.plan, first.version).book.rounding)
            if latest_final is not None and latest_final.content_hash == digest and latest_final.period_start == period_start:
                if draft is not None:  # its content went back to the finalized revision's: it has nothing to say
                    changes.drafts_to_delete.append(draft.invoice_id)
                outcomes.append(InvoiceOutcome(latest_final.invoice_id, customer_id, period_start, first.period_end,
                                               latest_final.revision, "unchanged", "finalized", latest_final.number,
                                               first.currency, latest_final.total_minor, None))
                continue
            revision = latest_final.revision + 1 if latest_final else 1
            new_id = invoice_id(customer_id, period_start, revision)
            # Minor units of two currencies do not subtract: after a currency correction the
            # revision has no delta.
            delta = (totals.total_minor - latest_final.total_minor
                     if latest_final and latest_final.currency == first.currency else None)
            customer = versions[customer_id]
            # A draft is kept only if nothing on it would change: content, and the customer's details.
            if draft is not None and draft.content_hash == digest and draft.customer_version == customer.version:
                action = "unchanged"
            else:
                if draft is not None:
                    changes.drafts_to_delete.append(draft.invoice_id)
                changes.invoices.append(NewInvoice(
                    invoice_id=new_id, customer_id=customer_id, customer_version=customer.version,
                    customer_name=customer.name, currency=first.currency, timezone=first.timezone,
                    period_start=first.period_start, period_end=first.period_end, revision=revision,
                    supersedes=latest_final.invoice_id if latest_final else None, delta_minor=delta,
                    content_hash=digest, billed_until=max(line.segment_end for line in lines), totals=totals,
                    credits=credits, grants_left=wallets.left(credits), taxes=taxed,
                ))
                changes.lines.extend((new_id, number) for number, _ in numbered)
                action = "regenerated" if draft is not None else ("revised" if latest_final else "created")
            status, number_text = "draft", None
            if finalize:
                last_seq += 1
                number_text = f"INV-{year}-{last_seq:06d}"
                issued = now.astimezone(ZoneInfo(first.timezone)).date()
                terms = customer.details.get("payment_terms_days", payment_terms_days)
                changes.finalized.append(Numbered(new_id, number_text, year, last_seq, issued,
                                                  issued + timedelta(days=terms)))
                # The wallet's debits land with the number, in this transaction.
                changes.wallet_entries += wallets.finalized(new_id, customer_id, minor, period_end_at, credits, replaces)
                # "revised" says a finalized invoice was replaced by this run's new content;
                # finalizing a revision drafted earlier is just "finalized".
                status, action = "finalized", ("revised" if latest_final and action != "unchanged" else "finalized")
            outcomes.append(InvoiceOutcome(new_id, customer_id, period_start, first.period_end, revision, action, status,
                                           number_text, first.currency, totals.total_minor, delta,
                                           (customer_id, period_start) in still_open))
        changes.drafts_to_delete.extend(_orphan_drafts(ledger, period, customers, set(groups)))
        ledger.apply_invoice_changes(changes, rating.run_id or 0, now)
    return InvoiceRun(period, rating, tuple(outcomes))


class _Content(NamedTuple):
    period_end_at: datetime
    minor_units: int
    credits: tuple[InvoiceCredit, ...]
    taxes: tuple[InvoiceTax, ...]
    totals: Totals
    digest: str


TaxRates = Sequence[tuple[str, str, Decimal]]  # (code, name, rate) a customer pays, in its order


def customer_tax_rates(customers: Iterable[CustomerVersion], taxes: Mapping[str, Tax]) -> dict[str, TaxRates]:
    """Each customer's taxes from taxes.yaml (none for a reverse-charge customer); a code
    taxes.yaml lacks stops the run before anything is written (exit 78)."""
    from meterctl.billing_terms import unknown_tax_codes
    from meterctl.config_yaml import ConfigProblems

    named = {c.customer_id: tuple(c.details.get("taxes", ())) for c in customers
             if c.details.get("taxes") and c.details.get("tax_exempt") != "reverse_charge"}
    sources = {c.customer_id: c.source for c in customers}
    problems = [problem for customer_id, codes in named.items()
                for problem in unknown_tax_codes({customer_id: codes}, dict(taxes), sources[customer_id])]
    if problems:
        raise ConfigProblems(problems)
    return {customer_id: tuple((code, taxes[code].name, taxes[code].rate) for code in codes)
            for customer_id, codes in named.items()}


def _content(wallets: InvoiceCrediting, lines: Sequence[RatedLine], replaces: str | None, rates: TaxRates,
             rounding: Rounding) -> _Content:
    """What an invoice of these lines (one customer × period) holds: the credits it takes
    (by where the wallet stands at the period's end, local midnight), the taxes on what is
    left to pay, totals and content hash."""
    first = lines[0]
    period_end_at = datetime.combine(first.period_end, time(), ZoneInfo(first.timezone))
    minor = minor_units(first.currency)
    payable = [PayableLine(n, line.kind, line.meter, line.segment_start, line.amount_minor)
               for n, line in enumerate(lines, 1)]
    credits = wallets.apply(first.customer_id, first.currency, minor, period_end_at, payable, replaces)
    taxes = invoice_taxes(taxable_minor(lines, credits), rates, minor, rounding) if rates else ()
    totals = invoice_totals(lines, credits, taxes)
    return _Content(period_end_at, minor, credits, taxes, totals, content_hash(lines, totals, credits, taxes))


class DueRevision(NamedTuple):
    """A finalized invoice that the events stored now would change: the revision it calls for."""

    replaces: StoredInvoice
    customer_id: str
    period_start: date
    total_minor: int
    delta_minor: int | None  # None when the currency changed (minor units of two currencies do not subtract)


def due_revisions(events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], period: str,
                  customers: Sequence[str], now: datetime,
                  taxes: Mapping[str, Tax] | None = None) -> tuple[DueRevision, ...]:
    """The finalized invoices of these customers' periods ending in the month whose content the
    stored events would change (what `invoice` would revise), worked out as `invoice` would,
    writing nothing."""
    from meterctl.rating.month import price_month
    from meterctl.wallets import InvoiceCrediting

    priced = price_month(events, ledger, catalog, meters, period, customers=customers, tally=False)
    groups: dict[tuple[str, date], list[RatedLine]] = {}
    for line in priced.lines:
        groups.setdefault((line.customer_id, line.period_start), []).append(line)
    stored_all = ledger.stored_invoices(sorted({customer for customer, _ in groups}))
    wallets = InvoiceCrediting(ledger, sorted({customer for customer, _ in groups}), now, record=False)
    rates = customer_tax_rates([c for c in ledger.latest_customers() if c.customer_id in customers], taxes or {})
    due: list[DueRevision] = []
    for (customer_id, period_start), lines in sorted(groups.items()):
        latest_final, _ = _in_force(stored_all.get(customer_id, []), period_start, lines[0].period_end)
        if latest_final is None:
            continue
        first = lines[0]
        content = _content(wallets, lines, latest_final.invoice_id, rates.get(customer_id, ()),
                           catalog.get(first.plan, first.version).book.rounding)
        if latest_final.content_hash == content.digest and latest_final.period_start == period_start:
            continue
        delta = (content.totals.total_minor - latest_final.total_minor
                 if latest_final.currency == lines[0].currency else None)
        due.append(DueRevision(latest_final, customer_id, period_start, content.totals.total_minor, delta))
    return tuple(due)


def _plan_segments(groups: dict[tuple[str, date], list[tuple[int, RatedLine]]], catalog: Catalog) -> list[PlanSegment]:
    """Each segment of the run's invoices on a plan version that includes credits."""
    from meterctl.wallets import PlanSegment

    found: dict[tuple[str, date, str, date], PlanSegment] = {}
    for (customer_id, period_start), numbered in sorted(groups.items()):
        for _, line in numbered:
            key = (customer_id, period_start, line.pricebook, line.segment_start)
            if key in found:
                continue
            book = catalog.get(line.plan, line.version)
            if book.book.credits:
                found[key] = PlanSegment(customer_id, line.currency, line.timezone, line.period_start, line.period_end,
                                         line.segment_start, line.plan, book.ref, book.book.credits)
    return list(found.values())


def _orphan_drafts(ledger: Ledger, period: str, customers: Sequence[str] | None,
                   produced: set[tuple[str, date]]) -> list[str]:
    """Drafts for periods ending in the month that this run no longer produces (the customer's
    billing or subscriptions changed): left alone, they would be exported beside the right ones."""
    month_start, month_end = month_bounds(period)
    return [invoice for invoice, customer, start in ledger.drafts_billed_in(month_start, month_end, customers)
            if (customer, start) not in produced]


# ---------------------------------------------------------------- reading


def list_invoices(
    ledger: Ledger,
    *,
    period: str | None = None,
    customers: Sequence[str] | None = None,
    status: str | None = None,
    current_only: bool = False,
    with_lines: bool = False,
    revision_status: str | None = None,
) -> tuple[Invoice, ...]:
    """Invoices by customer, then period and revision. `period` (YYYY-MM) selects the invoices
    billed in that month (the period, or its subscription, ends in it);
    `current_only` keeps the latest revision of each customer × period (of `revision_status`
    when given: `finalized` gives what was last sent, even while a new draft waits)."""
    month = month_bounds(period) if period is not None else (None, None)
    invoices = ledger.invoices(InvoiceFilter(month[0], month[1], tuple(customers) if customers else None,
                                             revision_status, current_only))
    if status is not None:
        invoices = tuple(i for i in invoices if i.status == status)
    return ledger.with_lines(invoices) if with_lines else invoices


def get_invoice(ledger: Ledger, reference: str) -> Invoice:
    """An invoice by id (cus_1-20261001-r1) or number (INV-2026-000001), with its lines."""
    found = ledger.invoice(reference)
    if found is None:
        raise NotFoundError(f"no invoice '{reference}' (see 'meterctl invoice list')")
    return ledger.with_lines([found])[0]
