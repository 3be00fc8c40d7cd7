"""`meterctl invoice [--period …] | list | show | export | verify` and `meterctl explain`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from meterctl.cli.commands.rate import StrictOption, strict_refusal, warn_unbilled
from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    CustomerOption,
    DbOption,
    JsonOption,
    WaitOption,
    check_output,
    command_group,
    print_json,
    print_table,
    session,
    stderr_console,
    stdout_console,
)
from meterctl.errors import UsageError
from meterctl.instants import iso

if TYPE_CHECKING:
    from meterctl.invoices import Invoice

invoice_app = command_group(
    help="Invoices: build them for a month (--period), then list, show, export and verify them.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _money(minor: int | None, currency: str, signed: bool = False) -> str:
    from meterctl.pricing import major, minor_units

    if minor is None:
        return ""
    text = major(minor, minor_units(currency))
    return f"+{text}" if signed and minor > 0 else text


def _invoice_table(invoices, title: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("invoice", "number", "status", "customer", "period", "total", "currency", "change"):
        table.add_column(column, justify="right" if column in ("total", "change") else "left")
    for i in invoices:
        table.add_row(i.invoice_id, i.number or "-", i.status, i.customer_id, f"[{i.period_start}, {i.period_end})",
                      _money(i.total_minor, i.currency), i.currency, _money(i.delta_minor, i.currency, signed=True))
    return table


@invoice_app.callback()
def invoice_command(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option("--period", help="Build invoices for billing periods ending in this month (YYYY-MM).")] = None,
    customer: CustomerOption = None,
    finalize: Annotated[bool, typer.Option("--finalize", help="Finalize them: number them and make them immutable.")] = False,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    strict: StrictOption = False,
) -> None:
    """Build (or rebuild) the invoices of a month: rates it afresh, writes drafts or new revisions."""
    if ctx.invoked_subcommand is not None:
        given = [name for name in ("period", "customer", "finalize", "pricebooks", "db", "wait", "as_json", "strict")
                 if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"]
        if given:
            options = ", ".join("--" + name.replace("as_", "").replace("_", "-") for name in given)
            raise UsageError(f"{options}: put options after the subcommand "
                             f"('meterctl invoice {ctx.invoked_subcommand} {options.split(', ')[0]} …')")
        return
    if period is None:
        raise UsageError("missing --period YYYY-MM (or a subcommand: list, show, export, verify)")
    with session(db, pricebooks=pricebooks, wait=wait) as s:
        run = s.invoice(period, customer, finalize=finalize)
    console = stderr_console()
    warn_unbilled(console, run.rating)
    refusal = run.refusal()
    if not run.outcomes and refusal is not None:
        raise refusal
    refusal = refusal or strict_refusal(run.rating, strict)
    if as_json:
        print_json({"period": period, "rating_run_id": run.rating.run_id, "invoices": list(run.outcomes),
                    "unpriceable": [{"customer_id": c, "reason": why} for c, why in run.rating.unpriceable],
                    "unbilled": run.rating.unbilled.document() if run.rating.unbilled else {}})
        if refusal is not None:
            raise refusal
        return

    table = Table(title=f"Invoices for billing periods ending in {period}")
    for column in ("invoice", "number", "customer", "period", "total", "currency", "change", "action"):
        table.add_column(column, justify="right" if column in ("total", "change") else "left")
    for o in run.outcomes:
        table.add_row(o.invoice_id, o.number or "draft", o.customer_id, f"[{o.period_start}, {o.period_end})",
                      _money(o.total_minor, o.currency), o.currency, _money(o.delta_minor, o.currency, signed=True), o.action)
    print_table(stdout_console(), table)
    actions: dict[str, int] = {}
    for o in run.outcomes:
        actions[o.action] = actions.get(o.action, 0) + 1
    console.print(f"{len(run.outcomes)} invoice(s): " + ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
                  + f" (rating run {run.rating.run_id})")
    still_open = sum(o.period_open for o in run.outcomes)
    if still_open:
        console.print(f"note: {still_open} of them are for billing periods that have not ended yet: "
                      "their usage may still grow (they cannot be finalized before the period is over)")
    if refusal is not None:
        raise refusal


@invoice_app.command("list")
def list_command(
    period: Annotated[str | None, typer.Option("--period", help="Billing periods ending in this month (YYYY-MM).")] = None,
    customer: CustomerOption = None,
    status: Annotated[str | None, typer.Option("--status", help="draft, finalized or superseded.")] = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Invoices and their revisions."""
    if status not in (None, "draft", "finalized", "superseded"):
        raise UsageError(f"--status must be draft, finalized or superseded, not '{status}'")
    with session(db, wait=wait, read_only=True) as s:
        invoices = s.invoices(period=period, customers=customer, status=status)
    if as_json:
        print_json(invoices)
        return
    print_table(stdout_console(), _invoice_table(invoices))


