"""The import contract: which room of the package may import what.

    cli/    the command line: parses, calls a Session method, renders (Typer, Rich, Click here only)
    core    the billing domain and the Session, over typed values; reaches the store through
            the ports (meterctl.store.ports) and open_store (meterctl.store), never an engine
    store/  everything that knows an engine: the only place duckdb is imported; it never
            reaches up into the services, the Session or the command line

Every import counts, at the top of a module or inside a function, typing-only ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "meterctl"

# What the store may not import: the services built on it, the Session, the command line.
SERVICES = (
    "meterctl.cli", "meterctl.session", "meterctl.ingest", "meterctl.invoicing", "meterctl.audit", "meterctl.simulate",
    "meterctl.export", "meterctl.customers_file", "meterctl.pricebook.loader", "meterctl.rating.month",
    "meterctl.rating.plan", "meterctl.rating.price", "meterctl.rating.record", "meterctl.rating.unbilled",
)
COMMAND_LINE = ("typer", "rich", "click")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, absolute, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_contract_sees_every_room():
    assert any(_within(m, "meterctl.cli") for m in MODULES)
    assert any(_within(m, "meterctl.store.duckdb") for m in MODULES)
    assert "duckdb" in MODULES["meterctl.store.duckdb.connect"]  # the parser finds what is there


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_store_imports_duckdb(module):
    if not _within(module, "meterctl.store"):
        assert not {name for name in MODULES[module] if _within(name, "duckdb")}, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_command_line_imports_typer_rich_and_click(module):
    if not _within(module, ("meterctl.cli", "meterctl.__main__")):  # `python -m meterctl` is the command line
        assert not {name for name in MODULES[module] if _within(name, COMMAND_LINE + ("meterctl.cli",))}, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_core_reaches_the_store_through_its_ports_only(module):
    if _within(module, ("meterctl.store", "meterctl.cli")):
        return
    engine = {name for name in MODULES[module] if _within(name, "meterctl.store") and not
              _within(name, ("meterctl.store.ports", "meterctl.store.open_store"))} - {"meterctl.store"}
    assert not engine, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "meterctl.store")))
def test_the_store_never_reaches_up_into_the_services(module):
    assert not {name for name in MODULES[module] if _within(name, SERVICES)}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "meterctl.cli")))
def test_the_command_line_reaches_the_store_only_through_the_session(module):
    assert not {name for name in MODULES[module] if _within(name, "meterctl.store")}, module
