"""Auditing an invoice: `explain` walks it back to events, `verify` derives it again.

explain: invoice → line → the rated record it was copied from (rating run, line, tiers,
exact amount) → the usage window and the meter definition used by that run → the events
that the meter selects in that window, each with the file and line it was ingested from.

verify: re-rates the invoice's customer and period from the stored events that its rating
run saw (those ingested by then), with the pricebook snapshots frozen in the ledger (not
the files, which may have moved on), the meter definitions recorded by the run and the
customer version the invoice was billed from; then compares content. Events ingested
later are counted and reported, not mixed in: they are what a new revision is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meterctl.credits import Grant, PayableLine, apply_credits, burn_order, exact
from meterctl.customers import history
from meterctl.errors import DataError, Param, UsageError
from meterctl.invoices import (
    Invoice,
    InvoiceCredit,
    InvoiceLine,
    content_hash,
    invoice_taxes,
    invoice_totals,
    taxable_minor,
)
from meterctl.invoicing import get_invoice
from meterctl.meters import Meter
from meterctl.pricebook import Catalog, PricebookVersion, pricebook_from_text
from meterctl.pricing import text
from meterctl.rating.lines import RatedLine
from meterctl.rating.plan import plan_jobs
from meterctl.rating.price import price_jobs
from meterctl.rating.scope import event_names
from meterctl.store.ports import EventStore, Ledger, LineEventQuery, StoredRun, TracedEvent


@dataclass(frozen=True)
class ExplainedLine:
    line: InvoiceLine
    rating_run_id: int
    rated_line_no: int
    meter: dict[str, Any] | None  # the meter definition as recorded by the rating run
    event_count: int | None  # events selected by the meter in the window (None for fees)
    events: tuple[TracedEvent, ...] = ()
    later_events: int = 0  # selected now, but ingested after the line was rated (a later revision's)
    credits: tuple[tuple[int, Grant], ...] = ()  # (applied minor units, the grant) that paid this line


@dataclass(frozen=True)
class Explanation:
    invoice: Invoice
    lines: tuple[ExplainedLine, ...]


def _run(ledger: Ledger, run_id: int) -> StoredRun:
    run = ledger.run(run_id)
    if run is None:
        raise DataError(f"rating run {run_id} is missing from the store")
    return run


def explain(
    events: EventStore,
    ledger: Ledger,
    reference: str,
    *,
    line_no: int | None = None,
    with_events: bool = False,
    limit: int | None = 1000,
) -> Explanation:
    """An invoice's lines traced back to rated records, usage windows and events."""
    invoice = get_invoice(ledger, reference)
    lines = invoice.lines
    if line_no is not None:
        lines = tuple(line for line in lines if line.line_no == line_no)
        if not lines:
            raise UsageError(Param("line"), f": invoice {reference} has lines 1 to {len(invoice.lines)}, not {line_no}")
    runs: dict[int, StoredRun] = {}
    explained = []
    grants = {g.grant_id: g for g in ledger.wallet_grants([invoice.customer_id])} if invoice.credits else {}
    for line in lines:
        if line.rating_run_id not in runs:
            runs[line.rating_run_id] = _run(ledger, line.rating_run_id)
        run = runs[line.rating_run_id]
        definition = next((m for m in run.meters if m["name"] == line.meter), None) if line.meter else None
        count: int | None = None
        traced: tuple[TracedEvent, ...] = ()
        later = 0
        if definition is not None:
            # The events as the rating run saw them; those ingested since belong to a later revision.
            query = LineEventQuery(Meter.model_validate(definition), invoice.customer_id, line.window_start,
                                   line.window_end, line.dimensions, run.as_of_batch)
            count, now, traced = events.line_events(query, limit=limit, with_events=with_events)
            later = now - count
        paid = tuple((c.applied_minor, grants[c.grant_id]) for c in invoice.credits
                     if c.line_no == line.line_no and c.grant_id in grants)
        explained.append(ExplainedLine(line, line.rating_run_id, line.rated_line_no, definition, count, traced, later,
                                       paid))
    return Explanation(invoice, tuple(explained))


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Difference:
    line: str  # what the line is: "usage tokens model=gpt-large 2026-10-01"
    field: str
    stored: str
    derived: str


@dataclass(frozen=True)
class Verification:
    invoice_id: str
    identical: bool
    stored_hash: str
    derived_hash: str
    stored_total_minor: int
    derived_total_minor: int
    differences: tuple[Difference, ...]
    later_events: int = 0  # metered events of the period ingested after it was rated
    superseded_by: str | None = None

    def refusal(self) -> DataError | None:
        """A derived invoice that differs is exit 65 for a caller that acts on it."""
        return None if self.identical else DataError(f"{self.invoice_id}: differs from what the stored events give now")


def _snapshot_catalog(ledger: Ledger, invoice: Invoice, meters: list[Meter]) -> Catalog:
    """The frozen snapshots of the versions the invoice's rating run priced with (a run from
    before those were recorded: the versions its lines name)."""
    refs = ledger.run_pricebooks(invoice.rating_run_id) or sorted({(line.plan, line.version) for line in invoice.lines})
    versions: list[PricebookVersion] = []
    for plan, version in refs:
        snapshot = ledger.pricebook_snapshot(plan, version)
        if snapshot is None:
            raise DataError(f"pricebook {plan}@{version} has no stored snapshot: the store was changed by hand")
        source_text, path, stored_hash = snapshot
        book = pricebook_from_text(source_text, f"{path} (snapshot of {plan}@{version})", meters)
        if book.content_hash != stored_hash:
            raise DataError(f"the stored snapshot of {plan}@{version} does not match its hash: the store was changed by hand")
        versions.append(book)
    return Catalog(tuple(versions))


