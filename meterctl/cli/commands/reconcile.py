"""`meterctl reconcile`: does a month add up?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from meterctl.cli.commands.rate import print_unbilled
from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    CustomerOption,
    DbOption,
    JsonOption,
    WaitOption,
    print_json,
    print_table,
    session,
    short,
    stdout_console,
)

if TYPE_CHECKING:
    from meterctl.reconcile import Reconciliation


def reconcile_command(
    period: Annotated[str, typer.Option("--period", help="The month to close: YYYY-MM (the billing periods that end in it).")],
    customer: CustomerOption = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Account for every event of a month and check its invoices; exit 65 when it does not add up."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        result = s.reconcile(period, customer)
    refusal = result.refusal()
    if as_json:
        print_json(result.document())
    else:
        _show(result)
    if refusal is not None:
        raise refusal


def _show(result: Reconciliation) -> None:
    out = stdout_console()
    late = sum(i.events for i in result.late)
    verdict = "reconciles" if result.ok else "does NOT reconcile"
    out.print(f"{result.period} {verdict}: {result.in_period} event(s), {result.billed} billed, "
              f"{result.unbilled.lost} unbilled, {result.not_invoiced} not invoiced yet, {late} late",
              style="green" if result.ok else "bold red")
    if result.duplicates or result.conflicts:
        out.print(f"ingest set aside {result.duplicates} identical resend(s) and {result.conflicts} conflict(s) "
                  "of this month's events ('meterctl conflicts list')")
    if result.drafts_behind:
        events = sum(d.events for d in result.drafts_behind)
        out.print(f"{len(result.drafts_behind)} draft(s) do not carry the {events} event(s) ingested since they were "
                  f"built: 'meterctl invoice --period {result.period}' brings them up to date")
    if result.unbilled.any():
        print_unbilled(out, result.unbilled)
    failing = [check for check in result.checks if not check.ok]
    if not failing:
        return
    table = Table(title="Checks that fail", title_justify="left")
    for column in ("check", "expected", "found", "gap", "see"):
        table.add_column(column, justify="right" if column in ("expected", "found", "gap") else "left")
    for check in failing:
        table.add_row(check.name, str(check.expected), str(check.actual), str(check.gap), check.see or "")
    print_table(out, table)
    for check in failing:
        for problem in check.problems:
            out.print(f"{check.name}: {short(problem, 200)}", highlight=False)
