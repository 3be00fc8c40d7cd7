"""What every command shares: the database and configuration options, the spelling of
parameters in messages, output helpers, durations."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from meterctl.cycles import Cycle, cycle_named
from meterctl.errors import MeterctlError, UsageError
from meterctl.instants import iso
from meterctl.session import Session
from meterctl.settings import ENV_DB, default_db_path

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar=ENV_DB, help="DuckDB file holding meterctl's state (created on first use)."),
]
DEFAULT_DB_OPTION = default_db_path()
WaitOption = Annotated[
    float,
    typer.Option("--wait", min=0, metavar="SECONDS", help="If another meterctl holds the database, retry this long."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--pricebooks", envvar="METERCTL_PRICEBOOKS", help="Configuration directory (meters.yaml, pricebooks). Default ./pricebooks."),
]
CustomerOption = Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")]
PeriodOption = Annotated[str, typer.Option("--period", help="The month whose billing periods to rate: YYYY-MM (periods that end in it).")]

# How the command line spells the parameters the library names in its messages.
FLAGS = {
    "period": "--period", "window": "--window", "start": "--from", "end": "--to", "tz": "--tz",
    "customer": "--customer", "meter": "--meter", "cycle": "--cycle", "line": "--line", "format": "--format",
    "status": "--status", "output": "-o", "db": "--db", "wait": "--wait", "strict": "--strict", "finalize": "--finalize",
    "amount": "--amount", "credits": "--credits", "rate": "--rate", "currency": "--currency", "effective": "--effective",
    "expires": "--expires", "applies_to": "--applies-to", "at": "--at", "quantity": "--quantity",
    "max_future": "--max-future", "max_age": "--max-age", "max_lag": "--max-lag",
    "max_age_last_ingest": "--max-age-last-ingest", "max_dead_letter_ratio": "--max-dead-letter-ratio",
    "finalize_after": "--finalize-after", "burn_floor": "--burn-floor",
}


def message(error: MeterctlError) -> str:
    """An error as one line (or a few, for configuration problems) in the command line's words."""
    return error.spelled(FLAGS)


def session(db: Path | None, *, pricebooks: Path | None = None, wait: float = 0.0, read_only: bool = False) -> Session:
    return Session(db=db, config=pricebooks, wait=wait, read_only=read_only)


def parse_cycle(text: str | None) -> Cycle | None:
    """--cycle as a billing cycle (None: each customer's plans' own), checked as it is parsed."""
    return None if text is None else cycle_named(text)


def command_group(help: str, *, no_args_is_help: bool = True, **options: Any) -> typer.Typer:
    """A group of subcommands. Click itself says "Did you mean 'list'?" after a mistyped
    name; Typer's own suggestion would say it a second time."""
    return typer.Typer(help=help, no_args_is_help=no_args_is_help, suggest_commands=False, **options)


# Tables written to a file or a pipe are read later, in logs: do not squeeze them to 80 columns.
_PIPE_WIDTH = 160


def stderr_console() -> Console:
    width = None if sys.stderr.isatty() else _PIPE_WIDTH
    # markup=False: customer names, ids and property values are shown as written, never
    # read as Rich markup ("Acme [legacy]" must not lose a word, "[/b]" must not crash).
    return Console(stderr=True, highlight=False, soft_wrap=False, width=width, markup=False)


def stdout_console() -> Console:
    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(highlight=False, soft_wrap=False, width=width, markup=False)


# Rich lays out every cell of a table to size its columns: about a millisecond a row. Past
# this many rows, or when the output is not a terminal, tables are printed as plain aligned
# text instead (the same cells; no box drawing to trip up grep, awk or a log viewer).
RICH_TABLE_ROWS = 200


