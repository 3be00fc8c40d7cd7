"""Invoices as meterctl keeps them: one per customer per billing period, in revisions.

Totals are integer minor units: subtotal = Σ rounded lines; total = subtotal − credits +
tax, never below zero (credits and tax are zero until wallets and tax exist). The content
hash covers the lines and totals, so an unchanged invoice is recognised whenever and
wherever it is derived again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from meterctl import pricing
from meterctl.canonical_json import compact, json_object
from meterctl.credits import NewEntry
from meterctl.rating.lines import RatedLine

# Line fields that identify a line's content (not where or when it was computed).
CONTENT_SKIP = ("customer_id", "currency", "timezone", "period_start", "period_end", "unmeterable")


@dataclass(frozen=True)
class InvoiceLine:
    line_no: int
    rating_run_id: int
    rated_line_no: int
    kind: str  # fee | usage | minimum | maximum
    name: str
    meter: str | None
    plan: str
    version: int
    pricebook_hash: str
    segment_start: date
    segment_end: date
    window_start: datetime  # the usage window behind the line (UTC)
    window_end: datetime
    dimensions: Mapping[str, str | None]
    quantity: Decimal
    unit_price: Decimal | None
    tiers: tuple[Mapping[str, Any], ...]  # the tier breakdown as stored: decimals as text
    proration: str | None
    precise_amount: str
    amount: Decimal  # at the currency's scale (1.10; 2 for yen)
    amount_minor: int
    unmeterable: int

    @property
    def pricebook(self) -> str:
        return f"{self.plan}@{self.version}"


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    customer_id: str
    customer_version: int
    customer_name: str
    currency: str
    timezone: str
    period_start: date
    period_end: date
    revision: int
    status: str  # draft | finalized | superseded
    number: str | None
    supersedes: str | None
    superseded_by: str | None
    rating_run_id: int
    subtotal_minor: int
    credits_minor: int
    tax_minor: int
    total_minor: int
    delta_minor: int | None
    content_hash: str
    created_at: datetime
    finalized_at: datetime | None
    supersedes_number: str | None = None  # the number of the finalized invoice this one replaces
    issue_date: date | None = None  # the day it was finalized, in its time zone (None: a draft)
    due_date: date | None = None  # the issue date plus the payment terms then
    lines: tuple[InvoiceLine, ...] = ()
    credits: tuple[InvoiceCredit, ...] = ()  # which grant paid which line (read with the lines)
    grants_left: Mapping[str, Decimal] = field(default_factory=dict)  # what each grant held after it
    taxes: tuple[InvoiceTax, ...] = ()  # per tax code (read with the lines)

    def credits_by_grant(self) -> list[tuple[str, str, int]]:
        """(grant_id, name, applied_minor) per grant, in the order the grants first paid."""
        names: dict[str, str] = {}
        applied: dict[str, int] = {}
        for credit in self.credits:
            names.setdefault(credit.grant_id, credit.name)
            applied[credit.grant_id] = applied.get(credit.grant_id, 0) + credit.applied_minor
        return [(grant_id, names[grant_id], applied[grant_id]) for grant_id in names]

    def line_credits(self) -> dict[int, int]:
        """Credits applied to each line, by line number."""
        paid: dict[int, int] = {}
        for credit in self.credits:
            paid[credit.line_no] = paid.get(credit.line_no, 0) + credit.applied_minor
        return paid

    @property
    def minor_units(self) -> int:
        return pricing.minor_units(self.currency)

    @property
    def pricebooks(self) -> tuple[str, ...]:
        return tuple(sorted({line.pricebook for line in self.lines}))


@dataclass(frozen=True)
class InvoiceOutcome:
    invoice_id: str
    customer_id: str
    period_start: date
    period_end: date
    revision: int
    action: str  # created | regenerated | unchanged | revised | finalized
    status: str
    number: str | None
    currency: str
    total_minor: int
    delta_minor: int | None
    period_open: bool = False  # the billing period has not ended: usage may still grow


def invoice_id(customer_id: str, period_start: date, revision: int) -> str:
    return f"{customer_id}-{period_start:%Y%m%d}-r{revision}"


class InvoiceCredit(NamedTuple):
    """Credits of one grant paying one line of an invoice."""

    grant_id: str
    name: str
    line_no: int
    applied_minor: int


class InvoiceTax(NamedTuple):
    """One tax of an invoice: its rate applied once to the taxed lines' net after credits."""

    code: str
    name: str
    rate: Decimal
    taxable_minor: int
    amount_minor: int

    def document(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "rate": pricing.text(self.rate),
                "taxable_minor": self.taxable_minor, "amount_minor": self.amount_minor}


