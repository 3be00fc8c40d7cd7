"""`meterctl customers import|list|show`."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from meterctl import store
from meterctl.cli.common import (
    DbOption, JsonOption, WaitOption, command_group, print_json, print_table, stderr_console, stdout_console, to_jsonable,
)
from meterctl.cli.usage_cmd import ConfigOption
from meterctl.errors import ConfigError, UsageError

customers_app = command_group("Customers and their subscriptions (imported from a CRM export).")


@customers_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="customers.yaml or .csv (id,name,currency,timezone,billing,plan,start,end).")],
    pricebooks: ConfigOption = None,
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Import customers; unchanged ones are left alone, changed ones get a new version.

    Subscriptions that rating would refuse (a plan without a pricebook, another currency)
    are named as notes: the customers are imported all the same, since pricebooks may be
    published later."""
    from meterctl import customers

    loaded = customers.load_customers(file)  # a bad file stops here, before the store is opened
    with store.open_store(db, wait=wait) as con:
        result = customers.import_customers(con, file, loaded)
    notes = _plan_notes(loaded, pricebooks)
    if as_json:
        print_json({**to_jsonable(result), "plan_notes": list(notes)})
    else:
        stderr_console().print(
            f"{result.source}: {result.customers} customer(s): {result.added} added, "
            f"{result.changed} changed, {result.unchanged} unchanged"
        )
        for note in notes:
            stderr_console().print(f"note: {note}")
        if result.absent:
            shown = ", ".join(result.absent[:5]) + (f" and {len(result.absent) - 5} more" if len(result.absent) > 5 else "")
            stderr_console().print(
                f"note: {len(result.absent)} stored customer(s) are not in this file and stay as they were "
                f"(still billed while subscribed; give a subscription an end: to stop): {shown}")


def _plan_notes(loaded, pricebooks: Path | None) -> tuple[str, ...]:
    """What rating would refuse in the imported subscriptions, when the configuration
    directory can tell: checked against ./pricebooks only when it exists, against a
    directory named by --pricebooks or METERCTL_PRICEBOOKS always."""
    from meterctl.cli.pricing_cmd import load_config
    from meterctl.customers import plan_problems
    from meterctl.meters import config_dir

    directory = config_dir(pricebooks)
    if pricebooks is None and not directory.is_dir():
        return ()
    try:
        _, _, catalog = load_config(directory)
    except ConfigError as error:
        lines = str(error).splitlines()
        more = f" (and {len(lines) - 1} more: 'meterctl config validate' lists them)" if len(lines) > 1 else ""
        return (f"plans not checked: {lines[0]}{more}",)
    return plan_problems(loaded, catalog)


def _subscriptions(subs: list[dict]) -> str:
    return ", ".join(f"{s['plan']} from {s['start']}" + (f" to {s['end']}" if s["end"] else "") for s in subs)


@customers_app.command("list")
def list_command(db: DbOption = store.default_db_path(), wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Every customer as last imported."""
    from meterctl import customers

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
    print_table(stdout_console(), table)


@customers_app.command("show")
def show_command(
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One customer with every imported version, newest first."""
    from meterctl import customers

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


def periods_command(
    customer_id: Annotated[str, typer.Argument(metavar="CUSTOMER")],
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    start: Annotated[str | None, typer.Option("--from", help="First local date (default: a year before --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Local date after the last (default: the 1st of next month).")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="monthly, quarterly or yearly; default: the billing_cycle of the customer's plans.")] = None,
    pricebooks: Annotated[Path | None, typer.Option("--pricebooks", envvar="METERCTL_PRICEBOOKS", help="Configuration directory (for the plans' billing cycle). Default ./pricebooks.")] = None,
) -> None:
    """A customer's billing periods, split into segments where the plan changes."""
    from meterctl import customers
    from meterctl.rating import full_period_days

    today = date.today()
    finish = _date(end, "--to") if end else (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    begin = _date(start, "--from") if start else finish.replace(year=finish.year - 1)
    if begin >= finish:
        raise UsageError("--from must be before --to")
    if cycle not in (None, "monthly", "quarterly", "yearly"):
        raise UsageError(f"--cycle must be monthly, quarterly or yearly, not '{cycle}'")
    with store.open_store(db, read_only=True, wait=wait) as con:
        latest = customers.customer_history(con, customer_id)[0]
        if cycle is None:
            from meterctl.meters import config_dir, load_meters
            from meterctl.pricebook import load_catalog
            from meterctl.rating import customer_cycle

            directory = config_dir(pricebooks)
            cycle = str(customer_cycle(latest, load_catalog(directory, load_meters(directory))))
        try:
            found = customers.billing_segments(con, [customer_id], cycle=cycle, start=begin, end=finish)
        except ValueError as error:  # periods that would run past the year 9999
            raise UsageError(f"--from/--to: {error}") from None
    rows = [
        {
            "customer_id": cid,
            "period_start": s.period.start.isoformat(),
            "period_end": s.period.end.isoformat(),
            "timezone": s.period.tz,
            "plan": s.plan,
            "segment_start": s.start.isoformat(),
            "segment_end": s.end.isoformat(),
            "segment_start_at": s.start_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "segment_end_at": s.end_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days": s.days,
            # A first calendar period that starts mid-month is part of a full one: fees are
            # prorated against the full period's days.
            "period_days": full_period_days(s, cycle, latest.billing),
        }
        for cid, s in found
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{customer_id}: billing periods ({cycle})", title_justify="left")
    for column in ("period", "plan", "segment", "UTC", "days"):
        table.add_column(column)
    for r in rows:
        table.add_row(f"{r['period_start']} … {r['period_end']}", r["plan"], f"{r['segment_start']} … {r['segment_end']}",
                      f"{r['segment_start_at']} … {r['segment_end_at']}", f"{r['days']}/{r['period_days']}")
    print_table(stdout_console(), table)


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a date such as 2026-10-01") from None
