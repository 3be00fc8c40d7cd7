"""`meterctl customers import|list|show` and `meterctl periods`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    DbOption,
    JsonOption,
    WaitOption,
    command_group,
    parse_cycle,
    print_json,
    print_table,
    session,
    stderr_console,
    stdout_console,
    to_jsonable,
)
from meterctl.errors import UsageError
from meterctl.instants import iso

if TYPE_CHECKING:
    from meterctl.cycles import Subscription

customers_app = command_group("Customers and their subscriptions (imported from a CRM export).")


@customers_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="customers.yaml or .csv (id,name,currency,timezone,billing,plan,start,end).")],
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Import customers; unchanged ones are left alone, changed ones get a new version.

    Subscriptions that rating would refuse (a plan without a pricebook, another currency)
    are named as notes: the customers are imported all the same, since pricebooks may be
    published later."""
    with session(db, pricebooks=pricebooks, wait=wait) as s:
        result = s.import_customers(file)
    if as_json:
        print_json(to_jsonable(result))
        return
    console = stderr_console()
    console.print(f"{result.source}: {result.customers} customer(s): {result.added} added, "
                  f"{result.changed} changed, {result.unchanged} unchanged")
    for note in result.plan_notes:
        console.print(f"note: {note}")
    if result.absent:
        shown = ", ".join(result.absent[:5]) + (f" and {len(result.absent) - 5} more" if len(result.absent) > 5 else "")
        console.print(f"note: {len(result.absent)} stored customer(s) are not in this file and stay as they were "
                      f"(still billed while subscribed; give a subscription an end: to stop): {shown}")


def _subscriptions(subs: Sequence[Subscription]) -> str:
    return ", ".join(f"{s.plan} from {s.start}" + (f" to {s.end}" if s.end else "") for s in subs)


@customers_app.command("list")
def list_command(db: DbOption = DEFAULT_DB_OPTION, wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Every customer as last imported."""
    with session(db, wait=wait, read_only=True) as s:
        rows = s.customers()
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("id", "name", "currency", "timezone", "billing", "subscriptions", "version"):
        table.add_column(column)
    for c in rows:
        table.add_row(c.customer_id, c.name, c.currency, c.timezone, c.billing, _subscriptions(c.subscriptions), str(c.version))
    print_table(stdout_console(), table)


@customers_app.command("show")
def show_command(
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One customer with every imported version, newest first."""
    with session(db, wait=wait, read_only=True) as s:
        history = s.customer(customer_id)
    if as_json:
        print_json({"customer": history[0], "history": history})
        return
    console = stdout_console()
    current = history[0]
    console.print(f"{current.customer_id}  {current.name}")
    console.print(f"currency {current.currency}, time zone {current.timezone}, billing {current.billing}")
    console.print(f"subscriptions: {_subscriptions(current.subscriptions)}")
    for key, value in current.details.items():
        shown = " / ".join(value) if key == "address" else ", ".join(value) if key == "taxes" else value
        console.print(f"{key.replace('_', ' ')}: {shown}", highlight=False)
    for v in history:
        console.print(f"  version {v.version} imported {iso(v.imported_at)} from {v.source}")


def periods_command(
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    start: Annotated[str | None, typer.Option("--from", help="First local date (default: a year before --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Local date after the last (default: the 1st of next month).")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="monthly, quarterly or yearly; default: the billing_cycle of the customer's plans.")] = None,
    pricebooks: Annotated[Path | None, typer.Option("--pricebooks", envvar="METERCTL_PRICEBOOKS", help="Configuration directory (for the plans' billing cycle). Default ./pricebooks.")] = None,
) -> None:
    """A customer's billing periods, split into segments where the plan changes."""
    today = date.today()
    finish = _date(end, "--to") if end else (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    begin = _date(start, "--from") if start else finish.replace(year=finish.year - 1)
    if begin >= finish:
        raise UsageError("--from must be before --to")
    chosen = parse_cycle(cycle)
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        found = s.periods(customer_id, begin, finish, chosen)
    if as_json:
        print_json(list(found.segments))
        return
    table = Table(title=f"{customer_id}: billing periods ({found.cycle})", title_justify="left")
    for column in ("period", "plan", "segment", "UTC", "days"):
        table.add_column(column)
    for r in found.segments:
        table.add_row(f"{r.period_start} … {r.period_end}", r.plan, f"{r.segment_start} … {r.segment_end}",
                      f"{iso(r.segment_start_at)} … {iso(r.segment_end_at)}", f"{r.days}/{r.period_days}")
    print_table(stdout_console(), table)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a date such as 2026-10-01") from None