def _render_invoice(invoice: Invoice) -> None:
    from meterctl.pricing import text

    console = stdout_console()
    title = invoice.number or "draft"
    console.print(f"{invoice.invoice_id}  {title}  {invoice.status}  revision {invoice.revision}"
                  + (f", supersedes {invoice.supersedes}" if invoice.supersedes else "")
                  + (f", superseded by {invoice.superseded_by}" if invoice.superseded_by else ""))
    console.print(f"{invoice.customer_name} ({invoice.customer_id})  period [{invoice.period_start}, {invoice.period_end}) "
                  f"{invoice.timezone}  {invoice.currency}")
    table = Table()
    for column in ("#", "line", "dimensions", "segment", "quantity", "unit price", "amount", "pricebook"):
        table.add_column(column, justify="right" if column in ("#", "quantity", "unit price", "amount") else "left")
    for line in invoice.lines:
        dims = ", ".join(f"{k}={v}" for k, v in line.dimensions.items())
        segment = "" if (line.segment_start, line.segment_end) == (invoice.period_start, invoice.period_end) else \
            f"[{line.segment_start}, {line.segment_end})" + (f" × {line.proration}" if line.proration else "")
        if not segment and line.proration:
            segment = f"× {line.proration}"
        table.add_row(str(line.line_no), f"{line.kind}: {line.name}", dims, segment,
                      text(line.quantity) if line.kind == "usage" else "",
                      "" if line.unit_price is None else text(line.unit_price),
                      _money(line.amount_minor, invoice.currency), line.pricebook)
    print_table(console, table)
    for grant_id, name, applied in invoice.credits_by_grant():
        console.print(f"credit  {name} ({grant_id}): {_money(applied, invoice.currency)} {invoice.currency}")
    console.print(f"subtotal {_money(invoice.subtotal_minor, invoice.currency)}  credits {_money(invoice.credits_minor, invoice.currency)}  "
                  f"tax {_money(invoice.tax_minor, invoice.currency)}  total {_money(invoice.total_minor, invoice.currency)} "
                  f"{invoice.currency}" + (f"  (change {_money(invoice.delta_minor, invoice.currency, signed=True)})"
                                                  if invoice.delta_minor is not None else ""))


