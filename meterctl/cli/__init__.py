"""The `meterctl` command line: parse, call the library, render. Exit codes in errors.py."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from typer.core import TyperGroup

from meterctl import __version__
from meterctl.cli.ingest_cmd import ingest_command
from meterctl.cli.customers_cmd import customers_app, periods_command
from meterctl.cli.inspect_cmd import conflicts_app, dlq_app, status_command
from meterctl.cli.invoice_cmd import explain_command, invoice_app
from meterctl.cli.pricing_cmd import pricebook_app, rate_command, simulate_command
from meterctl.cli.usage_cmd import config_app, usage_command
from meterctl.errors import MeterctlError

class _MeterctlGroup(TyperGroup):
    """Turns an expected failure anywhere below into one stderr line and its exit code."""

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MeterctlError as error:
            typer.echo(f"meterctl: {error}", err=True)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    cls=_MeterctlGroup,
    name="meterctl",
    help="Usage-based billing from the command line: ingest usage events, rate them, invoice them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"meterctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """meterctl: usage-event logs in, auditable invoices out."""


app.command("ingest")(ingest_command)
app.command("status")(status_command)
app.add_typer(dlq_app, name="dlq")
app.add_typer(conflicts_app, name="conflicts")
app.command("usage")(usage_command)
app.add_typer(config_app, name="config")
app.add_typer(customers_app, name="customers")
app.command("periods")(periods_command)
app.add_typer(pricebook_app, name="pricebook")
app.command("rate")(rate_command)
app.command("simulate")(simulate_command)
app.add_typer(invoice_app, name="invoice")
app.command("explain")(explain_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expected failures become one line on stderr and their exit code."""
    try:
        app(args=argv, prog_name="meterctl", standalone_mode=True)
    except MeterctlError as error:
        print(f"meterctl: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("meterctl: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # a bug: keep the traceback for the report
        if os.environ.get("METERCTL_DEBUG"):
            traceback.print_exc()
        else:
            print(f"meterctl: internal error: {type(error).__name__}: {error}", file=sys.stderr)
            print("(set METERCTL_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        sys.exit(1)
