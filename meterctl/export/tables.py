"""Invoices as CSV (one row per invoice line; money in major units at the currency's scale,
with the currency code; the credits that paid the line in `line_credits`; the invoice's
totals repeated on each of its rows) and as Parquet (the same rows with decimal columns)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterctl.invoices import Invoice
from meterctl.io.files import write_atomically
from meterctl.pricing import major, text

_CSV_COLUMNS = (
    "invoice_id", "number", "status", "revision", "customer_id", "customer_name", "period_start", "period_end",
    "currency", "line_no", "kind", "name", "meter", "dimensions", "segment_start", "segment_end", "quantity",
    "unit_price", "amount", "line_credits", "pricebook", "pricebook_hash", "subtotal", "credits", "tax", "total",
)


def _rows(invoices: Sequence[Invoice]) -> list[dict[str, Any]]:
    rows = []
    for invoice in invoices:
        places = invoice.minor_units
        paid = invoice.line_credits()
        for line in invoice.lines:
            rows.append({
                "invoice_id": invoice.invoice_id, "number": invoice.number or "", "status": invoice.status,
                "revision": invoice.revision, "customer_id": invoice.customer_id, "customer_name": invoice.customer_name,
                "period_start": invoice.period_start, "period_end": invoice.period_end, "currency": invoice.currency,
                "line_no": line.line_no, "kind": line.kind, "name": line.name, "meter": line.meter or "",
                "dimensions": ";".join(f"{k}={'' if v is None else v}" for k, v in sorted(line.dimensions.items())),
                "segment_start": line.segment_start, "segment_end": line.segment_end,
                "quantity": line.quantity, "unit_price": line.unit_price,
                "amount": major(line.amount_minor, places), "amount_minor": line.amount_minor,
                "line_credits": major(paid.get(line.line_no, 0), places),
                "pricebook": line.pricebook, "pricebook_hash": line.pricebook_hash,
                "subtotal": major(invoice.subtotal_minor, places), "credits": major(invoice.credits_minor, places),
                "tax": major(invoice.tax_minor, places), "total": major(invoice.total_minor, places),
                "minor_units": places,
            })
    return rows


def to_csv(invoices: Sequence[Invoice]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in _rows(invoices):
        values = dict(row, quantity=text(row["quantity"]),
                      unit_price="" if row["unit_price"] is None else text(row["unit_price"]),
                      period_start=row["period_start"].isoformat(), period_end=row["period_end"].isoformat(),
                      segment_start=row["segment_start"].isoformat(), segment_end=row["segment_end"].isoformat())
        writer.writerow([values[c] for c in _CSV_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def write_parquet(invoices: Sequence[Invoice], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _rows(invoices)
    money = pa.decimal128(38, 3)  # every ISO 4217 currency has at most 3 minor digits
    exact = pa.decimal128(38, 18)

    def column(name: str, kind=pa.string(), convert=lambda v: v):
        return pa.array([convert(r[name]) for r in rows], kind)

    table = pa.table({
        "invoice_id": column("invoice_id"), "number": column("number", convert=lambda v: v or None),
        "status": column("status"), "revision": column("revision", pa.int32()),
        "customer_id": column("customer_id"), "customer_name": column("customer_name"),
        "period_start": column("period_start", pa.date32()), "period_end": column("period_end", pa.date32()),
        "currency": column("currency"), "minor_units": column("minor_units", pa.int8()),
        "line_no": column("line_no", pa.int32()), "kind": column("kind"), "name": column("name"),
        "meter": column("meter", convert=lambda v: v or None), "dimensions": column("dimensions"),
        "segment_start": column("segment_start", pa.date32()), "segment_end": column("segment_end", pa.date32()),
        "quantity": column("quantity", exact), "unit_price": column("unit_price", exact),
        "amount": column("amount", money, Decimal), "amount_minor": column("amount_minor", pa.int64()),
        "line_credits": column("line_credits", money, Decimal),
        "pricebook": column("pricebook"), "pricebook_hash": column("pricebook_hash"),
        "subtotal": column("subtotal", money, Decimal), "credits": column("credits", money, Decimal),
        "tax": column("tax", money, Decimal), "total": column("total", money, Decimal),
    })
    write_atomically(path, lambda temporary: pq.write_table(table, temporary, compression="zstd"))

