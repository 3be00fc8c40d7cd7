"""`meterctl customers import|list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from meterctl import customers, store
from meterctl.cli.common import DbOption, JsonOption, WaitOption, print_json, stderr_console, stdout_console

customers_app = typer.Typer(help="Customers and their subscriptions (imported from a CRM export).", no_args_is_help=True)


@customers_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="customers.yaml or .csv (id,name,currency,timezone,billing,plan,start,end).")],
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Import customers; unchanged ones are left alone, changed ones get a new version."""
    customers.load_customers(file)  # a bad file stops here, before the store is opened
    with store.open_store(db, wait=wait) as con:
        result = customers.import_customers(con, file)
    if as_json:
        print_json(result)
    else:
        stderr_console().print(
            f"{result.source}: {result.customers} customer(s): {result.added} added, "
            f"{result.changed} changed, {result.unchanged} unchanged"
        )


def _subscriptions(subs: list[dict]) -> str:
    return ", ".join(f"{s['plan']} from {s['start']}" + (f" to {s['end']}" if s["end"] else "") for s in subs)


@customers_app.command("list")
def list_command(db: DbOption = store.default_db_path(), wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Every customer as last imported."""
    with store.open_store(db, read_only=True, wait=wait) as con:
        rows = customers.list_customers(con)
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("id", "name", "currency", "timezone", "billing", "subscriptions", "version"):
        table.add_column(column)
    for c in rows:
        table.add_row(c.customer_id, c.name, c.currency, c.timezone, c.billing, _subscriptions(c.subscriptions), str(c.version))
    stdout_console().print(table)


@customers_app.command("show")
def show_command(
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One customer with every imported version, newest first."""
    with store.open_store(db, read_only=True, wait=wait) as con:
        history = customers.customer_history(con, customer_id)
    if as_json:
        print_json({"customer": history[0], "history": history})
        return
    console = stdout_console()
    current = history[0]
    console.print(f"{current.customer_id}  {current.name}")
    console.print(f"currency {current.currency}, time zone {current.timezone}, billing {current.billing}")
    console.print(f"subscriptions: {_subscriptions(current.subscriptions)}")
    for v in history:
        console.print(f"  version {v.version} imported {v.imported_at} from {v.source}")