def print_table(console: Console, table: Table) -> None:
    cells = [[_plain(cell) for cell in column.cells] for column in table.columns]
    headers = [_plain(column.header) for column in table.columns]
    if (console.is_terminal and table.row_count <= RICH_TABLE_ROWS) or None in headers or any(
        None in column for column in cells
    ):
        # Drawn by Rich: its text cells escaped the same way (Rich would send an ESC as it is).
        for column, plain in zip(table.columns, cells, strict=True):
            column._cells = [text if text is not None else cell for cell, text in zip(column._cells, plain, strict=True)]
        console.print(table)
        return
    texts = [[cell or "" for cell in column] for column in cells]  # every cell is text here
    names = [header or "" for header in headers]
    widths = [max([cell_len(h)] + [cell_len(c) for c in column]) for h, column in zip(names, texts, strict=True)]
    right = [column.justify == "right" for column in table.columns]

    def line(values: list[str]) -> str:
        padded = [
            " " * (w - cell_len(v)) + v if r else v + " " * (w - cell_len(v))
            for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(padded).rstrip()

    out = [_plain(table.title) or ""] if table.title else []
    out += [line(names), line(["-" * w for w in widths])]
    out += [line([column[i] for column in texts]) for i in range(table.row_count)]
    console.file.write("\n".join(out) + "\n")


# Control characters (written raw they would move the cursor or recolour the terminal, and a
# dead-lettered line may hold any of them) and marks that show nothing or reorder the text
# after them (byte-order mark, zero-width and bidirectional formatting characters).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\ufeff\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """The text with every such character written as its escape (\\x1b, \\n, \\ufeff)."""
    return _INVISIBLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def short(text: str, width: int = 64) -> str:
    """An identifier or value from input, visible and cut to `width` characters in a message:
    a warning names it, it does not reproduce a 300 KB id."""
    text = visible(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(cell: Any) -> str | None:
    """A cell as one line of text, or None for a renderable that only Rich can draw."""
    if isinstance(cell, Text):
        cell = cell.plain
    if not isinstance(cell, str):
        return None
    if "\n" in cell:
        cell = " / ".join(cell.split("\n"))  # one line per row
    return visible(cell)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def to_jsonable(value: Any) -> Any:
    if type(value) in _SCALARS:  # most values of a large document: settled by one lookup
        return value
    if isinstance(value, datetime):  # an instant: to the second, in UTC
        return iso(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


# Compact, by the C encoder: an indenting encoder runs in Python, a few seconds on a large
# `usage --json` or `rate --json`.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=str).encode


def _layout(value: Any, depth: int) -> str:
    """The document's outer two levels indented (a key or a list item per line), what lies
    below each of them on one line: still easy to read and to grep, and written by C."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if depth < 2 and isinstance(value, dict) and value:
        items = [f"{inner}{_COMPACT(str(key))}: {_layout(item, depth + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if depth < 2 and isinstance(value, list) and value:
        return "[\n" + ",\n".join(f"{inner}{_layout(item, depth + 1)}" for item in value) + f"\n{pad}]"
    return _COMPACT(value)


def print_json(document: Any) -> None:
    sys.stdout.write(_layout(to_jsonable(document), 0) + "\n")


def check_output(output: str | None, *, instead: str | None = None) -> Path | None:
    """-o as a path, refused when it names no file: empty, or '-' (these commands write files,
    atomically, not standard output; `instead` says how to get standard output where the
    command can). Options take -o as text: Typer would turn '' into the path '.'."""
    if output is None:
        return None
    if output == "-":
        raise UsageError("-o -: writing to standard output is not supported here; give a file path"
                         + (f" ({instead})" if instead else ""))
    if not output.strip():
        raise UsageError("-o: the path is empty; give a file path")
    return Path(output)


def parse_duration(text: str, option: str) -> timedelta:
    """'300', '300s', '5m', '2h', '90d' → timedelta (see instants.parse_duration)."""
    from meterctl.instants import parse_duration as parse

    return parse(text, option.removeprefix("--").replace("-", "_"))


@contextmanager
def problems_as_json(as_json: bool) -> Iterator[None]:
    """For a validate command with --json: configuration problems are also printed on stdout,
    as {"problems": [{file, line, key, message}, ...]}, before the usual stderr lines and exit 78."""
    from meterctl.config_yaml import ConfigProblems

    try:
        yield
    except ConfigProblems as error:
        if as_json:
            print_json({"problems": [dataclasses.asdict(p) for p in error.problems]})
        raise
