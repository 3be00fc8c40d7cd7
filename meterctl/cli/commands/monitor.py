"""`meterctl metrics` and `meterctl health`: meterctl's own health, for Prometheus and for cron."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    ConfigOption,
    DbOption,
    JsonOption,
    WaitOption,
    check_output,
    parse_duration,
    print_json,
    session,
    stdout_console,
)


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


def health_command(
    max_lag: Annotated[str | None, typer.Option("--max-lag", help="The most the 99th percentile of ingest lag may "
                                                                "be (default 5m; 90s, 5m, 2h, 1d).")] = None,
    max_dead_letter_ratio: Annotated[str | None, typer.Option(
        "--max-dead-letter-ratio", help="The most dead letters / lines read over 24 hours may be (default 0.01).")] = None,
    max_age_last_ingest: Annotated[str | None, typer.Option(
        "--max-age-last-ingest", help="The longest since the last ingest (default 1h).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Check as of this time (default now).")] = None,
    as_json: JsonOption = False,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
) -> None:
    """The alert rules' thresholds for cron: exit 0 when healthy, 65 naming each failing check."""
    with session(db, pricebooks=pricebooks, wait=wait, read_only=True) as s:
        found = s.health(at=at, max_lag=max_lag, max_dead_letter_ratio=max_dead_letter_ratio,
                         max_age_last_ingest=max_age_last_ingest)
    if as_json:
        print_json(found.document())
    else:
        out = stdout_console()
        out.print("healthy" if found.ok else "UNHEALTHY", style="green" if found.ok else "bold red")
        for check in found.checks:
            out.print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}", highlight=False)
    refusal = found.refusal()
    if refusal is not None:
        raise refusal


def run_command(
    spool: Annotated[Path | None, typer.Option("--spool", help="Ingest the closed files of this directory.")] = None,
    move_to: Annotated[Path | None, typer.Option("--move-to", help="Move each spool file here once stored.")] = None,
    finalize_after: Annotated[str | None, typer.Option(
        "--finalize-after", help="Finalize the last closed month this long after it ended (90s, 5m, 2h, 3d; "
                                 "default never).")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="Write the Prometheus metrics to this file.")] = None,
    entitlements: Annotated[str | None, typer.Option(
        "--entitlements", help="Write the entitlement snapshot (JSON) to this file.")] = None,
    redis: Annotated[str | None, typer.Option("--redis", help="Push the entitlements to this Redis.")] = None,
    max_lag: Annotated[str | None, typer.Option("--max-lag", help="As for health (default 5m).")] = None,
    max_dead_letter_ratio: Annotated[str | None, typer.Option(
        "--max-dead-letter-ratio", help="As for health (default 0.01).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Act as of this time (default now).")] = None,
    as_json: JsonOption = False,
    pricebooks: ConfigOption = None,
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
) -> None:
    """One cron tick: ingest the spool, rate the open month, draft and reconcile the closed one, write metrics."""
    from meterctl.instants import local_instant, time_zone
    from meterctl.tick import TickOptions, document

    with session(db, pricebooks=pricebooks, wait=wait) as s:
        found = s.run(TickOptions(
            spool=spool, move_to=move_to,
            finalize_after=None if finalize_after is None else parse_duration(finalize_after, "--finalize-after"),
            metrics=check_output(metrics), entitlements=check_output(entitlements), redis=redis,
            now=None if at is None else local_instant(at, time_zone("UTC"), "at"),
            max_lag=max_lag, max_dead_letter_ratio=max_dead_letter_ratio))
    summary = document(found)
    if as_json:
        print_json(summary)
    else:
        out = stdout_console()
        if not found.changed:
            out.print("nothing new: the store is as the last tick left it", highlight=False)
        ingest = summary["ingest"]
        if ingest:
            out.print(f"ingest: {ingest['new_files']} new file(s) of {ingest['files']}, {ingest['accepted']} accepted, "
                      f"{ingest['duplicates']} duplicate(s), {ingest['conflicts']} conflict(s), "
                      f"{ingest['dead_lettered']} dead-lettered" + (f", {len(found.moved)} moved" if found.moved else ""),
                      highlight=False)
        for name in ("rate", "invoice", "reconcile"):
            if summary[name]:
                out.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in summary[name].items()), highlight=False)
        if found.metrics:
            out.print(f"metrics: {found.metrics}", highlight=False)
        for problem in found.problems:
            out.print(f"problem: {problem}", highlight=False)
    refusal = found.refusal()
    if refusal is not None:
        raise refusal

