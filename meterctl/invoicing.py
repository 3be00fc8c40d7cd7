"""Rated lines → invoices: one per customer per billing period, in revisions.

`build_invoices` rates the month afresh (so an invoice always reflects the events stored
now; when the latest rating run of the month already holds these very lines from the same
events and meters, that run is used rather than recorded again), then for each customer ×
period compares the new content with what is stored:

- same content as the latest finalized revision: nothing to do (`unchanged`);
- a draft exists: it is regenerated in place (`regenerated`), or kept if equal;
- otherwise a new draft revision is written (`created`, or `revised` when it supersedes a
  finalized revision: late events never change a finalized invoice).

`finalize=True` then finalizes the drafts: each gets the next number of the year of the
period's end (INV-2026-000042: sequential, gap-free, never reused, since finalized rows are
never deleted) and is immutable from then on.

Totals are integer minor units: subtotal = Σ rounded lines; total = subtotal − credits +
tax, never below zero (credits and tax are zero until wallets and tax exist).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

import duckdb

from meterctl import pricing, sql
from meterctl.canonical_json import compact, json_object
from meterctl.cycles import month_bounds
from meterctl.errors import DataError, NotFoundError

if TYPE_CHECKING:
    # Rating (with pydantic and the pricebook models) is imported when invoices are
    # built, not when they are only read: list, show and export start faster without it.
    from meterctl.meters import Meter
    from meterctl.pricebook import Catalog
    from meterctl.rating import RatedLine, RatingResult

_ISO = "%Y-%m-%dT%H:%M:%SZ"
# Line fields that identify a line's content (not where or when it was computed).
_CONTENT_SKIP = ("customer_id", "currency", "timezone", "period_start", "period_end", "unmeterable")


@dataclass(frozen=True)
class InvoiceLine:
    line_no: int
    rating_run_id: int
    rated_line_no: int
    kind: str
    name: str
    meter: str | None
    plan: str
    version: int
    pricebook_hash: str
    segment_start: date
    segment_end: date
    window_start: str
    window_end: str
    dimensions: dict[str, str | None]
    quantity: Decimal
    unit_price: Decimal | None
    tiers: list[dict]
    proration: str | None
    precise_amount: str
    amount: Decimal
    amount_minor: int
    unmeterable: int

    @property
    def pricebook(self) -> str:
        return f"{self.plan}@{self.version}"


_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(InvoiceLine))


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
    created_at: str
    finalized_at: str | None
    supersedes_number: str | None = None  # the number of the finalized invoice this one replaces
    lines: tuple[InvoiceLine, ...] = ()

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


@dataclass(frozen=True)
class InvoiceRun:
    period: str
    rating: RatingResult
    outcomes: tuple[InvoiceOutcome, ...]


def invoice_id(customer_id: str, period_start: date, revision: int) -> str:
    return f"{customer_id}-{period_start:%Y%m%d}-r{revision}"


def content_hash(lines: Sequence[RatedLine], totals: dict) -> str:
    """sha256 of {"lines": [each line's canonical JSON without _CONTENT_SKIP], **totals}, sorted keys."""
    document = json_object({"lines": "[" + ",".join([line.canonical_json(_CONTENT_SKIP) for line in lines]) + "]",
                            **{key: compact(value) for key, value in totals.items()}})
    return hashlib.sha256(document.encode()).hexdigest()


def invoice_totals(lines: Sequence[RatedLine]) -> dict:
    subtotal = sum(line.amount_minor for line in lines)
    credits = 0
    tax = 0
    return {"subtotal_minor": subtotal, "credits_minor": credits, "tax_minor": tax,
            "total_minor": max(subtotal - credits, 0) + tax}


class _StoredInvoice(NamedTuple):
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


def _stored(con: duckdb.DuckDBPyConnection, customers: Sequence[str]) -> dict[str, list[_StoredInvoice]]:
    """Every stored invoice of these customers, oldest revision first, in one query."""
    found: dict[str, list[_StoredInvoice]] = {}
    if not customers:
        return found
    rows = con.execute(
        "SELECT customer_id, invoice_id, revision, status, content_hash, total_minor, number, customer_version, "
        "period_start, period_end, supersedes, CAST(number_year AS BIGINT) * 10000000 + number_seq, currency FROM invoices "
        "WHERE list_contains($customers, customer_id) ORDER BY revision, number_year, number_seq",
        {"customers": sorted(set(customers))},
    ).fetchall()
    for row in rows:
        found.setdefault(row[0], []).append(_StoredInvoice(*row[1:]))
    return found


def _in_force(stored: list[_StoredInvoice], start: date, end: date) -> tuple[_StoredInvoice | None, _StoredInvoice | None]:
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


_LINE_COLUMNS = (
    "invoice_id, line_no, rating_run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, "
    "segment_start, segment_end, window_start, window_end, dimensions, quantity, unit_price, tiers, proration, "
    "precise_amount, amount, amount_minor, unmeterable"
)


# The columns of _Changes.invoices rows, typed for the temporary table they are inserted from.
_NEW_INVOICE_TYPES = {
    "invoice_id": "VARCHAR", "customer_id": "VARCHAR", "customer_version": "INTEGER", "customer_name": "VARCHAR",
    "currency": "VARCHAR", "timezone": "VARCHAR", "period_start": "DATE", "period_end": "DATE", "revision": "INTEGER",
    "supersedes": "VARCHAR", "delta_minor": "BIGINT", "content_hash": "VARCHAR", "billed_until": "DATE",
    "subtotal_minor": "BIGINT", "credits_minor": "BIGINT", "tax_minor": "BIGINT", "total_minor": "BIGINT",
}


@dataclass
class _Changes:
    """What one invoice run writes, decided in Python and then applied in a few statements."""

    drafts_to_delete: list[str] = dataclasses.field(default_factory=list)
    invoices: list[dict] = dataclasses.field(default_factory=list)
    lines: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # (invoice_id, rated line_no)
    finalized: list[tuple[str, str, int, int]] = dataclasses.field(default_factory=list)  # (id, number, year, seq)

    def apply(self, con: duckdb.DuckDBPyConnection, run_id: int, now: datetime) -> None:
        if self.drafts_to_delete:
            params = {"ids": self.drafts_to_delete}
            con.execute("DELETE FROM invoice_lines WHERE list_contains($ids, invoice_id)", params)
            con.execute("DELETE FROM invoices WHERE list_contains($ids, invoice_id) AND status = 'draft'", params)
        if self.invoices:
            try:
                sql.temp_table(con, "new_invoices",
                               {key: (kind, [row[key] for row in self.invoices]) for key, kind in _NEW_INVOICE_TYPES.items()})
            except duckdb.ConversionException as error:
                raise DataError(f"an invoice total does not fit the store's 64-bit minor units: {error}") from None
            con.execute(
                "INSERT INTO invoices SELECT invoice_id, customer_id, customer_version, customer_name, currency, timezone, "
                "period_start, period_end, revision, 'draft', NULL, NULL, NULL, supersedes, $run, subtotal_minor, "
                "credits_minor, tax_minor, total_minor, delta_minor, content_hash, $now, NULL, billed_until FROM new_invoices",
                {"run": run_id, "now": now},
            )
            # Copied from the run's rated lines: the invoice stays readable whatever is rated later.
            sql.temp_table(con, "new_lines", {"invoice_id": ("VARCHAR", [i for i, _ in self.lines]),
                                              "rated_line_no": ("INTEGER", [n for _, n in self.lines])})
            con.execute(
                f"INSERT INTO invoice_lines ({_LINE_COLUMNS}) "
                "SELECT n.invoice_id, row_number() OVER (PARTITION BY n.invoice_id ORDER BY r.line_no), r.run_id, r.line_no, "
                "r.kind, r.name, r.meter, r.plan, r.version, r.pricebook_hash, r.segment_start, r.segment_end, "
                "r.window_start, r.window_end, r.dimensions, r.quantity, r.unit_price, r.tiers, r.proration, "
                "r.precise_amount, r.amount, r.amount_minor, r.unmeterable "
                "FROM new_lines AS n JOIN rated_lines AS r ON r.run_id = $run AND r.line_no = n.rated_line_no",
                {"run": run_id},
            )
        if self.finalized:
            sql.temp_table(con, "finalizing", {
                "invoice_id": ("VARCHAR", [f[0] for f in self.finalized]),
                "number": ("VARCHAR", [f[1] for f in self.finalized]),
                "number_year": ("INTEGER", [f[2] for f in self.finalized]),
                "number_seq": ("INTEGER", [f[3] for f in self.finalized]),
            })
            con.execute(
                "UPDATE invoices SET status = 'finalized', number = f.number, number_year = f.number_year, "
                "number_seq = f.number_seq, finalized_at = $now FROM finalizing AS f "
                "WHERE invoices.invoice_id = f.invoice_id AND invoices.status = 'draft'",
                {"now": now},
            )
        con.execute("DROP TABLE IF EXISTS temp.new_invoices; DROP TABLE IF EXISTS temp.new_lines; "
                    "DROP TABLE IF EXISTS temp.finalizing")


def _orphan_drafts(con: duckdb.DuckDBPyConnection, period: str, customers: Sequence[str] | None,
                   produced: set[tuple[str, date]]) -> list[str]:
    """Drafts for periods ending in the month that this run no longer produces (the customer's
    billing or subscriptions changed): left alone, they would be exported beside the right ones."""
    month_start, month_end = month_bounds(period)
    rows = con.execute(
        "SELECT invoice_id, customer_id, period_start FROM invoices WHERE status = 'draft' "
        "AND billed_until > $start AND billed_until <= $end AND ($customers IS NULL OR list_contains($customers, customer_id))",
        {"start": month_start, "end": month_end, "customers": list(customers) if customers else None},
    ).fetchall()
    return [invoice for invoice, customer, start in rows if (customer, start) not in produced]


def build_invoices(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    meters: Sequence[Meter],
    period: str,
    *,
    customers: Sequence[str] | None = None,
    finalize: bool = False,
    now: datetime | None = None,
) -> InvoiceRun:
    """Invoices for every billing period ending in month `period` (YYYY-MM)."""
    from meterctl.customers import list_customers
    from meterctl.rating import rate

    now = now or datetime.now(UTC)

    def refuse_open_periods(lines: Sequence[RatedLine]) -> None:
        # Checked before the rating run is recorded: a refused command writes nothing.
        still_open = sorted({(l.customer_id, l.period_start, l.period_end) for l in lines if l.billed_until_at > now})
        if finalize and still_open:
            shown = ", ".join(f"{c} [{start}, {end})" for c, start, end in still_open[:3])
            shown += f" and {len(still_open) - 3} more" if len(still_open) > 3 else ""
            raise DataError(f"cannot finalize {len(still_open)} invoice(s) whose billing period has not ended yet: {shown}; "
                            "build drafts now (without --finalize) and finalize once the period is over")

    # A run that `meterctl rate` (or an earlier invoice run) recorded from the very same
    # inputs is used as it is: its lines are these lines, stored once.
    rating = rate(con, catalog, meters, period, customers=customers, check=refuse_open_periods, reuse_identical_run=True)
    year = month_bounds(period)[0].year
    versions = {c.customer_id: c for c in list_customers(con)}
    groups: dict[tuple[str, date], list[tuple[int, RatedLine]]] = {}
    for number, line in enumerate(rating.lines, 1):
        groups.setdefault((line.customer_id, line.period_start), []).append((number, line))
    still_open = {key for key, numbered in groups.items() if max(line.billed_until_at for _, line in numbered) > now}
    outcomes: list[InvoiceOutcome] = []
    changes = _Changes()
    con.execute("BEGIN TRANSACTION")
    try:
        stored_all = _stored(con, [customer for customer, _ in groups])
        # Numbers are handed out in customer order, inside the transaction: gap-free.
        last_seq = con.execute("SELECT coalesce(max(number_seq), 0) FROM invoices WHERE number_year = ?", [year]).fetchall()[0][0]
        for (customer_id, period_start), numbered in sorted(groups.items()):
            lines = [line for _, line in numbered]
            first = lines[0]
            totals = invoice_totals(lines)
            digest = content_hash(lines, totals)
            latest_final, draft = _in_force(stored_all.get(customer_id, []), period_start, first.period_end)
            if latest_final is not None and latest_final.content_hash == digest and latest_final.period_start == period_start:
                if draft is not None:  # its content went back to the finalized revision's: it has nothing to say
                    changes.drafts_to_delete.append(draft.invoice_id)
                outcomes.append(InvoiceOutcome(latest_final.invoice_id, customer_id, period_start, first.period_end, latest_final.revision,
                                               "unchanged", "finalized", latest_final.number, first.currency, latest_final.total_minor, None))
                continue
            revision = latest_final.revision + 1 if latest_final else 1
            new_id = invoice_id(customer_id, period_start, revision)
            # Minor units of two currencies do not subtract: after a currency correction the
            # revision has no delta.
            delta = (totals["total_minor"] - latest_final.total_minor
                     if latest_final and latest_final.currency == first.currency else None)
            # A draft is kept only if nothing on it would change: content, and the customer's details.
            if draft is not None and draft.content_hash == digest and draft.customer_version == versions[customer_id].version:
                action = "unchanged"
            else:
                if draft is not None:
                    changes.drafts_to_delete.append(draft.invoice_id)
                customer = versions[customer_id]
                changes.invoices.append({
                    "invoice_id": new_id, "customer_id": customer_id, "customer_version": customer.version,
                    "customer_name": customer.name, "currency": first.currency, "timezone": first.timezone,
                    "period_start": first.period_start, "period_end": first.period_end, "revision": revision,
                    "supersedes": latest_final.invoice_id if latest_final else None, "delta_minor": delta,
                    "content_hash": digest, "billed_until": max(line.segment_end for line in lines), **totals,
                })
                changes.lines.extend((new_id, number) for number, _ in numbered)
                action = "regenerated" if draft is not None else ("revised" if latest_final else "created")
            status, number_text = "draft", None
            if finalize:
                last_seq += 1
                number_text = f"INV-{year}-{last_seq:06d}"
                changes.finalized.append((new_id, number_text, year, last_seq))
                # "revised" says a finalized invoice was replaced by this run's new content;
                # finalizing a revision drafted earlier is just "finalized".
                status, action = "finalized", ("revised" if latest_final and action != "unchanged" else "finalized")
            outcomes.append(InvoiceOutcome(new_id, customer_id, period_start, first.period_end, revision, action, status,
                                           number_text, first.currency, totals["total_minor"], delta,
                                           (customer_id, period_start) in still_open))
        changes.drafts_to_delete.extend(_orphan_drafts(con, period, customers, set(groups)))
        changes.apply(con, rating.run_id or 0, now)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return InvoiceRun(period, rating, tuple(outcomes))


# ---------------------------------------------------------------- reading

_INVOICE_SELECT = """
    SELECT i.invoice_id, i.customer_id, i.customer_version, i.customer_name, i.currency, i.timezone,
           i.period_start, i.period_end, i.revision,
           CASE WHEN i.status = 'finalized' AND later.invoice_id IS NOT NULL THEN 'superseded' ELSE i.status END,
           i.number, i.supersedes, later.invoice_id, i.rating_run_id,
           i.subtotal_minor, i.credits_minor, i.tax_minor, i.total_minor, i.delta_minor, i.content_hash,
           strftime(i.created_at, '%Y-%m-%dT%H:%M:%SZ'), strftime(i.finalized_at, '%Y-%m-%dT%H:%M:%SZ'),
           (SELECT p.number FROM invoices AS p WHERE p.invoice_id = i.supersedes)
    FROM invoices AS i
    LEFT JOIN LATERAL (
        -- The finalized revision that replaced this one (same period, or a period that moved
        -- when the customer's subscription changed).
        SELECT j.invoice_id FROM invoices AS j
        WHERE j.supersedes = i.invoice_id AND j.status = 'finalized'
        LIMIT 1
    ) AS later ON true
"""


def _lines(con: duckdb.DuckDBPyConnection, invoices: Sequence[Invoice]) -> dict[str, list[InvoiceLine]]:
    scale = {i.invoice_id: i.minor_units for i in invoices}
    rows = con.execute(
        "SELECT invoice_id, line_no, rating_run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, "
        "segment_start, segment_end, strftime(window_start, '%Y-%m-%dT%H:%M:%SZ'), strftime(window_end, '%Y-%m-%dT%H:%M:%SZ'), "
        "dimensions, quantity, unit_price, tiers, proration, precise_amount, amount_minor, unmeterable "
        "FROM invoice_lines WHERE invoice_id IN (SELECT unnest(?)) ORDER BY invoice_id, line_no",
        [list(scale)],
    ).fetchall()
    found: dict[str, list[InvoiceLine]] = {}
    new, fields = object.__new__, _LINE_FIELDS
    for row in rows:
        head, (dims, quantity, unit_price, tiers, proration, precise, minor, unmeterable) = row[1:14], row[14:]
        # The amount at the currency's scale (1.10, 2 for yen), from the exact minor units.
        # Most lines have no dimensions or tiers: no need to run the JSON parser for those.
        amount = Decimal(minor).scaleb(-scale[row[0]])
        # Every field set at once: the generated __init__ of a frozen dataclass sets its 22
        # fields one object.__setattr__ at a time, twice as slow, and exports read every line.
        line = new(InvoiceLine)
        line.__dict__.update(zip(fields, (
            *head, {} if dims == "{}" else json.loads(dims), quantity, unit_price,
            [] if tiers == "[]" else json.loads(tiers), proration, precise, amount, minor, unmeterable), strict=True))
        found.setdefault(row[0], []).append(line)
    return found


def _with_lines(con: duckdb.DuckDBPyConnection, invoices: Sequence[Invoice]) -> tuple[Invoice, ...]:
    lines = _lines(con, invoices) if invoices else {}
    return tuple(dataclasses.replace(i, lines=tuple(lines.get(i.invoice_id, ()))) for i in invoices)


def list_invoices(
    con: duckdb.DuckDBPyConnection,
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
    where, params = ["true"], {}
    if period is not None:
        month_start, month_end = month_bounds(period)
        where.append("i.billed_until > $month_start AND i.billed_until <= $month_end")
        params.update(month_start=month_start, month_end=month_end)
    if customers:
        where.append("list_contains($customers, i.customer_id)")
        params["customers"] = list(customers)
    if revision_status is not None:  # stored status: draft or finalized (superseded ones are finalized)
        where.append("i.status = $revision_status")
        params["revision_status"] = revision_status
    if current_only:
        # Nothing replaces it yet (a finalized successor, or any successor when drafts count).
        successor = "j.status = 'finalized'" if revision_status == "finalized" else "true"
        where.append(f"NOT EXISTS (SELECT 1 FROM invoices AS j WHERE j.supersedes = i.invoice_id AND {successor})")
    query = _INVOICE_SELECT + " WHERE " + " AND ".join(where)
    if current_only:
        query += " QUALIFY i.revision = max(i.revision) OVER (PARTITION BY i.customer_id, i.period_start)"
    query += " ORDER BY i.customer_id, i.period_start, i.revision"
    invoices = [Invoice(*row) for row in con.execute(query, params).fetchall()]
    if status is not None:
        invoices = [i for i in invoices if i.status == status]
    return _with_lines(con, invoices) if with_lines else tuple(invoices)


def get_invoice(con: duckdb.DuckDBPyConnection, reference: str) -> Invoice:
    """An invoice by id (cus_1-20261001-r1) or number (INV-2026-000001), with its lines."""
    rows = con.execute(_INVOICE_SELECT + " WHERE i.invoice_id = ? OR i.number = ?", [reference, reference]).fetchall()
    if not rows:
        raise NotFoundError(f"no invoice '{reference}' (see 'meterctl invoice list')")
    return _with_lines(con, [Invoice(*rows[0])])[0]


def check_period_has_invoices(invoices: Sequence[Invoice], what: str) -> None:
    if not invoices:
        raise DataError(f"no invoices {what}: run 'meterctl invoice --period YYYY-MM' first")
