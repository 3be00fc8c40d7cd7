"""The import contract: which room of the package may import what.

    cli/    the command line: parses, calls a Session method, renders (Typer, Rich, Click here
            only); it reaches the library through the Session and the values it returns
    core    the services (ingest, rating, invoicing, audit, simulate, metering) and the Session,
            over typed values; they reach the store through the ports (meterctl.store.ports) and
            open_store (meterctl.store), never an engine
    values  the typed values both sides share (errors, instants, cycles, meters, pricing, events,
            usage, customers, invoices, rated lines): they import no service and no store engine
    store/  everything that knows an engine: the only place duckdb is imported; of the rest it
            imports the values only

Every import counts, at the top of a module or inside a function, typing-only ones too (but
for the command line's, which may name a service's result type in an annotation).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "meterctl"

# The values: what the store may import of the rest of the package.
VALUES = (
    "meterctl.errors", "meterctl.instants", "meterctl.cycles", "meterctl.meters", "meterctl.pricing",
    "meterctl.canonical_json", "meterctl.events", "meterctl.usage", "meterctl.customers", "meterctl.invoices",
    "meterctl.rating.lines", "meterctl.rating.notes", "meterctl.pricebook.catalog", "meterctl.settings",
    "meterctl.config_yaml", "meterctl.credits",
)
# The services built on the store, which the command line reaches only through the Session.
SERVICES = (
    "meterctl.ingest", "meterctl.invoicing", "meterctl.audit", "meterctl.simulate", "meterctl.metering",
    "meterctl.customers_file", "meterctl.pricebook.loader", "meterctl.rating.month", "meterctl.rating.plan",
    "meterctl.rating.price", "meterctl.rating.record", "meterctl.rating.scope", "meterctl.wallets",
    "meterctl.wallets_file", "meterctl.entitlements", "meterctl.reconcile", "meterctl.monitoring",
    "meterctl.entitlements_push",
)
COMMAND_LINE = ("typer", "rich", "click")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.Module) -> set[int]:
    """The line numbers inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module a file imports from (`from a.b import c` is a.b, but `from meterctl
    import x` is meterctl.x), absolute, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    skip = _typing_only(tree) if runtime_only else set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "meterctl":
                found.update(f"meterctl.{alias.name}" for alias in node.names)
            else:
                found.add(module)
    return found


MODULES = {_module_name(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}
RUNTIME = {_module_name(path): _imports(path, runtime_only=True) for path in sorted(PACKAGE.rglob("*.py"))}


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
def test_the_store_imports_of_the_rest_the_values_only(module):
    others = {name for name in MODULES[module] if _within(name, "meterctl") and not _within(name, "meterctl.store")}
    assert not {name for name in others if not _within(name, VALUES)}, module


@pytest.mark.parametrize("module", VALUES)
def test_the_values_import_no_service_and_no_engine(module):
    assert not {name for name in MODULES[module] if _within(name, SERVICES + ("meterctl.session", "meterctl.cli",
                                                                                "meterctl.store.duckdb"))}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "meterctl.cli")))
def test_the_command_line_reaches_the_services_through_the_session_only(module):
    assert not {name for name in RUNTIME[module] if _within(name, SERVICES)}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _within(m, "meterctl.cli")))
def test_the_command_line_reaches_the_store_only_through_the_session(module):
    assert not {name for name in MODULES[module] if _within(name, "meterctl.store")}, module
