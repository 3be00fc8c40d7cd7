"""`meterctl wallet grant|void|balance|ledger`: prepaid credits in customers' wallets."""

from __future__ import annotations

from decimal import Decimal
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
    print_json,
    print_table,
    session,
    short,
    stderr_console,
    stdout_console,
)
from meterctl.instants import iso
from meterctl.pricing import text

if TYPE_CHECKING:
    from meterctl.credits import Grant

wallet_app = command_group("Prepaid credits: grants to customers' wallets, their balances and ledger.")

TimeHelp = "RFC 3339 (2026-10-01T00:00:00Z), or a date: midnight in the customer's time zone."


def _money(value: Decimal) -> str:
    return text(value)


@wallet_app.command("grant")
def grant_command(
    customer: Annotated[str, typer.Argument(help="The customer whose wallet gets the money.")],
    amount: Annotated[str | None, typer.Option("--amount", help="Money granted, in the customer's currency.")] = None,
    credits: Annotated[str | None, typer.Option("--credits", help="Credits granted (with --rate).")] = None,
    rate: Annotated[str | None, typer.Option("--rate", help="Money per credit (1 credit = RATE).")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="Must be the customer's (the default).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Shown on invoices and in the ledger.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", help="Lower burns first; unset after every set one.")] = None,
    effective: Annotated[str | None, typer.Option("--effective", help=f"From when (default now): {TimeHelp}")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help=f"Until when (default never): {TimeHelp}")] = None,
    applies_to: Annotated[list[str] | None, typer.Option(
        "--applies-to", help="usage (default: every usage line), all (fees too), or a meter (repeatable).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why: kept in the ledger.")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Idempotency key: asked again with the same key and parameters, the first grant is returned.")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Add money (or credits at a rate) to a customer's wallet."""
    with session(db, pricebooks=pricebooks, wait=wait) as s:
        outcome = s.grant(customer, amount=amount, credits=credits, rate=rate, currency=currency, name=name,
                          priority=priority, effective=effective, expires=expires, applies_to=applies_to or (),
                          reason=reason, key=key)
    if as_json:
        print_json({**_grant_json(outcome.grant), "created": outcome.created})
        return
    g = outcome.grant
    said = "granted" if outcome.created else "already granted with this key (nothing more granted)"
    stderr_console().print(f"{g.grant_id}: {said}: {_money(g.amount)} {g.currency} to {short(g.customer_id)} "
                           f"({g.name}), effective {iso(g.effective_at)}"
                           + (f", expires {iso(g.expires_at)}" if g.expires_at else ""))


def _grant_json(g: Grant) -> dict:
    return {"grant_id": g.grant_id, "customer_id": g.customer_id, "currency": g.currency, "name": g.name,
            "amount": _money(g.amount), "credits": _money(g.credits) if g.credits is not None else None,
            "rate": _money(g.rate) if g.rate is not None else None, "priority": g.priority,
            "effective": iso(g.effective_at), "expires": iso(g.expires_at) if g.expires_at else None,
            "applies_to": list(g.applies_to), "reason": g.reason, "key": g.key, "source": g.source,
            "voided_at": iso(g.voided_at) if g.voided_at else None}


@wallet_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="grants.yaml or .csv (customer,key,amount,credits,rate,currency,name,"
                                               "priority,effective,expires,applies_to,reason).")],
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Grants from a CRM or payment-system export, each with its idempotency key: importing
    the file again grants nothing more."""
    with session(db, pricebooks=pricebooks, wait=wait) as s:
        result = s.import_grants(file)
    if as_json:
        print_json(result)
        return
    stderr_console().print(f"{result.source}: {result.grants} grant(s): {result.created} granted, "
                           f"{result.grants - result.created} granted before with the same key")


@wallet_app.command("void")
def void_command(
    grant_id: Annotated[str, typer.Argument(help="The grant (CUSTOMER-gN).")],
    at: Annotated[str | None, typer.Option("--at", help=f"From when (default now): {TimeHelp}")] = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """What remains of a grant is no longer available from then on; what it paid stays paid."""
    with session(db, wait=wait) as s:
        outcome = s.void_grant(grant_id, at=at)
    if as_json:
        print_json({"grant_id": outcome.grant.grant_id, "voided_at": iso(outcome.voided_at),
                    "released": _money(outcome.released), "currency": outcome.grant.currency})
        return
    stderr_console().print(f"{outcome.grant.grant_id}: voided at {iso(outcome.voided_at)}; "
                           f"{_money(outcome.released)} {outcome.grant.currency} no longer available")


@wallet_app.command("balance")
def balance_command(
    customer: Annotated[list[str] | None, typer.Argument(help="Customers (default: all).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="As of when (default now): RFC 3339, or a date (the customer's midnight; UTC for several).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Each customer's available balance, its ongoing balance (less what the open billing
    period's usage so far would take) and its grants."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        found = s.wallet_balance(customer or None, at=at)
    if as_json:
        print_json([{"customer_id": b.customer_id, "currency": b.currency, "at": iso(b.at),
                     "available": _money(b.available),
                     "ongoing": _money(b.ongoing) if b.ongoing is not None else None,
                     "open_period": [iso(b.open_period[0]), iso(b.open_period[1])] if b.open_period else None,
                     "grants": [{"grant_id": g.grant_id, "name": g.name, "remaining": _money(g.remaining),
                                 "priority": g.priority, "effective": iso(g.effective_at),
                                 "expires": iso(g.expires_at) if g.expires_at else None, "status": g.status}
                                for g in b.grants]} for b in found])
        return
    table = Table()
    for column in ("customer", "available", "ongoing", "currency", "grant", "name", "remaining", "priority",
                   "effective", "expires", "status"):
        table.add_column(column, justify="right" if column in ("available", "ongoing", "remaining", "priority") else "left")
    for b in found:
        ongoing = _money(b.ongoing) if b.ongoing is not None else "-"
        if not b.grants:
            table.add_row(short(b.customer_id), _money(b.available), ongoing, b.currency, "", "", "", "", "", "", "")
        for i, g in enumerate(b.grants):
            table.add_row(short(b.customer_id) if i == 0 else "", _money(b.available) if i == 0 else "",
                          ongoing if i == 0 else "", b.currency if i == 0 else "", g.grant_id, short(g.name),
                          _money(g.remaining),
                          "" if g.priority is None else str(g.priority), iso(g.effective_at),
                          iso(g.expires_at) if g.expires_at else "never", g.status)
    print_table(stdout_console(), table)


@wallet_app.command("ledger")
def ledger_command(
    customer: Annotated[str, typer.Argument(help="The customer.")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Every entry of a customer's wallet, oldest first, with the running balance."""
    with session(db, wait=wait, read_only=True) as s:
        lines = s.wallet_ledger(customer)
    if as_json:
        print_json([{"entry_id": line.entry.entry_id if line.recorded else None, "at": iso(line.entry.at),
                     "kind": line.entry.kind, "grant_id": line.entry.grant_id, "name": line.grant_name,
                     "amount": _money(line.entry.amount), "invoice_id": line.entry.invoice_id,
                     "balance": _money(line.balance), "recorded": line.recorded} for line in lines])
        return
    table = Table()
    for column in ("at", "kind", "grant", "name", "amount", "invoice", "balance"):
        table.add_column(column, justify="right" if column in ("amount", "balance") else "left")
    for line in lines:
        kind = line.entry.kind if line.recorded else f"{line.entry.kind} (due)"
        table.add_row(iso(line.entry.at), kind, line.entry.grant_id, short(line.grant_name),
                      _money(line.entry.amount), line.entry.invoice_id or "", _money(line.balance))
    print_table(stdout_console(), table)
