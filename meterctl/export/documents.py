"""Invoices as JSON: money in integer minor units, decimals (quantities, prices) as strings,
one invoice per line of the file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from meterctl.instants import IsoCache
from meterctl.invoices import Invoice, InvoiceLine
from meterctl.pricing import text


def _line_document(line: InvoiceLine, shown: IsoCache) -> dict[str, Any]:
    return {
        "line_no": line.line_no,
        "kind": line.kind,
        "name": line.name,
        "meter": line.meter,
        "dimensions": line.dimensions,
        "segment_start": line.segment_start.isoformat(),
        "segment_end": line.segment_end.isoformat(),
        "usage_window": {"start": shown[line.window_start], "end": shown[line.window_end]},
        "quantity": text(line.quantity),
        "unit_price": None if line.unit_price is None else text(line.unit_price),
        "tiers": list(line.tiers),
        "proration": line.proration,
        "precise_amount": line.precise_amount,
        "amount_minor": line.amount_minor,
        "pricebook": line.pricebook,
        "pricebook_hash": line.pricebook_hash,
    }


def invoice_document(invoice: Invoice, shown: IsoCache | None = None) -> dict[str, Any]:
    """An invoice as JSON-ready data: minor units as integers, decimals as strings. (`shown`
    writes each window instant once for many invoices: lines share a few windows.)"""
    shown = IsoCache() if shown is None else shown
    return {
        "invoice_id": invoice.invoice_id,
        "number": invoice.number,
        "status": invoice.status,
        "revision": invoice.revision,
        "supersedes": invoice.supersedes,
        "supersedes_number": invoice.supersedes_number,
        "customer": {"id": invoice.customer_id, "name": invoice.customer_name},
        "currency": invoice.currency,
        "minor_units": invoice.minor_units,
        "period": {"start": invoice.period_start.isoformat(), "end": invoice.period_end.isoformat(),
                   "timezone": invoice.timezone},
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,  # None: a draft
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "pricebooks": list(invoice.pricebooks),
        "lines": [_line_document(line, shown) for line in invoice.lines],
        "subtotal_minor": invoice.subtotal_minor,
        "credits_minor": invoice.credits_minor,
        "credits": [{"grant_id": grant_id, "name": name, "applied_minor": applied}
                    for grant_id, name, applied in invoice.credits_by_grant()],
        "taxes": [tax.document() for tax in invoice.taxes],
        "tax_minor": invoice.tax_minor,
        "total_minor": invoice.total_minor,
        "delta_minor": invoice.delta_minor,
        "content_hash": invoice.content_hash,
    }


# One encoder for every invoice: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def to_json(invoices: Sequence[Invoice]) -> bytes:
    """{"invoices": [...]}, one invoice per line (compact: Python's indenting encoder is slow)."""
    shown = IsoCache()
    body = ",\n".join(_ENCODE(invoice_document(i, shown)) for i in invoices)
    return ('{"invoices":[\n' + body + ("\n" if body else "") + "]}\n").encode("utf-8")


