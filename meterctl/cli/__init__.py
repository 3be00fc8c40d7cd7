"""The `meterctl` command line: parse, call the library, render. Exit codes in errors.py."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from typing import NoReturn

import typer
from typer.core import TyperGroup

from meterctl import __version__
from meterctl.cli.common import message
from meterctl.errors import MeterctlError

# Every top-level command: the module under meterctl.cli.commands that defines it, the attribute, and
# whether it is a group of subcommands. In this order in `meterctl --help`.
_COMMANDS: dict[str, tuple[str, str, bool]] = {
    "ingest": ("ingest", "ingest_command", False),
    "status": ("inspect", "status_command", False),
    "dlq": ("inspect", "dlq_app", True),
    "conflicts": ("inspect", "conflicts_app", True),
    "usage": ("usage", "usage_command", False),
    "config": ("config", "config_app", True),
    "customers": ("customers", "customers_app", True),
    "periods": ("customers", "periods_command", False),
    "pricebook": ("pricebook", "pricebook_app", True),
    "rate": ("rate", "rate_command", False),
    "simulate": ("rate", "simulate_command", False),
    "invoice": ("invoice", "invoice_app", True),
    "explain": ("invoice", "explain_command", False),
    "reconcile": ("reconcile", "reconcile_command", False),
    "metrics": ("monitor", "metrics_command", False),
    "health": ("monitor", "health_command", False),
    "run": ("monitor", "run_command", False),
    "wallet": ("wallet", "wallet_app", True),
    "check": ("check", "check_command", False),
    "entitlements": ("check", "entitlements_app", True),
}


class _MeterctlGroup(TyperGroup):
    """Turns an expected failure anywhere below into one stderr line and its exit code."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MeterctlError as error:
            typer.echo(f"meterctl: {message(error)}", err=True)
            raise typer.Exit(error.exit_code) from None


def _version(value: bool) -> None:
    if value:
        print(f"meterctl {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """meterctl: usage-event logs in, auditable invoices out."""


def build_app(names: Iterable[str] = tuple(_COMMANDS)) -> typer.Typer:
    """The command line with these top-level commands (all of them by default)."""
    built = typer.Typer(
        cls=_MeterctlGroup,
        name="meterctl",
        help="Usage-based billing from the command line: ingest usage events, rate them, invoice them.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        suggest_commands=False,  # click says "Did you mean ...?" already
    )
    built.callback()(_root)
    for name in names:
        module, attribute, group = _COMMANDS[name]
        target = getattr(importlib.import_module(f"meterctl.cli.commands.{module}"), attribute)
        if group:
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


def __getattr__(name: str) -> typer.Typer:
    """`meterctl.cli.app`, the whole command line, is built on first use."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _interrupted() -> NoReturn:
    # Each file is ingested (and each run recorded) in one transaction: nothing half-done stays.
    print("meterctl: interrupted", file=sys.stderr)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expected failures become one line on stderr and their exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    # Typer turns every command it holds into a click command before it parses anything (a
    # few ms each, and importing their modules): a run builds only the command it names.
    # Anything else (an option first, an unknown name, nothing) gets the whole command line.
    command_line = build_app([args[0]]) if args and args[0] in _COMMANDS else build_app()
    try:
        command_line(args=args, prog_name="meterctl", standalone_mode=True)
    except MeterctlError as error:
        print(f"meterctl: {message(error)}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as error:  # a bug: keep the traceback for the report
        if isinstance(error, RuntimeError) and str(error) == "Query interrupted":
            _interrupted()  # Ctrl-C while DuckDB ran a query: it raises this, not KeyboardInterrupt
        if os.environ.get("METERCTL_DEBUG"):
            traceback.print_exc()
        else:
            print(f"meterctl: internal error: {type(error).__name__}: {error}", file=sys.stderr)
            print("(set METERCTL_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
