"""`meterctl usage` and `meterctl config validate`."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.table import Table

from meterctl import store
from meterctl.cli.common import DbOption, JsonOption, WaitOption, check_output, command_group, print_json, print_table, problems_as_json, stderr_console, stdout_console
from meterctl.errors import NotFoundError, UsageError
from meterctl.files import write_atomically

# The library modules behind these commands (pydantic models, Arrow) are imported inside
# the commands: `meterctl ingest` should not pay for them at start-up.

ConfigOption = Annotated[
    Path | None,
    typer.Option("--pricebooks", envvar="METERCTL_PRICEBOOKS", help="Configuration directory (meters.yaml, pricebooks). Default ./pricebooks."),
]

config_app = command_group("Check the configuration directory.")


@config_app.command("validate")
def config_validate(pricebooks: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List every problem in meters.yaml and the pricebooks at once (exit 78 if there is any)."""
    from meterctl.meters import config_dir
    from meterctl.pricebook import load_configuration

    directory = config_dir(pricebooks)
    with problems_as_json(as_json):
        meters, catalog = load_configuration(directory)
    if as_json:
        print_json({"directory": str(directory), "meters": [m.name for m in meters],
                    "pricebooks": [v.ref for v in catalog.versions], "problems": []})
    else:
        stderr_console().print(f"{directory}: {len(meters)} meter(s), {len(catalog.versions)} pricebook version(s), no problems")


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone '{tz}' (use an IANA name such as Europe/Paris)") from None


def _instant(text: str | None, zone: ZoneInfo, option: str, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), zone)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a date (2026-10-01) or date-time (2026-10-01T12:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _document(result) -> list[dict]:
    from meterctl.pricing import text

    return [
        {
            "customer_id": r.customer_id,
            "meter": r.meter,
            "window_start": r.window_start,
            "window_end": r.window_end,
            "dimensions": r.dimensions,
            "value": None if r.value is None else text(r.value),
            "unmeterable": r.unmeterable,
        }
        for r in result.rows
    ]


def _write_csv(result, path: Path) -> None:
    from meterctl.pricing import text

    keys = sorted({k for r in result.rows for k in r.dimensions})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_id", "meter", "window_start", "window_end", *keys, "value", "unmeterable"])
    for r in result.rows:
        writer.writerow([r.customer_id, r.meter, r.window_start, r.window_end,
                         *(r.dimensions.get(k) or "" for k in keys),
                         "" if r.value is None else text(r.value), r.unmeterable])
    write_atomically(path, lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))


def _write_parquet(result, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "customer_id": [r.customer_id for r in result.rows],
        "meter": [r.meter for r in result.rows],
        "window_start": pa.array([datetime.fromisoformat(r.window_start) for r in result.rows], pa.timestamp("us", "UTC")),
        "window_end": pa.array([datetime.fromisoformat(r.window_end) for r in result.rows], pa.timestamp("us", "UTC")),
        "dimensions": pa.array([list(r.dimensions.items()) for r in result.rows], pa.map_(pa.string(), pa.string())),
        "value": pa.array([r.value for r in result.rows], pa.decimal128(38, 18)),
        "unmeterable": pa.array([r.unmeterable for r in result.rows], pa.int64()),
    })
    write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def _check_customers_known(con, wanted: list[str]) -> None:
    """An id that is neither imported nor in any event is a typo, not a customer without usage."""
    known = {row[0] for row in con.execute(
        "SELECT DISTINCT customer_id FROM events WHERE list_contains($ids, customer_id)", {"ids": wanted}).fetchall()}
    if store.has_table(con, "customer_versions"):
        known |= {row[0] for row in con.execute(
            "SELECT DISTINCT customer_id FROM customer_versions WHERE list_contains($ids, customer_id)", {"ids": wanted}).fetchall()}
    missing = sorted(set(wanted) - known)
    if missing:
        raise NotFoundError(f"--customer: no customer or event has the id(s) {', '.join(missing)}")


