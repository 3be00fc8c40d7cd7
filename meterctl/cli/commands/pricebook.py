"""`meterctl pricebook validate|list|show|diff|schema`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    DbOption,
    JsonOption,
    WaitOption,
    command_group,
    print_json,
    print_table,
    problems_as_json,
    session,
    stderr_console,
    stdout_console,
)

pricebook_app = command_group("Versioned pricebooks: check, list, show and compare them.")


@pricebook_app.command("validate")
def validate_command(
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Check every pricebook (and that frozen versions were not edited); all problems at once, exit 78."""
    with problems_as_json(as_json), session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        catalog = s.validate_pricebooks()
    if as_json:
        print_json({"pricebooks": [{"pricebook": v.ref, "file": v.path, "hash": v.content_hash} for v in catalog.versions],
                    "problems": []})
    else:
        stderr_console().print(f"{len(catalog.versions)} pricebook version(s) of {len(catalog.plans())} plan(s), no problems")


@pricebook_app.command("list")
def list_command(
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Every plan version: when it takes effect, its currency and cycle, whether it is frozen."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        rows = s.pricebooks()
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("pricebook", "effective from", "currency", "cycle", "file", "hash", "frozen"):
        table.add_column(column)
    for r in rows:
        state = "EDITED after freeze" if r.edited_after_freeze else "yes" if r.frozen else "no"
        table.add_row(r.pricebook, r.effective_from.isoformat(), r.currency, r.billing_cycle, r.file, r.hash[:12], state)
    print_table(stdout_console(), table)


def _money(value: Any) -> str:
    return format(value, "f")  # as written in the file: 49.00 stays 49.00


def _describe_charge(charge: Any) -> str:
    if charge.model == "per_unit":
        price = f"{_money(charge.unit_price)} per unit"
    elif charge.model == "package":
        price = f"{_money(charge.package_price)} per {_money(charge.package_size)} units (rounded {charge.round})"
    else:
        price = "; ".join(
            f"{'≤ ' + _money(t.up_to) if t.up_to is not None else 'above'}: {_money(t.unit_price)}"
            + (f" + {_money(t.flat_fee)}" if t.flat_fee else "")
            for t in charge.tiers
        )
    extras = []
    if charge.free_units:
        extras.append(f"{_money(charge.free_units)} free")
    if charge.price_by:
        key = charge.dimension
        extras.append(f"by {key}: " + ", ".join(
            f"{value}={_money(p.unit_price if p.unit_price is not None else p.package_price) if p.tiers is None else 'tiers'}"
            for value, p in charge.price_by[key].items()))
    if charge.minimum is not None:
        extras.append(f"minimum {_money(charge.minimum)}")
    if charge.maximum is not None:
        extras.append(f"maximum {_money(charge.maximum)}")
    return price + (f" ({'; '.join(extras)})" if extras else "")


@pricebook_app.command("show")
def show_command(
    ref: Annotated[str, typer.Argument(metavar="PLAN[@VERSION]", help="A plan (its latest version) or plan@version.")],
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """One pricebook version: fees and charges, with its file and content hash."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        chosen = s.pricebook(ref)
    if as_json:
        print_json({"pricebook": chosen.ref, "file": chosen.path, "hash": chosen.content_hash,
                    "content": json.loads(chosen.book.canonical())})
        return
    book = chosen.book
    console = stdout_console()
    console.print(f"{chosen.ref}  effective {book.effective_from}  {book.currency}  "
                  f"{book.billing_cycle}  rounding {book.rounding}")
    console.print(f"{chosen.path}  sha256 {chosen.content_hash}")
    table = Table()
    for column in ("line", "model", "price"):
        table.add_column(column)
    for fee in book.fees:
        table.add_row(fee.name, "fee", f"{_money(fee.amount)} per period (prorated by day)")
    for charge in book.charges:
        table.add_row(charge.label, charge.model, _describe_charge(charge))
    for credit in book.credits:
        value = _money(credit.value) if credit.amount is not None else \
            f"{_money(credit.credits or 0)} credits at {_money(credit.rate or 0)} = {_money(credit.value)}"
        expires = credit.expires if isinstance(credit.expires, str) else (
            f"{credit.expires.days} days" if credit.expires.days else f"{credit.expires.months} months")
        table.add_row(credit.name, "credit", f"{value} {'every period' if credit.every == 'period' else 'once'}, "
                      f"expires: {expires}, for {', '.join(credit.applies_to)}"
                      + (f", priority {credit.priority}" if credit.priority is not None else ""))
    print_table(console, table)


@pricebook_app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(metavar="PLAN@A")],
    new: Annotated[str, typer.Argument(metavar="PLAN@B")],
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """What changed between two versions (charges are matched by meter, fees by name)."""
    from meterctl.pricebook.diff import ABSENT

    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        result = s.diff_pricebooks(old, new)
    if as_json:
        plain = lambda v: None if v is ABSENT else v
        print_json({"from": result.before, "to": result.after,
                    "changes": [{"key": c.key, "from": plain(c.before), "to": plain(c.after)} for c in result.changes]})
        return
    console = stdout_console()
    if not result.changes:
        console.print(f"{result.before} and {result.after} price the same way")
        return
    table = Table(title=f"{result.before} → {result.after}")
    for column in ("key", result.before, result.after):
        table.add_column(column)
    show = lambda v: "-" if v is ABSENT else json.dumps(v) if isinstance(v, (dict, list)) or v is None else str(v)
    for c in result.changes:
        table.add_row(c.key, show(c.before), show(c.after))
    print_table(console, table)


@pricebook_app.command("schema")
def schema_command() -> None:
    """Print a JSON Schema of pricebook files (for editors: yaml-language-server, IDEs)."""
    from meterctl.pricebook.schema import schema

    print_json(schema())
