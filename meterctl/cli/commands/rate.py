"""`meterctl rate` and `meterctl simulate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    CustomerOption,
    DbOption,
    JsonOption,
    PeriodOption,
    WaitOption,
    check_output,
    print_json,
    print_table,
    session,
    short,
    stderr_console,
    stdout_console,
)
from meterctl.errors import MeterctlError, UsageError
from meterctl.instants import iso

if TYPE_CHECKING:
    from meterctl.rating.lines import RatedLine
    from meterctl.rating.month import RatingResult
    from meterctl.unbilled import Unbilled


def _line_json(line: RatedLine) -> dict[str, Any]:
    document = line.canonical()
    document["pricebook"] = line.pricebook
    return document


def _summary_rows(result: RatingResult, per_customer: bool) -> list[dict[str, Any]]:
    """Totals per customer × period, or (the default, short enough for a cron log) per pricebook."""
    from meterctl.pricing import major, minor_units

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in result.lines:
        if per_customer:
            key: tuple[Any, ...] = (line.customer_id, line.period_start, line.period_end)
            first = {"customer_id": line.customer_id, "period": f"[{line.period_start}, {line.period_end})"}
        else:
            key = (line.pricebook, line.currency)
            first = {"pricebook": line.pricebook}
        row = rows.setdefault(key, {**first, "pricebooks": [], "customers": set(), "lines": 0, "minor": 0, "currency": line.currency})
        if line.pricebook not in row["pricebooks"]:
            row["pricebooks"].append(line.pricebook)
        row["customers"].add(line.customer_id)
        row["lines"] += 1
        row["minor"] += line.amount_minor
    for row in rows.values():
        row["amount"] = major(row.pop("minor"), minor_units(row["currency"]))
        row["customers"] = len(row["customers"])
    return list(rows.values()) if per_customer else sorted(rows.values(), key=lambda r: (r["currency"], r["pricebook"]))


StrictOption = Annotated[bool, typer.Option(
    "--strict", help="Exit 65 when any event of the month is not billed (other than ignore_events).")]


def warn_unbilled(console: Console, result: RatingResult) -> None:
    """Everything metered that no line will carry: said on stderr, never dropped in silence."""
    for u in result.unmeterable:
        console.print(f"warning: {u.events} unmeterable event(s) for {short(u.customer_id)} / {u.meter} not billed: "
                      f"{u.reason}", style="yellow")
    for s in result.open_sessions:
        console.print(f"note: open session {short(s.session)} of {short(s.customer_id)} / {s.meter}, "
                      f"last seen {iso(s.last_event_at)}")
    for customer_id, why in result.unpriceable:
        console.print(f"warning: {short(customer_id)} not rated: {why}", style="yellow")
    if result.unbilled is not None and result.unbilled.any():
        print_unbilled(console, result.unbilled)


def print_unbilled(console: Console, unbilled: Unbilled) -> None:
    """The unbilled events of a month as a short table, one row per reason that has any."""
    from meterctl.pricing import text
    from meterctl.unbilled import REASONS, REMEDY

    table = Table(title=f"Events in {unbilled.period} not billed", title_justify="left")
    for column in ("reason", "events", "quantity", "customers", "first event", "what to do"):
        table.add_column(column, justify="right" if column in ("events", "quantity") else "left")
    for reason in REASONS:
        found = unbilled[reason]
        if not found.events:
            continue
        more = f" +{found.customer_count - len(found.customers)}" if found.customer_count > len(found.customers) else ""
        table.add_row(reason, str(found.events), text(found.quantity),
                      ", ".join(short(c) for c in found.customers) + more, short(found.first_event_id or ""),
                      REMEDY[reason], style=None if reason == "ignored" else "yellow")
    print_table(console, table)


def strict_refusal(result: RatingResult, strict: bool) -> MeterctlError | None:
    """With --strict, unbilled events (other than ignored ones) are exit 65."""
    return result.unbilled.refusal() if strict and result.unbilled is not None else None


def _note_open_periods(console: Console, result: RatingResult) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    still_open = {(line.customer_id, line.period_start) for line in result.lines if line.window_end > now}
    if still_open:
        console.print(f"note: {len(still_open)} billing period(s) have not ended yet: their usage may still grow")


def rate_command(
    period: PeriodOption,
    customer: CustomerOption = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    detail: Annotated[bool, typer.Option("--detail", help="A row per customer and period instead of per pricebook.")] = False,
    strict: StrictOption = False,
) -> None:
    """Rate the billing periods that end in a month and record the run and its lines."""
    with session(db, pricebooks=pricebooks, wait=wait) as s:
        result = s.rate(period, customer)
    console = stderr_console()
    warn_unbilled(console, result)
    refusal = result.refusal(len(result.lines), "nothing rated")
    if not result.lines and refusal is not None:
        raise refusal
    refusal = refusal or strict_refusal(result, strict)
    for ref in result.newly_frozen:
        console.print(f"froze {ref}: its file may no longer change (publish a new version instead)")
    if as_json:
        print_json({"run_id": result.run_id, "run_hash": result.run_hash, "period": result.period,
                    "customers": result.customers_rated, "segments": result.segments,
                    "pricebooks": list(result.pricebooks),
                    "unpriceable": [{"customer_id": c, "reason": why} for c, why in result.unpriceable],
                    "unbilled": result.unbilled.document() if result.unbilled else {},
                    "lines": [_line_json(line) for line in result.lines]})
    else:
        table = Table()
        columns = ("customer", "period", "pricebook", "lines", "amount", "currency") if detail else \
            ("pricebook", "customers", "lines", "amount", "currency")
        for column in columns:
            table.add_column(column, justify="right" if column in ("customers", "lines", "amount") else "left")
        for row in _summary_rows(result, detail):
            if detail:
                table.add_row(row["customer_id"], row["period"], ", ".join(row["pricebooks"]), str(row["lines"]),
                              row["amount"], row["currency"])
            else:
                table.add_row(row["pricebook"], str(row["customers"]), str(row["lines"]), row["amount"], row["currency"])
        print_table(stdout_console(), table)
        console.print(f"rating run {result.run_id}: {result.customers_rated} customer(s), {result.segments} segment(s), "
                      f"{len(result.lines)} line(s); run hash {result.run_hash[:16]}")
        _note_open_periods(console, result)
    if refusal is not None:
        raise refusal


def simulate_command(
    pricebook: Annotated[Path, typer.Option("--pricebook", help="The candidate pricebook file (need not be published).")],
    period: PeriodOption,
    customer: CustomerOption = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    fmt: Annotated[str | None, typer.Option("--format", help="csv: the comparison as CSV on stdout (or -o).")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the CSV to this file.")] = None,
) -> None:
    """Rate a past month under a candidate pricebook, writing nothing: current vs candidate per customer."""
    if fmt not in (None, "csv"):
        raise UsageError(f"--format must be csv, not '{fmt}'")
    if as_json and (fmt or output):
        raise UsageError("--json prints JSON on stdout; --format csv and -o write CSV: choose one")
    path = check_output(output, instead="--format csv without -o prints the CSV on standard output")
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        result = s.simulate(pricebook, period, customer, output=path)
    plan = result.candidate.partition("@")[0]
    if not result.rows:
        stderr_console().print(f"no customer on plan '{plan}' has a billing period ending in {period}")
    if path is not None:
        return
    if fmt == "csv":
        from meterctl.export.simulation import simulation_csv

        typer.echo(simulation_csv(result).decode(), nl=False)
        return
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{result.candidate} (candidate, {result.candidate_file}) for periods ending in {period}")
    for column in ("customer", "current pricebook", "current", "candidate", "difference", "currency"):
        table.add_column(column, justify="right" if column in ("current", "candidate", "difference") else "left")
    for r in result.rows:
        table.add_row(r.customer_id, r.current_pricebook, r.current, r.candidate, r.difference, r.currency)
    for t in result.totals:
        table.add_row("total", "", t.current, t.candidate, t.difference, t.currency, end_section=False)
    print_table(stdout_console(), table)