def invoice_taxes(taxable_minor: int, rates: Sequence[tuple[str, str, Decimal]], minor_units: int,
                  rounding: pricing.Rounding) -> tuple[InvoiceTax, ...]:
    """Per tax code: round(taxable × rate) once, at the currency's minor units, with the
    pricebook's rounding mode (several codes add: GST 5% + QST 9.975% of 100.00 are 5.00 + 9.98)."""
    taxable = Decimal(taxable_minor).scaleb(-minor_units)
    found = []
    for code, name, rate in rates:
        amount = pricing.round_amount(taxable * rate, minor_units, rounding)
        found.append(InvoiceTax(code, name, rate, taxable_minor, pricing.to_minor_units(amount, minor_units)))
    return tuple(found)


class Totals(NamedTuple):
    subtotal_minor: int
    credits_minor: int
    tax_minor: int
    total_minor: int

    def document(self) -> dict[str, int]:
        return {"subtotal_minor": self.subtotal_minor, "credits_minor": self.credits_minor,
                "tax_minor": self.tax_minor, "total_minor": self.total_minor}


def invoice_totals(lines: Sequence[RatedLine], credits: Sequence[InvoiceCredit] = (),
                   taxes: Sequence[InvoiceTax] = ()) -> Totals:
    """subtotal = Σ rounded lines; total = subtotal − credits (never below zero) + tax."""
    subtotal = sum(line.amount_minor for line in lines)
    applied = sum(credit.applied_minor for credit in credits)
    tax = sum(t.amount_minor for t in taxes)
    return Totals(subtotal, applied, tax, max(subtotal - applied, 0) + tax)


def taxable_minor(lines: Sequence[RatedLine], credits: Sequence[InvoiceCredit]) -> int:
    """What the taxes apply to: every line's net after the credits it took (never below zero)."""
    return max(sum(line.amount_minor for line in lines) - sum(c.applied_minor for c in credits), 0)


def content_hash(lines: Sequence[RatedLine], totals: Totals, credits: Sequence[InvoiceCredit] = (),
                 taxes: Sequence[InvoiceTax] = ()) -> str:
    """sha256 of {"lines": [each line's canonical JSON without CONTENT_SKIP], **totals}, sorted keys
    (and "credits", which grant paid which line, when any did; "taxes" when any apply)."""
    fields = {key: compact(value) for key, value in totals.document().items()}
    if credits:
        fields["credits"] = compact([list(credit) for credit in credits])
    if taxes:
        fields["taxes"] = compact([[t.code, t.name, pricing.text(t.rate), t.taxable_minor, t.amount_minor]
                                   for t in taxes])
    document = json_object({"lines": "[" + ",".join([line.canonical_json(CONTENT_SKIP) for line in lines]) + "]",
                            **fields})
    return hashlib.sha256(document.encode()).hexdigest()


class StoredInvoice(NamedTuple):
    """What an invoice run needs to know of an invoice already stored."""

    invoice_id: str
    revision: int
    status: str
    content_hash: str
    total_minor: int
    number: str | None
    customer_version: int
    period_start: date
    period_end: date
    supersedes: str | None
    number_order: int | None  # year and sequence as one sortable number
    currency: str


class NewInvoice(NamedTuple):
    """A draft revision an invoice run writes."""

    invoice_id: str
    customer_id: str
    customer_version: int
    customer_name: str
    currency: str
    timezone: str
    period_start: date
    period_end: date
    revision: int
    supersedes: str | None
    delta_minor: int | None
    content_hash: str
    billed_until: date  # end of the last billed day: the period's end, or the end of a subscription that stopped inside it
    totals: Totals
    credits: tuple[InvoiceCredit, ...] = ()
    grants_left: Mapping[str, Decimal] = {}  # what each grant used held after this invoice (not content)
    taxes: tuple[InvoiceTax, ...] = ()


class LineMismatch(NamedTuple):
    """An invoice line and the rated line it was copied from that do not agree."""

    invoice: str  # its number, or its id while a draft
    line_no: int | None  # the invoice line (None: a rated line on no invoice line)
    rated_line_no: int
    run_id: int
    problem: str  # "no rated line", "on no invoice line" or "differs"


class Numbered(NamedTuple):
    """A draft finalized by an invoice run: its number, gap-free within the year, the day it
    is issued and the day it is due."""

    invoice_id: str
    number: str
    year: int
    sequence: int
    issue_date: date | None = None
    due_date: date | None = None


@dataclass
class InvoiceChanges:
    """What one invoice run writes, decided first and then applied in a few statements."""

    drafts_to_delete: list[str] = field(default_factory=list)
    invoices: list[NewInvoice] = field(default_factory=list)
    lines: list[tuple[str, int]] = field(default_factory=list)  # (invoice_id, rated line_no in the run)
    finalized: list[Numbered] = field(default_factory=list)
    wallet_entries: list[NewEntry] = field(default_factory=list)  # debits and reversals of finalized revisions
