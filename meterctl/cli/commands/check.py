"""`meterctl check CUSTOMER FEATURE`: may the customer use it? Exit 0 allowed, 3 denied."""

from __future__ import annotations

from typing import Annotated

import typer

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    DbOption,
    JsonOption,
    WaitOption,
    print_json,
    session,
    short,
    stdout_console,
)
from meterctl.instants import iso
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
    decimal = lambda value: None if value is None else text(value)
    if as_json:
        print_json({
            "customer_id": answer.customer_id, "feature": answer.feature, "allowed": answer.allowed,
            "reason": answer.reason, "kind": answer.kind, "value": answer.value, "usage": decimal(answer.usage),
            "limit": decimal(answer.limit), "remaining": decimal(answer.remaining), "soft": answer.soft,
            "window": ({"start": iso(answer.window[0]), "end": iso(answer.window[1]) if answer.window[1] else None}
                       if answer.window else None),
            "pricebook": answer.pricebook,
        })
    else:
        said = "allowed" if answer.allowed else "denied"
        usage = (f"; usage {text(answer.usage)} of {text(answer.limit) if answer.limit is not None else 'unlimited'}"
                 if answer.usage is not None else "")
        value = f"; value {answer.value}" if answer.value is not None else ""
        stdout_console().print(f"{short(answer.customer_id)} {answer.feature}: {said} ({answer.reason}){value}{usage}")
    if not answer.allowed:
        raise typer.Exit(DENIED)
