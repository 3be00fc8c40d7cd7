"""SQL that deserves review as SQL, loaded by name."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.sql").read_text("utf-8")


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


def bind(statement: str, values: dict[str, object]) -> dict[str, object]:
    return {key: values[key] for key in parameters_of(statement)}


def execute(con, statement: str, values: dict[str, object]):
    """Run a statement with exactly the named parameters it uses (DuckDB rejects extras)."""
    return con.execute(statement, bind(statement, values))


def install_macros(con) -> None:
    """The event_macros.sql macros (validation rules shared by ingest and usage), on this connection."""
    for statement in statements("event_macros"):
        con.execute(statement)


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