@invoice_app.command("show")
def show_command(
    reference: Annotated[str, typer.Argument(metavar="ID", help="Invoice id (cus_1-20261001-r1) or number (INV-2026-000001).")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One invoice with its lines."""
    from meterctl.export import invoice_document

    with session(db, wait=wait, read_only=True) as s:
        invoice = s.get_invoice(reference)
    if as_json:
        document = invoice_document(invoice)
        document["superseded_by"] = invoice.superseded_by
        print_json(document)
        return
    _render_invoice(invoice)


@invoice_app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="json, csv, parquet or html (one page per invoice).")],
    output: Annotated[str, typer.Option("-o", "--output", help="A file, or a directory (an existing one, or ending in /; html always writes a directory).")],
    period: Annotated[str | None, typer.Option("--period", help="Billing periods ending in this month (YYYY-MM).")] = None,
    customer: CustomerOption = None,
    include_superseded: Annotated[bool, typer.Option("--all-revisions", help="Every revision, not only the latest of each period.")] = False,
    status: Annotated[str | None, typer.Option("--status", help="Only draft or finalized invoices (the latest such revision of each period).")] = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Write invoices to files, atomically and byte for byte reproducibly."""
    from meterctl.export import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    check_output(output, instead="'meterctl invoice list --json' prints invoices on standard output")
    with session(db, wait=wait, read_only=True) as s:
        result = s.export(fmt, output, period=period, customers=customer, all_revisions=include_superseded, status=status)
    if as_json:
        print_json(result)
    else:
        where = result.files[0] if len(result.files) == 1 else f"{len(result.files)} files in {output}"
        stderr_console().print(f"exported {result.invoices} invoice(s) as {fmt} to {where}")


@invoice_app.command("verify")
def verify_command(
    reference: Annotated[str, typer.Argument(metavar="ID", help="Invoice id or number.")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Derive the invoice again from the stored events and pricebook snapshot: identical, or the difference (exit 65)."""
    with session(db, wait=wait, read_only=True) as s:
        result = s.verify(reference)
    if as_json:
        print_json(result)
    elif result.identical:
        stdout_console().print(f"{result.invoice_id}: identical (content hash {result.stored_hash[:16]})")
    else:
        table = Table(title=f"{result.invoice_id}: differs from what the stored events give now")
        for column in ("line", "field", "on the invoice", "derived now"):
            table.add_column(column)
        for d in result.differences:
            table.add_row(d.line, d.field, d.stored, d.derived)
        print_table(stdout_console(), table)
    if result.later_events:
        stderr_console().print(
            f"note: {result.later_events} event(s) for this period were ingested after it was rated: "
            + (f"revision {result.superseded_by} includes them" if result.superseded_by
               else "run 'meterctl invoice --period …' for a revision that includes them"))
    refusal = result.refusal()
    if refusal is not None:  # the differences were shown: the exit code says the rest
        raise typer.Exit(refusal.exit_code)


def explain_command(
    reference: Annotated[str, typer.Argument(metavar="INVOICE_ID", help="Invoice id or number.")],
    line: Annotated[int | None, typer.Option("--line", help="Only this line number.")] = None,
    events: Annotated[bool, typer.Option("--events", help="List the events behind each line.")] = False,
    output: Annotated[str | None, typer.Option("-o", "--output", help="With --events: write them as JSONL to this file.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events per line on screen (-o writes all).")] = 20,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Walk an invoice back: line → rated record → usage window and meter → events (with file and line)."""
    from meterctl.pricing import text

    if output is not None and not events:
        raise UsageError("-o writes the events: add --events")
    path = check_output(output, instead="leave out -o to list the events, or add --json")
    if path is not None:
        with session(db, wait=wait, read_only=True) as s:
            written = s.export_events(reference, path, line=line)
        stderr_console().print(f"wrote {written.events} event(s) to {written.path}")
        return
    with session(db, wait=wait, read_only=True) as s:
        result = s.explain(reference, line=line, events=events, limit=None if as_json else limit)
    if as_json:
        print_json(result)
        return
    _render_invoice(result.invoice)
    console = stdout_console()
    for x in result.lines:
        invoice_line = x.line
        console.print(f"\nline {invoice_line.line_no}: {invoice_line.kind} {invoice_line.name} = {_money(invoice_line.amount_minor, result.invoice.currency)} "
                      f"{result.invoice.currency} (exact {invoice_line.precise_amount})")
        console.print(f"  rated record: run {x.rating_run_id} line {x.rated_line_no}; pricebook {invoice_line.pricebook} sha256 {invoice_line.pricebook_hash[:16]}")
        if invoice_line.tiers:
            for t in invoice_line.tiers:
                console.print(f"  tier {t['tier']}: {t['units']} units above {t['lower']} at {t['unit_price']}"
                              + (f" + {t['flat_fee']}" if t["flat_fee"] != "0" else "") + f" = {t['amount']}")
        if x.meter is not None:
            console.print(f"  usage window [{iso(invoice_line.window_start)}, {iso(invoice_line.window_end)}); meter {x.meter['name']}: "
                          f"{x.meter['aggregation']} of event_name={x.meter['event_name']}"
                          + (f", {', '.join(f'{k}={v}' for k, v in invoice_line.dimensions.items())}" if invoice_line.dimensions else "")
                          + f" → {x.event_count} event(s), quantity {text(invoice_line.quantity)}")
            for e in x.events:
                console.print(f"    {e.timestamp}  {e.event_id}  {e.event_name}  quantity={e.quantity}  {e.source}:{e.source_line}"
                              + ("" if e.meterable else "  (unmeterable: not counted)"))
            if events and x.event_count and x.event_count > len(x.events):
                console.print(f"    … {x.event_count - len(x.events)} more (use -o FILE to write them all)")
            if x.later_events:
                console.print(f"  + {x.later_events} event(s) ingested after this line was rated (not on this invoice)")
        for applied, grant in x.credits:
            console.print(f"  credit: {_money(applied, result.invoice.currency)} {result.invoice.currency} from "
                          f"{grant.name} ({grant.grant_id}): {text(grant.amount)} {grant.currency} granted by "
                          f"{grant.source}, effective {iso(grant.effective_at)}"
                          + (f", expires {iso(grant.expires_at)}" if grant.expires_at else "")
                          + (f", key {grant.key}" if grant.key else "") + (f" ({grant.reason})" if grant.reason else ""))