def usage_command(
    db: DbOption = store.default_db_path(),
    wait: WaitOption = 0.0,
    pricebooks: ConfigOption = None,
    as_json: JsonOption = False,
    window: Annotated[str, typer.Option("--window", help="hour, day, month or period (billing periods, split at plan changes).")] = "day",
    start: Annotated[str | None, typer.Option("--from", help="Start (date or date-time, in --tz); default: start of this month.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive; default: start of next month.")] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the windows.")] = "UTC",
    customer: Annotated[list[str] | None, typer.Option("--customer", help="Only this customer (repeatable).")] = None,
    meter: Annotated[list[str] | None, typer.Option("--meter", help="Only this meter (repeatable).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or parquet (with -o).")] = None,
    cycle: Annotated[str | None, typer.Option("--cycle", help="With --window period: monthly, quarterly or yearly; default: each customer's plan's billing_cycle.")] = None,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write the rows to this file.")] = None,
) -> None:
    """Usage per customer × meter × window."""
    from meterctl.customers import billing_segments
    from meterctl.meters import config_dir, load_meters
    from meterctl.pricing import text
    from meterctl.usage import usage

    zone = _zone(tz)
    today = datetime.now(zone).date().replace(day=1)
    month_start = datetime.combine(today, time(), zone)
    next_month = datetime.combine((today + timedelta(days=32)).replace(day=1), time(), zone)
    begin = _instant(start, zone, "--from", month_start)
    finish = _instant(end, zone, "--to", next_month)
    if fmt not in (None, "csv", "parquet"):
        raise UsageError(f"--format must be csv or parquet, not '{fmt}'")
    if fmt and output is None:
        raise UsageError("--format needs -o FILE")
    if cycle not in (None, "monthly", "quarterly", "yearly"):
        raise UsageError(f"--cycle must be monthly, quarterly or yearly, not '{cycle}'")
    path = check_output(output, instead="--json prints the rows on standard output")
    meters = all_meters = load_meters(config_dir(pricebooks))
    if meter:
        unknown = sorted(set(meter) - {m.name for m in meters})
        if unknown:
            raise UsageError(f"--meter: unknown meter(s) {', '.join(unknown)} (see meters.yaml)")
        meters = tuple(m for m in meters if m.name in meter)
    with store.open_store(db, read_only=True, wait=wait) as con:
        if customer:
            _check_customers_known(con, customer)
        periods = None
        if window == "period":
            # Whole billing periods of each customer that overlap the range, split at plan changes.
            if cycle is None:
                from meterctl.pricebook import load_catalog
                from meterctl.rating import customer_cycle

                catalog = load_catalog(config_dir(pricebooks), all_meters)
                cycle_of = lambda c: customer_cycle(c, catalog)  # noqa: E731
            found = billing_segments(con, customer, cycle=cycle or cycle_of, start=begin.date() - timedelta(days=1), end=finish.date() + timedelta(days=1))
            periods = [(cid, s.start_at, s.end_at) for cid, s in found if s.start_at < finish and s.end_at > begin]
            if periods:
                begin, finish = min(p[1] for p in periods), max(p[2] for p in periods)
        result = usage(con, meters, window=window, start=begin, end=finish, tz=tz, customers=customer, periods=periods)
    console = stderr_console()
    for u in result.unmeterable:
        console.print(f"warning: {u.events} unmeterable event(s) for {u.customer_id} / {u.meter}: {u.reason}", style="yellow")
    for s in result.open_sessions:
        console.print(f"note: open session {s.session} of {s.customer_id} / {s.meter}, last seen {s.last_event_at}")
    if path is not None:
        (_write_parquet if (fmt or path.suffix.lstrip(".")) == "parquet" else _write_csv)(result, path)
        if as_json:
            print_json(_document(result))
        return
    if as_json:
        print_json(_document(result))
        return
    table = Table()
    for column in ("customer", "meter", "window start", "window end", "dimensions", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in result.rows:
        dims = ", ".join(f"{k}={v}" for k, v in r.dimensions.items())
        table.add_row(r.customer_id, r.meter, r.window_start, r.window_end, dims, "-" if r.value is None else text(r.value))
    print_table(stdout_console(), table)



