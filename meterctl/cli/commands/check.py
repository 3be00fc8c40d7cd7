"""`meterctl check CUSTOMER FEATURE` (may the customer use it? exit 0 allowed, 3 denied) and
`meterctl entitlements list|export|push`: every customer × feature, where it stands, and
the same for a gateway as a file or in Redis."""

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
    command_group,
    print_json,
    print_table,
    session,
    short,
    stderr_console,
    stdout_console,
)
from meterctl.pricing import text

DENIED = 3


def check_command(
    customer: Annotated[str, typer.Argument(help="The customer.")],
    feature: Annotated[str, typer.Argument(help="The feature's key in the customer's plan.")],
    quantity: Annotated[str | None, typer.Option(
        "--quantity", help="Allowed only if usage + QUANTITY stays within the limit.")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="At when (default now): RFC 3339, or a date (midnight in the customer's time zone).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """May the customer use FEATURE now (exit 0), or not (exit 3)? Metered features count the
    meter over the current reset window, in the customer's time zone; what cannot be
    answered is denied."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        answer = s.check(customer, feature, quantity=quantity, at=at)
    if as_json:
        from meterctl.export.entitlements import answer_document

        print_json(answer_document(answer))
    else:
        said = "allowed" if answer.allowed else "denied"
        usage = (f"; usage {text(answer.usage)} of {text(answer.limit) if answer.limit is not None else 'unlimited'}"
                 if answer.usage is not None else "")
        value = f"; value {answer.value}" if answer.value is not None else ""
        stdout_console().print(f"{short(answer.customer_id)} {answer.feature}: {said} ({answer.reason}){value}{usage}")
    if not answer.allowed:
        raise typer.Exit(DENIED)


entitlements_app = command_group("Every customer × feature: usage, limits and states; a snapshot for a gateway.")


def _shown(value: object) -> str:
    return "" if value is None else text(value)  # type: ignore[arg-type]


@entitlements_app.command("list")
def list_command(
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")] = None,
    feature: Annotated[list[str] | None, typer.Option("--feature", help="Only this feature (repeatable).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="At when (default now): RFC 3339, or a date (UTC).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Every customer × feature with usage, limit, remaining, percent, state and the alert crossed."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        found = s.entitlements(customers=customer, features=feature, at=at)
    if as_json:
        from meterctl.export.entitlements import state_document

        print_json([state_document(state) for state in found])
        return
    table = Table()
    for column in ("customer", "feature", "kind", "usage", "limit", "remaining", "percent", "state", "alert"):
        table.add_column(column, justify="right" if column in ("usage", "limit", "remaining", "percent") else "left")
    for state in found:
        a = state.answer
        limit = _shown(a.limit) if a.limit is not None else ("unlimited" if a.kind == "metered" else "")
        table.add_row(short(a.customer_id), a.feature, a.kind or "", _shown(a.usage), limit, _shown(a.remaining),
                      _shown(state.percent), state.state, _shown(state.alert))
    print_table(stdout_console(), table)


@entitlements_app.command("export")
def export_command(
    output: Annotated[str, typer.Option("-o", "--output", help="The JSON file to write (atomically).")],
    at: Annotated[str | None, typer.Option("--at", help="At when (default now): RFC 3339, or a date (UTC).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
) -> None:
    """Every customer × feature as one JSON document, for an API gateway to load."""
    path = check_output(output)
    assert path is not None
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        written, count = s.export_entitlements(path, at=at)
    stderr_console().print(f"wrote {count} entitlement state(s) to {written}")


@entitlements_app.command("push")
def push_command(
    redis_url: Annotated[str, typer.Option("--redis", help="Redis URL, e.g. redis://localhost:6379/0.")],
    at: Annotated[str | None, typer.Option("--at", help="At when (default now): RFC 3339, or a date (UTC).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Every customer × feature into Redis for an API gateway: HSET
    meterctl:entitlements:<customer> <feature> <json>. Exit 69 when Redis cannot be reached."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        result = s.push_entitlements(redis_url, at=at)
    if as_json:
        print_json(result)
        return
    stderr_console().print(f"pushed {result.states} state(s) of {result.customers} customer(s); removed "
                           f"{result.removed} stale customer hash(es); updated_at {result.updated_at}")
