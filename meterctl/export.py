"""Invoices → JSON, CSV, Parquet and HTML files, byte for byte reproducible.

Nothing that depends on when or in which order things were computed goes into a file:
no export time, no creation times, no rating-run ids; invoices are ordered by period and
customer, lines by number. Two exports of the same invoices are identical, and so are
exports from a store rebuilt from the same event files ingested in another order.

- JSON: money in integer minor units, decimals (quantities, prices) as strings.
- CSV: one row per invoice line; money in major units at the currency's scale, with the
  currency code; the invoice's totals repeated on each of its rows.
- Parquet: the same rows with decimal columns.
- HTML: one self-contained, printable page per invoice.

Every file is written to a temporary file and renamed (see files.py).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from meterctl.errors import OutputError, UsageError
from meterctl.files import write_atomically, write_bytes_atomically
from meterctl.invoicing import Invoice, InvoiceLine
from meterctl.pricing import major
from meterctl.pricing import text

FORMATS = ("json", "csv", "parquet", "html")


def _line_document(line: InvoiceLine) -> dict:
    return {
        "line_no": line.line_no,
        "kind": line.kind,
        "name": line.name,
        "meter": line.meter,
        "dimensions": line.dimensions,
        "segment_start": line.segment_start.isoformat(),
        "segment_end": line.segment_end.isoformat(),
        "usage_window": {"start": line.window_start, "end": line.window_end},
        "quantity": text(line.quantity),
        "unit_price": None if line.unit_price is None else text(line.unit_price),
        "tiers": line.tiers,
        "proration": line.proration,
        "precise_amount": line.precise_amount,
        "amount_minor": line.amount_minor,
        "pricebook": line.pricebook,
        "pricebook_hash": line.pricebook_hash,
    }


def invoice_document(invoice: Invoice) -> dict:
    """An invoice as JSON-ready data: minor units as integers, decimals as strings."""
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
        "issue_date": invoice.period_end.isoformat(),
        "pricebooks": list(invoice.pricebooks),
        "lines": [_line_document(line) for line in invoice.lines],
        "subtotal_minor": invoice.subtotal_minor,
        "credits_minor": invoice.credits_minor,
        "tax_minor": invoice.tax_minor,
        "total_minor": invoice.total_minor,
        "delta_minor": invoice.delta_minor,
        "content_hash": invoice.content_hash,
    }


# One encoder for every invoice: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def to_json(invoices: Sequence[Invoice]) -> bytes:
    """{"invoices": [...]}, one invoice per line (compact: Python's indenting encoder is slow)."""
    body = ",\n".join(_ENCODE(invoice_document(i)) for i in invoices)
    return ('{"invoices":[\n' + body + ("\n" if body else "") + "]}\n").encode("utf-8")


_CSV_COLUMNS = (
    "invoice_id", "number", "status", "revision", "customer_id", "customer_name", "period_start", "period_end",
    "currency", "line_no", "kind", "name", "meter", "dimensions", "segment_start", "segment_end", "quantity",
    "unit_price", "amount", "pricebook", "pricebook_hash", "subtotal", "credits", "tax", "total",
)


def _rows(invoices: Sequence[Invoice]) -> list[dict]:
    rows = []
    for invoice in invoices:
        places = invoice.minor_units
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
        "pricebook": column("pricebook"), "pricebook_hash": column("pricebook_hash"),
        "subtotal": column("subtotal", money, Decimal), "credits": column("credits", money, Decimal),
        "tax": column("tax", money, Decimal), "total": column("total", money, Decimal),
    })
    write_atomically(path, lambda temporary: pq.write_table(table, temporary, compression="zstd"))


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d2330; margin: 2.5em auto; max-width: 60em; }
header { display: flex; justify-content: space-between; align-items: flex-start; border-bottom: 2px solid #1d2330; padding-bottom: 1em; }
h1 { font-size: 1.6em; margin: 0; } .muted { color: #5b6475; } .draft { color: #b3261e; font-weight: bold; }
table { width: 100%; border-collapse: collapse; margin-top: 1.5em; font-size: 0.92em; }
th, td { padding: 0.45em 0.6em; border-bottom: 1px solid #d8dce3; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { border: none; } tfoot tr.total td { font-weight: bold; font-size: 1.1em; border-top: 2px solid #1d2330; }
footer { margin-top: 2em; font-size: 0.8em; color: #5b6475; }
@media print { body { margin: 0; } th { background: none; } }
"""


def to_html(invoice: Invoice) -> bytes:
    places = invoice.minor_units
    e = html.escape
    money = lambda minor: f"{major(minor, places)} {invoice.currency}"  # noqa: E731
    title = invoice.number or f"DRAFT {invoice.invoice_id}"
    rows = []
    for line in invoice.lines:
        what = e(line.name) + "".join(f" · {e(k)}={e(str(v))}" for k, v in sorted(line.dimensions.items()) if v is not None)
        if line.segment_start != invoice.period_start or line.segment_end != invoice.period_end:
            what += f'<br><span class="muted">{line.segment_start} to {line.segment_end - timedelta(days=1)}' + (
                f" (prorated {e(line.proration)})" if line.proration else "") + "</span>"
        elif line.proration:
            what += f'<br><span class="muted">prorated {e(line.proration)}</span>'
        unit = text(line.unit_price) if line.unit_price is not None and line.kind in ("usage", "fee") else ""
        rows.append(
            f"<tr><td>{line.line_no}</td><td>{what}</td><td>{e(line.pricebook)}</td>"
            f'<td class="num">{e(text(line.quantity)) if line.kind == "usage" else ""}</td>'
            f'<td class="num">{e(unit)}</td><td class="num">{e(money(line.amount_minor))}</td></tr>'
        )
    status = "" if invoice.status == "finalized" else f' <span class="draft">{e(invoice.status.upper())}</span>'
    revision = ""
    if invoice.supersedes:
        replaced = invoice.supersedes_number or invoice.supersedes
        change = "" if invoice.delta_minor is None else f", change {'+' if invoice.delta_minor > 0 else ''}{money(invoice.delta_minor)}"
        revision = f'<div class="muted">Revision {invoice.revision}: replaces invoice {e(replaced)}{e(change)}</div>' 
    last_day = invoice.period_end - timedelta(days=1)
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Invoice {e(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<div><h1>Invoice {e(title)}{status}</h1>{revision}
<div class="muted">Issued {invoice.period_end.isoformat()}</div></div>
<div style="text-align:right"><strong>{e(invoice.customer_name)}</strong><br><span class="muted">{e(invoice.customer_id)}</span></div>
</header>
<p>Billing period {invoice.period_start.isoformat()} to {last_day.isoformat()} ({e(invoice.timezone)})</p>
<table>
<thead><tr><th>#</th><th>Description</th><th>Pricebook</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Amount</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
<tfoot>
<tr><td colspan="5" class="num">Subtotal</td><td class="num">{e(money(invoice.subtotal_minor))}</td></tr>
<tr><td colspan="5" class="num">Credits</td><td class="num">{e(money(-invoice.credits_minor))}</td></tr>
<tr><td colspan="5" class="num">Tax</td><td class="num">{e(money(invoice.tax_minor))}</td></tr>
<tr class="total"><td colspan="5" class="num">Total</td><td class="num">{e(money(invoice.total_minor))}</td></tr>
</tfoot>
</table>
<footer>Priced with {", ".join(e(p) for p in invoice.pricebooks)}; pricebook hashes {", ".join(sorted({e(l.pricebook_hash[:12]) for l in invoice.lines}))}.
Every line traces to its events: <code>meterctl explain {e(invoice.number or invoice.invoice_id)} --line N --events</code>.
Content hash {e(invoice.content_hash)}.</footer>
</body>
</html>
"""
    return document.encode("utf-8")


@dataclass(frozen=True)
class ExportResult:
    format: str
    files: tuple[str, ...]
    invoices: int


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _html_names(invoices: Sequence[Invoice]) -> list[str]:
    """A file name per invoice, inside the directory and distinct from the others.

    A customer id is data from a CRM: "a/b" or "../x" must stay a name inside the directory,
    and must not take the file of "a_b". A name that had to be changed (a character outside
    A-Z a-z 0-9 . _ -, or a leading dot that would hide it), or that differs from another
    only in case (one file on macOS and Windows), ends with a short hash of the invoice's
    number or id instead.
    """
    names, taken = [], set()
    for invoice in invoices:
        given = invoice.number or invoice.invoice_id
        name = _UNSAFE.sub("_", given)
        name = "_" + name[1:] if name.startswith(".") else name
        if name != given or name.casefold() in taken:
            name += "-" + hashlib.sha256(given.encode()).hexdigest()[:10]
        if name.casefold() in taken:
            raise OutputError(f"two invoices would be written to the same file {name}.html (one is {given})")
        taken.add(name.casefold())
        names.append(name + ".html")
    return names


def export(invoices: Sequence[Invoice], fmt: str, output: Path | str) -> ExportResult:
    """Write `invoices` as `fmt` to `output`: a file, or a directory (created if missing).

    HTML always writes one file per invoice into a directory; the other formats write one
    file (`invoices.<fmt>` when `output` is an existing directory).
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    wants_directory = isinstance(output, str) and output.endswith(("/", "\\"))
    output = Path(output)
    if fmt == "html" or wants_directory:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{output}: cannot create the directory: {error}") from error
    if fmt == "html":
        written = []
        for invoice, name in zip(invoices, _html_names(invoices)):
            path = output / name
            write_bytes_atomically(path, to_html(invoice))
            written.append(str(path))
        return ExportResult(fmt, tuple(written), len(invoices))
    path = output / f"invoices.{fmt}" if output.is_dir() else output
    if fmt == "json":
        write_bytes_atomically(path, to_json(invoices))
    elif fmt == "csv":
        write_bytes_atomically(path, to_csv(invoices))
    else:
        write_parquet(invoices, path)
    return ExportResult(fmt, (str(path),), len(invoices))
