"""SQL that deserves review as SQL (the files in `sql/` beside this module), loaded by name,
and the few helpers that run it with exactly the parameters it names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC
from functools import cache
from importlib import resources
from typing import Any

import duckdb


@cache
def load(name: str) -> str:
    return resources.files(__package__ or "").joinpath("sql", f"{name}.sql").read_text("utf-8")


_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def statements(name: str) -> tuple[str, ...]:
    """The statements of a file; each ends with ';' at the end of a line."""
    text = load(name)
    parts = [part.strip() for part in text.split(";\n")]
    return tuple(part.rstrip(";") for part in parts if part and not _only_comments(part))


def parameters_of(statement: str) -> set[str]:
    """The named parameters ($name) a statement uses, so callers bind exactly those."""
    code = "\n".join(line.split("--", 1)[0] for line in statement.splitlines())
    return set(_PARAMETER.findall(code))


def bind(statement: str, values: dict[str, Any]) -> dict[str, Any]:
    return {key: values[key] for key in parameters_of(statement)}


def execute(con: duckdb.DuckDBPyConnection, statement: str, values: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Run a statement with exactly the named parameters it uses (DuckDB rejects extras)."""
    return con.execute(statement, bind(statement, values))


def run(con: duckdb.DuckDBPyConnection, name: str, values: dict[str, Any]) -> None:
    """Every statement of the file `name`, each with the parameters it uses."""
    for statement in statements(name):
        execute(con, statement, values)


def temp_table(con: duckdb.DuckDBPyConnection, name: str, columns: Mapping[str, tuple[str, Sequence[Any]]]) -> None:
    """Python columns of equal length as the temporary table `name`: {column: (SQL type, values)}.

    One statement binds each column as a list parameter and unnests them side by side: no
    statement per row, and no Arrow (importing pyarrow costs more than this on thousands of
    rows). Decimals are sent as text and cast, so no value passes through a float or a
    narrower decimal type; a naive datetime for a TIMESTAMPTZ column is read as UTC, whatever
    the connection's time zone. Names and types come from the code, never from input.
    """
    select, values = [], {}
    for index, (column, (kind, given)) in enumerate(columns.items()):
        if kind.startswith("DECIMAL"):
            given = [None if v is None else format(v, "f") for v in given]
        elif kind == "TIMESTAMPTZ":
            given = [v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v for v in given]
        select.append(f'CAST(unnest($c{index}) AS {kind}) AS "{column}"')
        values[f"c{index}"] = list(given)
    con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT {", ".join(select)}', values)


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The event_macros.sql macros (validation rules shared by ingest and usage), on this connection."""
    for statement in statements("event_macros"):
        con.execute(statement)


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
