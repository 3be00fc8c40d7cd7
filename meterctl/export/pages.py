"""An invoice as one self-contained, printable HTML page."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

from meterctl.invoices import Invoice
from meterctl.pricing import major, text

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


def _dates(invoice: Invoice) -> str:
    if invoice.issue_date is None:
        return "Draft: not yet issued" if invoice.status == "draft" else ""
    due = f" · Due {invoice.due_date.isoformat()}" if invoice.due_date else ""
    return f"Issued {invoice.issue_date.isoformat()}{due}"


def _tax_rows(invoice: Invoice, money: Callable[[int], str]) -> str:
    """A row per tax (its rate on what it applies to), or one Tax row of 0 when none applies."""
    e = html.escape
    if not invoice.taxes:
        return f'<tr><td colspan="5" class="num">Tax</td><td class="num">{e(money(invoice.tax_minor))}</td></tr>'
    return "\n".join(
        f'<tr><td colspan="5" class="num">{e(tax.name)} {e(text(tax.rate * 100))}% of {e(money(tax.taxable_minor))}</td>'
        f'<td class="num">{e(money(tax.amount_minor))}</td></tr>' for tax in invoice.taxes)


def _credits_section(invoice: Invoice, money: Callable[[int], str]) -> str:
    """Each grant the credits came from, what it paid, and what it holds after this invoice."""
    used = invoice.credits_by_grant()
    if not used:
        return ""
    e = html.escape
    places = invoice.minor_units
    left = {grant_id: format(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR), "f")
            for grant_id, amount in invoice.grants_left.items()}
    rows = "\n".join(
        f"<tr><td>{e(name)}</td><td>{e(grant_id)}</td><td class=\"num\">{e(money(applied))}</td>"
        f"<td class=\"num\">{e(left.get(grant_id, '0'))} {e(invoice.currency)}</td></tr>"
        for grant_id, name, applied in used)
    return (f"<h2>Credits applied</h2>\n<table>\n<thead><tr><th>Credit</th><th>Grant</th><th class=\"num\">Applied</th>"
            f"<th class=\"num\">Balance left</th></tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n")


def to_html(invoice: Invoice) -> bytes:
    places = invoice.minor_units
    e = html.escape
    money = lambda minor: f"{major(minor, places)} {invoice.currency}"
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
<div class="muted">{_dates(invoice)}</div></div>
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
{_tax_rows(invoice, money)}
<tr class="total"><td colspan="5" class="num">Total</td><td class="num">{e(money(invoice.total_minor))}</td></tr>
</tfoot>
</table>
{_credits_section(invoice, money)}<footer>Priced with {", ".join(e(p) for p in invoice.pricebooks)}; pricebook hashes {", ".join(sorted({e(line.pricebook_hash[:12]) for line in invoice.lines}))}.
Every line traces to its events: <code>meterctl explain {e(invoice.number or invoice.invoice_id)} --line N --events</code>.
Content hash {e(invoice.content_hash)}.</footer>
</body>
</html>
"""
    return document.encode("utf-8")

