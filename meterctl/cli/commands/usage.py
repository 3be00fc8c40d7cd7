"""`meterctl usage`: usage per customer × meter × window, as a table, JSON, CSV or Parquet."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    DbOption,
    JsonOption,
    WaitOption,
    check_output,
    parse_cycle,
    print_json,
    print_table,
    session,
    stderr_console,
    stdout_console,
)
from meterctl.errors import UsageError
from meterctl.instants import IsoCache, local_instant, time_zone


def usage_command(
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    pricebooks: ConfigOption = None,
    as_json: JsonOption = False,
    window: Annotated[str, typer.Option("--window", help="hour, day, month or period (billing periods, split at plan changes).")] = "day",
    start: Annotated[str | None, typer.Option("--from", help="Start (date or date-time, in --tz); default: start of this month.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive; default: start of next month.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the windows.")] = "UTC",
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")] = None,
    meter: Annotated[list[str] | None, typer.Option("--meter", help="Only this meter (repeatable).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or parquet (with -o).")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="With --window period: monthly, quarterly or yearly; default: each customer's plan's billing_cycle.")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the rows to this file.")] = None,
) -> None:
    """Usage per customer × meter × window."""
    zone = time_zone(tz)
    begin = local_instant(start, zone, "start") if start is not None else None
    finish = local_instant(end, zone, "end") if end is not None else None
    if fmt not in (None, "csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, not '{fmt}'")
    if fmt and output is None:
        raise UsageError("--format needs -o FILE")
    chosen_cycle = parse_cycle(cycle)
    path = check_output(output, instead="--json prints the rows on standard output")
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        result = s.usage(window=window, start=begin, end=finish, tz=tz, customers=customer, meters=meter,
                         cycle=chosen_cycle)
    console = stderr_console()
    for u in result.unmeterable:
        console.print(f"warning: {u.events} unmeterable event(s) for {u.customer_id} / {u.meter}: {u.reason}", style="yellow")
    shown = IsoCache()
    for session_ in result.open_sessions:
        console.print(f"note: open session {session_.session} of {session_.customer_id} / {session_.meter}, "
                      f"last seen {shown[session_.last_event_at]}")
    if path is not None:  # written once the warnings are out, as they concern the rows
        s.write_usage(result, path, fmt)
    if as_json or path is not None:
        if as_json:
            from meterctl.export.usage import usage_document

            print_json(usage_document(result))
        return
    from meterctl.pricing import text

    table = Table()
    for column in ("customer", "meter", "window start", "window end", "dimensions", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in result.rows:
        dims = ", ".join(f"{k}={v}" for k, v in r.dimensions.items())
        table.add_row(r.customer_id, r.meter, shown[r.window_start], shown[r.window_end], dims,
                      "-" if r.value is None else text(r.value))
    print_table(stdout_console(), table)
