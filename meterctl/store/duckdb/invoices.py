"""Invoices in DuckDB: one per customer per billing period, in revisions, with their lines.

A draft may be regenerated (deleted and written again); a finalized revision is never
changed or deleted. Lines are copied from the rating run's lines, so an invoice stays
readable whatever is rated later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb

from meterctl.errors import DataError
from meterctl.instants import EpochCache
from meterctl.store.duckdb import sqlfiles
from meterctl.store.duckdb.connect import has_table
from meterctl.store.ports import InvoiceFilter

if TYPE_CHECKING:
    from meterctl.credits import NewEntry
    from meterctl.invoices import (
        Invoice,
        InvoiceChanges,
        InvoiceCredit,
        InvoiceLine,
        InvoiceTax,
        LineMismatch,
        StoredInvoice,
    )

# The invoice records (meterctl.invoices) are imported by the functions that make them: a
# frozen dataclass costs a millisecond to define, and `rate` never reads an invoice.

_LINE_COLUMNS = (
    "invoice_id, line_no, rating_run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, "
    "segment_start, segment_end, window_start, window_end, dimensions, quantity, unit_price, tiers, proration, "
    "precise_amount, amount, amount_minor, unmeterable"
)

# The columns of new invoice rows, typed for the temporary table they are inserted from.
_NEW_INVOICE_TYPES = {
    "invoice_id": "VARCHAR", "customer_id": "VARCHAR", "customer_version": "INTEGER", "customer_name": "VARCHAR",
    "currency": "VARCHAR", "timezone": "VARCHAR", "period_start": "DATE", "period_end": "DATE", "revision": "INTEGER",
    "supersedes": "VARCHAR", "delta_minor": "BIGINT", "content_hash": "VARCHAR", "billed_until": "DATE",
    "subtotal_minor": "BIGINT", "credits_minor": "BIGINT", "tax_minor": "BIGINT", "total_minor": "BIGINT",
}

_INVOICE_SELECT = """
    SELECT i.invoice_id, i.customer_id, i.customer_version, i.customer_name, i.currency, i.timezone,
           i.period_start, i.period_end, i.revision,
           CASE WHEN i.status = 'finalized' AND later.invoice_id IS NOT NULL THEN 'superseded' ELSE i.status END,
           i.number, i.supersedes, later.invoice_id, i.rating_run_id,
           i.subtotal_minor, i.credits_minor, i.tax_minor, i.total_minor, i.delta_minor, i.content_hash,
           epoch_us(i.created_at), epoch_us(i.finalized_at),
           (SELECT p.number FROM invoices AS p WHERE p.invoice_id = i.supersedes), i.issue_date, i.due_date
    FROM invoices AS i
    LEFT JOIN LATERAL (
        -- The finalized revision that replaced this one (same period, or a period that moved
        -- when the customer's subscription changed).
        SELECT j.invoice_id FROM invoices AS j
        WHERE j.supersedes = i.invoice_id AND j.status = 'finalized'
        LIMIT 1
    ) AS later ON true
"""


def _invoice(row: tuple[Any, ...], instants: EpochCache) -> Invoice:
    from meterctl.invoices import Invoice

    (invoice_id, customer_id, customer_version, customer_name, currency, timezone, period_start, period_end, revision,
     status, number, supersedes, superseded_by, rating_run_id, subtotal, credits, tax, total, delta, content_hash,
     created, finalized, supersedes_number, issue_date, due_date) = row
    return Invoice(invoice_id, customer_id, customer_version, customer_name, currency, timezone, period_start,
                   period_end, revision, status, number, supersedes, superseded_by, rating_run_id, subtotal, credits,
                   tax, total, delta, content_hash, instants[created],
                   None if finalized is None else instants[finalized], supersedes_number, issue_date=issue_date,
                   due_date=due_date)


def _new_invoice_columns(changes: InvoiceChanges) -> dict[str, tuple[str, list[Any]]]:
    rows = [{**new._asdict(), **new.totals.document()} for new in changes.invoices]
    return {key: (kind, [row[key] for row in rows]) for key, kind in _NEW_INVOICE_TYPES.items()}


class InvoiceRecords:
    """The Ledger's invoices."""

    con: duckdb.DuckDBPyConnection
    add_wallet_entries: Callable[[Sequence[NewEntry], datetime], None]  # WalletRecords'

    def has_invoices(self) -> bool:
        return has_table(self.con, "invoices")

    def stored_invoices(self, customer_ids: Sequence[str]) -> dict[str, list[StoredInvoice]]:
        """Every stored invoice of these customers, oldest revision first, in one query."""
        from meterctl.invoices import StoredInvoice

        found: dict[str, list[StoredInvoice]] = {}
        if not customer_ids:
            return found
        rows = self.con.execute(
            "SELECT customer_id, invoice_id, revision, status, content_hash, total_minor, number, customer_version, "
            "period_start, period_end, supersedes, CAST(number_year AS BIGINT) * 10000000 + number_seq, currency "
            "FROM invoices WHERE list_contains($customers, customer_id) ORDER BY revision, number_year, number_seq",
            {"customers": sorted(set(customer_ids))},
        ).fetchall()
        for row in rows:
            found.setdefault(row[0], []).append(StoredInvoice(*row[1:]))
        return found

    def invoice_sums(self, invoice_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per invoice: Σ its lines' amounts and Σ the credits its lines took, in minor units."""
        rows = self.con.execute("""
            SELECT i.invoice_id,
                   (SELECT coalesce(sum(amount_minor), 0) FROM invoice_lines AS l WHERE l.invoice_id = i.invoice_id),
                   (SELECT coalesce(sum(applied_minor), 0) FROM invoice_credits AS c WHERE c.invoice_id = i.invoice_id)
            FROM (SELECT unnest($ids) AS invoice_id) AS i""", {"ids": list(invoice_ids)}).fetchall()
        return {invoice_id: (int(lines), int(credits)) for invoice_id, lines, credits in rows}

    def lines_against_runs(self, invoice_ids: Sequence[str], limit: int) -> tuple[int, int, tuple[LineMismatch, ...]]:
        """Each invoice's lines against its rating run's lines for the customer and period:
        (rated lines, invoice lines equal to theirs, the first `limit` that are not)."""
        from meterctl.invoices import LineMismatch

        if not invoice_ids:
            return 0, 0, ()
        params = {"ids": list(invoice_ids)}
        compared = """
            WITH cur AS (
                SELECT invoice_id, coalesce(number, invoice_id) AS shown, customer_id, period_start, rating_run_id
                FROM invoices WHERE list_contains($ids, invoice_id)
            ),
            rated AS (
                SELECT c.invoice_id, c.shown, r.* FROM cur AS c JOIN rated_lines AS r
                  ON r.run_id = c.rating_run_id AND r.customer_id = c.customer_id AND r.period_start = c.period_start
            ),
            billed AS (SELECT c.shown, l.* FROM cur AS c JOIN invoice_lines AS l USING (invoice_id))
            SELECT coalesce(l.shown, r.shown) AS shown, l.line_no, coalesce(l.rated_line_no, r.line_no) AS rated_no,
                   coalesce(l.rating_run_id, r.run_id) AS run_id,
                   CASE WHEN r.line_no IS NULL THEN 'no rated line'
                        WHEN l.line_no IS NULL THEN 'on no invoice line'
                        WHEN (l.kind, l.name, l.meter, CAST(l.dimensions AS VARCHAR), l.quantity, l.precise_amount,
                              l.amount_minor, l.window_start, l.window_end)
                             IS DISTINCT FROM
                             (r.kind, r.name, r.meter, CAST(r.dimensions AS VARCHAR), r.quantity, r.precise_amount,
                              r.amount_minor, r.window_start, r.window_end) THEN 'differs'
                   END AS problem,
                   r.line_no IS NOT NULL AS rated
            FROM billed AS l FULL OUTER JOIN rated AS r
              ON r.invoice_id = l.invoice_id AND r.run_id = l.rating_run_id AND r.line_no = l.rated_line_no
        """
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE line_check AS {compared}", params)
        try:
            expected, matched = self.con.execute(
                "SELECT count(*) FILTER (rated), count(*) FILTER (rated AND problem IS NULL) FROM line_check").fetchall()[0]
            rows = self.con.execute(
                "SELECT shown, line_no, rated_no, run_id, problem FROM line_check WHERE problem IS NOT NULL "
                "ORDER BY shown, line_no NULLS LAST, rated_no LIMIT $limit", {"limit": limit}).fetchall()
        finally:
            self.con.execute("DROP TABLE IF EXISTS temp.line_check")
        return int(expected), int(matched), tuple(LineMismatch(*row) for row in rows)

    def last_invoice_number(self, year: int) -> int:
        return int(self.con.execute("SELECT coalesce(max(number_seq), 0) FROM invoices WHERE number_year = ?",
                                    [year]).fetchall()[0][0])

    def drafts_billed_in(self, start: date, end: date, customers: Sequence[str] | None) -> list[tuple[str, str, date]]:
        rows = self.con.execute(
            "SELECT invoice_id, customer_id, period_start FROM invoices WHERE status = 'draft' "
            "AND billed_until > $start AND billed_until <= $end "
            "AND ($customers IS NULL OR list_contains($customers, customer_id))",
            {"start": start, "end": end, "customers": list(customers) if customers else None},
        ).fetchall()
        return [(invoice, customer, period_start) for invoice, customer, period_start in rows]

    def apply_invoice_changes(self, changes: InvoiceChanges, run_id: int, now: datetime) -> None:
        """Write what an invoice run decided (inside the caller's transaction)."""
        con = self.con
        if changes.drafts_to_delete:
            params = {"ids": changes.drafts_to_delete}
            con.execute("DELETE FROM invoice_credits WHERE list_contains($ids, invoice_id) AND invoice_id IN "
                        "(SELECT invoice_id FROM invoices WHERE status = 'draft')", params)
            con.execute("DELETE FROM invoice_taxes WHERE list_contains($ids, invoice_id) AND invoice_id IN "
                        "(SELECT invoice_id FROM invoices WHERE status = 'draft')", params)
            con.execute("DELETE FROM invoice_lines WHERE list_contains($ids, invoice_id)", params)
            con.execute("DELETE FROM invoices WHERE list_contains($ids, invoice_id) AND status = 'draft'", params)
        if changes.invoices:
            try:
                sqlfiles.temp_table(con, "new_invoices", _new_invoice_columns(changes))
            except duckdb.ConversionException as error:
                raise DataError(f"an invoice total does not fit the store's 64-bit minor units: {error}") from None
            con.execute(
                "INSERT INTO invoices SELECT invoice_id, customer_id, customer_version, customer_name, currency, timezone, "
                "period_start, period_end, revision, 'draft', NULL, NULL, NULL, supersedes, $run, subtotal_minor, "
                "credits_minor, tax_minor, total_minor, delta_minor, content_hash, $now, NULL, billed_until, NULL, NULL "
                "FROM new_invoices",
                {"run": run_id, "now": now},
            )
            sqlfiles.temp_table(con, "new_lines", {"invoice_id": ("VARCHAR", [i for i, _ in changes.lines]),
                                                   "rated_line_no": ("INTEGER", [n for _, n in changes.lines])})
            con.execute(
                f"INSERT INTO invoice_lines ({_LINE_COLUMNS}) "
                "SELECT n.invoice_id, row_number() OVER (PARTITION BY n.invoice_id ORDER BY r.line_no), r.run_id, r.line_no, "
                "r.kind, r.name, r.meter, r.plan, r.version, r.pricebook_hash, r.segment_start, r.segment_end, "
                "r.window_start, r.window_end, r.dimensions, r.quantity, r.unit_price, r.tiers, r.proration, "
                "r.precise_amount, r.amount, r.amount_minor, r.unmeterable "
                "FROM new_lines AS n JOIN rated_lines AS r ON r.run_id = $run AND r.line_no = n.rated_line_no",
                {"run": run_id},
            )
        credits = [(new.invoice_id, credit, new.grants_left.get(credit.grant_id, Decimal(0)))
                   for new in changes.invoices for credit in new.credits]
        if credits:
            sqlfiles.temp_table(con, "new_credits", {
                "invoice_id": ("VARCHAR", [invoice for invoice, _, _ in credits]),
                "grant_id": ("VARCHAR", [credit.grant_id for _, credit, _ in credits]),
                "name": ("VARCHAR", [credit.name for _, credit, _ in credits]),
                "line_no": ("INTEGER", [credit.line_no for _, credit, _ in credits]),
                "applied_minor": ("BIGINT", [credit.applied_minor for _, credit, _ in credits]),
                "grant_left": ("DECIMAL(38, 18)", [left for _, _, left in credits]),
            })
            con.execute("INSERT INTO invoice_credits SELECT * FROM new_credits; DROP TABLE temp.new_credits")
        taxes = [(new.invoice_id, tax) for new in changes.invoices for tax in new.taxes]
        if taxes:
            sqlfiles.temp_table(con, "new_taxes", {
                "invoice_id": ("VARCHAR", [invoice for invoice, _ in taxes]),
                "code": ("VARCHAR", [tax.code for _, tax in taxes]),
                "name": ("VARCHAR", [tax.name for _, tax in taxes]),
                "rate": ("DECIMAL(38, 18)", [tax.rate for _, tax in taxes]),
                "taxable_minor": ("BIGINT", [tax.taxable_minor for _, tax in taxes]),
                "amount_minor": ("BIGINT", [tax.amount_minor for _, tax in taxes]),
            })
            con.execute("INSERT INTO invoice_taxes SELECT * FROM new_taxes; DROP TABLE temp.new_taxes")
        if changes.finalized:
            sqlfiles.temp_table(con, "finalizing", {
                "invoice_id": ("VARCHAR", [f.invoice_id for f in changes.finalized]),
                "number": ("VARCHAR", [f.number for f in changes.finalized]),
                "number_year": ("INTEGER", [f.year for f in changes.finalized]),
                "number_seq": ("INTEGER", [f.sequence for f in changes.finalized]),
                "issue_date": ("DATE", [f.issue_date for f in changes.finalized]),
                "due_date": ("DATE", [f.due_date for f in changes.finalized]),
            })
            con.execute(
                "UPDATE invoices SET status = 'finalized', number = f.number, number_year = f.number_year, "
                "number_seq = f.number_seq, finalized_at = $now, issue_date = f.issue_date, due_date = f.due_date "
                "FROM finalizing AS f "
                "WHERE invoices.invoice_id = f.invoice_id AND invoices.status = 'draft'",
                {"now": now},
            )
        self.add_wallet_entries(changes.wallet_entries, now)
        con.execute("DROP TABLE IF EXISTS temp.new_invoices; DROP TABLE IF EXISTS temp.new_lines; "
                    "DROP TABLE IF EXISTS temp.finalizing")

    def invoices(self, where: InvoiceFilter) -> tuple[Invoice, ...]:
        clauses: list[str] = ["true"]
        params: dict[str, Any] = {}
        if where.period_start is not None and where.period_end is not None:
            clauses.append("i.billed_until > $month_start AND i.billed_until <= $month_end")
            params.update(month_start=where.period_start, month_end=where.period_end)
        if where.customers:
            clauses.append("list_contains($customers, i.customer_id)")
            params["customers"] = list(where.customers)
        if where.revision_status is not None:  # stored status: draft or finalized (superseded ones are finalized)
            clauses.append("i.status = $revision_status")
            params["revision_status"] = where.revision_status
        if where.current_only:
            # Nothing replaces it yet (a finalized successor, or any successor when drafts count).
            successor = "j.status = 'finalized'" if where.revision_status == "finalized" else "true"
            clauses.append(f"NOT EXISTS (SELECT 1 FROM invoices AS j WHERE j.supersedes = i.invoice_id AND {successor})")
        query = _INVOICE_SELECT + " WHERE " + " AND ".join(clauses)
        if where.current_only:
            query += " QUALIFY i.revision = max(i.revision) OVER (PARTITION BY i.customer_id, i.period_start)"
        query += " ORDER BY i.customer_id, i.period_start, i.revision"
        instants = EpochCache()
        return tuple(_invoice(row, instants) for row in self.con.execute(query, params).fetchall())

    def invoice(self, reference: str) -> Invoice | None:
        rows = self.con.execute(_INVOICE_SELECT + " WHERE i.invoice_id = ? OR i.number = ?", [reference, reference]).fetchall()
        return _invoice(rows[0], EpochCache()) if rows else None

    def invoice_count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM invoices").fetchall()[0][0])

    def with_lines(self, invoices: Sequence[Invoice]) -> tuple[Invoice, ...]:
        lines = self._lines(invoices) if invoices else {}
        credits = self._credits([i.invoice_id for i in invoices]) if invoices else {}
        taxes = self._taxes([i.invoice_id for i in invoices]) if invoices else {}
        return tuple(dataclasses.replace(i, lines=tuple(lines.get(i.invoice_id, ())),
                                         credits=tuple(credits.get(i.invoice_id, ({}, []))[1]),
                                         grants_left=credits.get(i.invoice_id, ({}, []))[0],
                                         taxes=tuple(taxes.get(i.invoice_id, ()))) for i in invoices)

    def _taxes(self, invoice_ids: Sequence[str]) -> dict[str, list[InvoiceTax]]:
        from meterctl.invoices import InvoiceTax

        found: dict[str, list[InvoiceTax]] = {}
        if not has_table(self.con, "invoice_taxes"):  # a store opened read-only may predate taxes
            return found
        for invoice_id, code, name, rate, taxable, amount in self.con.execute(
                "SELECT invoice_id, code, name, CAST(rate AS VARCHAR), taxable_minor, amount_minor FROM invoice_taxes "
                "WHERE list_contains(?, invoice_id) ORDER BY invoice_id, rowid", [list(invoice_ids)]).fetchall():
            found.setdefault(invoice_id, []).append(InvoiceTax(code, name, Decimal(rate).normalize(), taxable, amount))
        return found

    def _credits(self, invoice_ids: Sequence[str]) -> dict[str, tuple[dict[str, Decimal], list[InvoiceCredit]]]:
        """Per invoice: what each grant held after it, and which grant paid which line."""
        from meterctl.invoices import InvoiceCredit

        found: dict[str, tuple[dict[str, Decimal], list[InvoiceCredit]]] = {}
        for invoice_id, grant_id, name, line_no, applied, left in self.con.execute(
                "SELECT invoice_id, grant_id, name, line_no, applied_minor, grant_left FROM invoice_credits "
                "WHERE list_contains(?, invoice_id) ORDER BY invoice_id, line_no, rowid", [list(invoice_ids)]).fetchall():
            left_after, paid = found.setdefault(invoice_id, ({}, []))
            left_after[grant_id] = left
            paid.append(InvoiceCredit(grant_id, name, line_no, applied))
        return found

    def _lines(self, invoices: Sequence[Invoice]) -> dict[str, list[InvoiceLine]]:
        from meterctl.invoices import InvoiceLine

        scale = {i.invoice_id: i.minor_units for i in invoices}
        rows = self.con.execute(
            "SELECT invoice_id, line_no, rating_run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, "
            "segment_start, segment_end, epoch_us(window_start), epoch_us(window_end), "
            "dimensions, quantity, unit_price, tiers, proration, precise_amount, amount_minor, unmeterable "
            "FROM invoice_lines WHERE invoice_id IN (SELECT unnest(?)) ORDER BY invoice_id, line_no",
            [list(scale)],
        ).fetchall()
        instants = EpochCache()
        found: dict[str, list[InvoiceLine]] = {}
        for row in rows:
            (invoice_id, line_no, run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, segment_start,
             segment_end, window_start, window_end, dims, quantity, unit_price, tiers, proration, precise, minor,
             unmeterable) = row
            # The amount at the currency's scale (1.10, 2 for yen), from the exact minor units.
            # Most lines have no dimensions or tiers: no need to run the JSON parser for those.
            found.setdefault(invoice_id, []).append(InvoiceLine(
                line_no, run_id, rated_line_no, kind, name, meter, plan, version, pricebook_hash, segment_start,
                segment_end, instants[window_start], instants[window_end], {} if dims == "{}" else json.loads(dims),
                quantity, unit_price, () if tiers == "[]" else tuple(json.loads(tiers)), proration, precise,
                Decimal(minor).scaleb(-scale[invoice_id]), minor, unmeterable))
        return found
