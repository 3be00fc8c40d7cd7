"""`meterctl metrics` and `meterctl health`: meterctl's own health, for Prometheus and for cron."""

from __future__ import annotations

from typing import Annotated

import typer

from meterctl.cli.common import DEFAULT_DB_OPTION, ConfigOption, DbOption, WaitOption, check_output, session


def metrics_command(
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the metrics to this file, atomically "
                                                                      "(for node_exporter's textfile collector).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Read as of this time (default now).")] = None,
    no_customer_series: Annotated[bool, typer.Option(
        "--no-customer-series", help="Leave out the per-customer series (usage, burn rate, wallets, entitlements).")] = False,
    burn_floor: Annotated[str | None, typer.Option(
        "--burn-floor", help="The least daily mean a burn rate divides by (default 10).")] = None,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
) -> None:
    """meterctl's health as Prometheus metrics: ingest outcomes and lag, unbilled events, usage, wallets."""
    path = check_output(output, instead="without -o the metrics are printed on standard output")
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        found = s.metrics(at=at, customer_series=not no_customer_series, burn_floor=burn_floor, output=path)
    if path is None:
        typer.echo(found.text.decode(), nl=False)