def _key(kind: str, name: str, meter: str | None, dims: dict[str, str | None], segment_start: object) -> str:
    dims_text = " ".join(f"{k}={v}" for k, v in sorted(dims.items()))
    return " ".join(part for part in (kind, name if kind == "fee" else meter or name, dims_text, str(segment_start)) if part)


@exact
def _credits_again(ledger: Ledger, invoice: Invoice, derived: Sequence[RatedLine]) -> tuple[InvoiceCredit, ...]:
    """The credits the invoice's grants, holding what they held when it was built (what they
    paid it plus what they had left after), give the derived lines, by the same rules."""
    if not invoice.credits:
        return ()
    used = {credit.grant_id for credit in invoice.credits}
    grants = burn_order(g for g in ledger.wallet_grants([invoice.customer_id]) if g.grant_id in used)
    unit = Decimal(1).scaleb(-invoice.minor_units)
    held = {grant_id: left + sum(c.applied_minor for c in invoice.credits if c.grant_id == grant_id) * unit
            for grant_id, left in invoice.grants_left.items()}
    lines = [PayableLine(n, line.kind, line.meter, line.segment_start, line.amount_minor)
             for n, line in enumerate(derived, 1)]
    return tuple(InvoiceCredit(a.grant_id, a.name, a.line_no, a.applied_minor)
                 for a in apply_credits(lines, grants, held, invoice.minor_units))


def _shown(credits: Sequence[InvoiceCredit]) -> str:
    return "; ".join(f"{c.grant_id} line {c.line_no}: {c.applied_minor}" for c in credits) or "none"


def verify(events: EventStore, ledger: Ledger, reference: str) -> Verification:
    invoice = get_invoice(ledger, reference)
    run = _run(ledger, invoice.rating_run_id)
    meters = [Meter.model_validate(m) for m in run.meters]
    catalog = _snapshot_catalog(ledger, invoice, meters)
    versions = history(ledger.customer_history(invoice.customer_id), invoice.customer_id)
    customer = next((c for c in versions if c.version == invoice.customer_version), None)
    if customer is None:
        raise DataError(f"customer {invoice.customer_id} version {invoice.customer_version} is missing from the store")
    # The month the invoice's run rated: a period cut short by the end of a subscription is
    # billed in the month it was cut, not in the month of its nominal end.
    jobs = [job for job in plan_jobs([customer], catalog, run.period) if job.segment.period.start == invoice.period_start]
    # From the events the invoice's rating saw: the invoice as it was must come out again.
    derived, _ = price_jobs(events, jobs, meters, as_of_batch=run.as_of_batch)
    credits = _credits_again(ledger, invoice, derived)
    # The taxes at the rates the invoice applied (taxes.yaml may have changed since).
    rates = [(t.code, t.name, t.rate) for t in invoice.taxes]
    rounding = catalog.get(derived[0].plan, derived[0].version).book.rounding if derived else "half_up"
    taxes = invoice_taxes(taxable_minor(derived, credits), rates, invoice.minor_units, rounding) if rates else ()
    totals = invoice_totals(derived, credits, taxes)
    digest = content_hash(derived, totals, credits, taxes)
    differences: list[Difference] = []
    if credits != invoice.credits:
        differences.append(Difference("invoice", "credits", _shown(invoice.credits), _shown(credits)))
    if taxes != invoice.taxes:
        differences.append(Difference("invoice", "taxes", "; ".join(f"{t.code} {t.amount_minor}" for t in invoice.taxes),
                                      "; ".join(f"{t.code} {t.amount_minor}" for t in taxes)))
    stored = {_key(line.kind, line.name, line.meter, dict(line.dimensions), line.segment_start): line for line in invoice.lines}
    fresh = {_key(line.kind, line.name, line.meter, dict(line.dimensions), line.segment_start): line for line in derived}
    for key in sorted(set(stored) | set(fresh)):
        a, b = stored.get(key), fresh.get(key)
        if a is None or b is None:
            differences.append(Difference(key, "line", "absent" if a is None else "present", "absent" if b is None else "present"))
            continue
        for field, x, y in (("quantity", text(a.quantity), text(b.quantity)), ("precise_amount", a.precise_amount, b.precise_amount),
                            ("amount_minor", str(a.amount_minor), str(b.amount_minor)), ("pricebook", a.pricebook, b.pricebook)):
            if x != y:
                differences.append(Difference(key, field, x, y))
    if totals.total_minor != invoice.total_minor:
        differences.append(Difference("invoice", "total_minor", str(invoice.total_minor), str(totals.total_minor)))
    later = 0
    if jobs:
        later = events.count_later_events(invoice.customer_id, run.as_of_batch, event_names(meters),
                                          min(j.start_at for j in jobs), max(j.end_at for j in jobs))
    return Verification(invoice.invoice_id, digest == invoice.content_hash and not differences, invoice.content_hash, digest,
                        invoice.total_minor, totals.total_minor, tuple(differences), later, invoice.superseded_by)
