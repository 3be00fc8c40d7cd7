"""`meterctl status`, `meterctl dlq list|show`, `meterctl conflicts list`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    DbOption,
    JsonOption,
    WaitOption,
    command_group,
    print_json,
    print_table,
    session,
    stdout_console,
    visible,
)

LimitOption = Annotated[int, typer.Option("--limit", min=0, max=2**62, help="At most this many rows (0 = all).")]

dlq_app = command_group("Dead letters: input lines that failed validation, with the reason and raw text.")
conflicts_app = command_group("Conflicts: resends of an event_id with a different payload.")


def _visible(text: str | None) -> str:
    # Stored input may hold escape sequences and invisible marks: shown escaped, never sent as they are.
    return "" if text is None else visible(text)


def _clip(text: str, width: int = 60) -> str:
    text = _visible(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def status_command(
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="First read back every block of the store and check it against its checksum "
                         "(exit 66 when the store is damaged).")] = False,
) -> None:
    """Counts, time range and the last ingests."""
    with session(db, wait=wait, read_only=True) as s:
        result = s.status(verify=verify)
    if as_json:
        print_json(result)
        return
    console = stdout_console()
    console.print(f"database        {db}")
    console.print(f"events          {result.events}  ({result.customers} customers)")
    for name, count in result.event_names:
        console.print(f"  {_visible(name):<20} {count}")
    console.print(f"time range      {result.first_event_at or '-'} … {result.last_event_at or '-'}")
    console.print(f"lines read      {result.lines_read} in {result.batches} batch(es)")
    console.print(f"duplicates      {result.duplicates}")
    console.print(f"conflicts       {result.conflicts}")
    console.print(f"dead letters    {result.dead_letters}")
    if result.verified:
        console.print("verified        every block read back and matched its checksum")
    if result.last_ingests:
        table = Table(title="last ingests", title_justify="left")
        for column in ("batch", "source", "finished", "read", "accepted", "dup", "conflicts", "dead"):
            table.add_column(column, justify="right" if column not in ("source", "finished") else "left")
        for b in result.last_ingests:
            table.add_row(str(b.batch_id), b.source, b.finished_at, *(str(v) for v in (b.read, b.accepted, b.duplicates, b.conflicts, b.dead_lettered)))
        print_table(console, table)


@dlq_app.command("list")
def dlq_list(
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    limit: LimitOption = 100,
    batch: Annotated[int | None, typer.Option("--batch", help="Only this ingest batch.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Only reasons containing this text.")] = None,
) -> None:
    """List dead letters, oldest first."""
    with session(db, wait=wait, read_only=True) as s:
        rows = s.dead_letters(limit=limit or None, batch_id=batch, reason_contains=reason)
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("id", "source", "line", "reason", "raw"):
        table.add_column(column, justify="right" if column in ("id", "line") else "left")
    for d in rows:
        table.add_row(str(d.dead_letter_id), d.source, str(d.line_no), d.reason, _clip(d.raw))
    print_table(stdout_console(), table)


@dlq_app.command("show")
def dlq_show(
    dead_letter_id: Annotated[int, typer.Argument(metavar="ID")],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Show one dead letter in full, raw text included."""
    with session(db, wait=wait, read_only=True) as s:
        d = s.dead_letter(dead_letter_id)
    if as_json:
        print_json(d)
        return
    console = stdout_console()
    console.print(f"dead letter {d.dead_letter_id}", markup=False)
    console.print(f"source      {_visible(d.source)}:{d.line_no} (batch {d.batch_id})", markup=False)
    console.print(f"reason      {_visible(d.reason)}", markup=False)
    console.print(f"event_id    {_visible(d.event_id) or '-'}", markup=False)
    console.print(f"created at  {d.created_at}", markup=False)
    console.print("raw:")
    console.out(_visible(d.raw), highlight=False)


@conflicts_app.command("list")
def conflicts_list(
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    limit: LimitOption = 100,
    event_id: Annotated[str | None, typer.Option("--event-id", help="Only this event id.")] = None,
) -> None:
    """List conflicting resends; the first accepted version stays billed."""
    with session(db, wait=wait, read_only=True) as s:
        rows = s.conflicts(limit=limit or None, event_id=event_id)
    if as_json:
        print_json(rows)
        return
    table = Table()
    for column in ("id", "event_id", "billed (source:line, hash)", "refused (source:line, hash)"):
        table.add_column(column)
    for c in rows:
        table.add_row(
            str(c.conflict_id), c.event_id,
            f"{c.billed_source}:{c.billed_line_no} {c.billed_hash[:12]}",
            f"{c.source}:{c.line_no} {c.new_hash[:12]}",
        )
    print_table(stdout_console(), table)
