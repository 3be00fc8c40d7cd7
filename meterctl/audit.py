"""Auditing an invoice: `explain` walks it back to events, `verify` derives it again.

explain: invoice → line → the rated record it was copied from (rating run, line, tiers,
exact amount) → the usage window and the meter definition used by that run → the events
that the meter selects in that window, each with the file and line it was ingested from.

verify: re-rates the invoice's customer and period from the stored events that its rating
run saw (those ingested by then), with the pricebook snapshots frozen in the store (not
the files, which may have moved on), the meter definitions recorded by the run and the
customer version the invoice was billed from; then compares content. Events ingested
later are counted and reported, not mixed in: they are what a new revision is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb

from meterctl.customers import customer_history
from meterctl.errors import DataError, UsageError
from meterctl.invoicing import Invoice, InvoiceLine, content_hash, get_invoice, invoice_totals
from meterctl.meters import Meter
from meterctl.pricebook import Catalog, pricebook_from_text
from meterctl.pricing import text
from meterctl.rating import plan_jobs, rate_jobs
from meterctl.store import has_table
from meterctl.usage import selection, value_sql

_ISO = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class TracedEvent:
    event_id: str
    timestamp: str
    event_name: str
    quantity: str | None
    properties: Any
    source: str
    source_line: int
    meterable: bool = True  # False: the meter could not read its value (counted as unmeterable)


@dataclass(frozen=True)
class ExplainedLine:
    line: InvoiceLine
    rating_run_id: int
    rated_line_no: int
    meter: dict | None  # the meter definition as recorded by the rating run
    event_count: int | None  # events selected by the meter in the window (None for fees)
    events: tuple[TracedEvent, ...] = ()
    later_events: int = 0  # selected now, but ingested after the line was rated (a later revision's)


@dataclass(frozen=True)
class Explanation:
    invoice: Invoice
    lines: tuple[ExplainedLine, ...]


def _run(con: duckdb.DuckDBPyConnection, run_id: int) -> tuple[dict[str, dict], int, str]:
    """The meter definitions a rating run used, the last ingest batch it saw, and the month it rated."""
    rows = con.execute("SELECT meters, as_of_batch, period FROM rating_runs WHERE run_id = ?", [run_id]).fetchall()
    if not rows:
        raise DataError(f"rating run {run_id} is missing from the store")
    return {m["name"]: m for m in json.loads(rows[0][0])}, rows[0][1], rows[0][2]


def _event_query(meter: Meter, line: InvoiceLine, customer_id: str, as_of_batch: int | None) -> tuple[str, dict]:
    params: dict = {
        "as_of_batch": as_of_batch,
        "start": datetime.strptime(line.window_start, _ISO).replace(tzinfo=UTC),
        "end": datetime.strptime(line.window_end, _ISO).replace(tzinfo=UTC),
        "customers": [customer_id],
        "name": meter.event_name,
        "stop": meter.stop_event,
    }
    duration = meter.aggregation == "duration"
    names = "(event_name = $name OR event_name = $stop)" if duration else "event_name = $name"
    # A duration counts from the heartbeat before the window to the one after it (within the gap).
    params["m_gap"] = meter.heartbeat_gap_seconds
    where, dims = selection(meter, params, "m_", names, reach="gap" if duration else "range")
    # A line priced by a dimension value covers the events with that value (or without the property).
    for index, key in enumerate(meter.dimension_keys):
        if key in line.dimensions:
            params[f"dv{index}"] = line.dimensions[key]
            where += f" AND {dims[index]} IS NOT DISTINCT FROM $dv{index}"
    return where, params


def _meterable_sql(meter: Meter, params: dict) -> str:
    """Whether the meter can read an event's value, as usage() decides it."""
    if meter.aggregation == "count":
        return "true"
    if meter.aggregation == "duration":
        params["m_sk"] = (meter.session or "").removeprefix("properties.")
        return "(e.properties ->> $m_sk) IS NOT NULL"
    return f"({value_sql(meter, params, 'm_')}) IS NOT NULL"  # properties and quantity: only events has them


def explain(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    *,
    line_no: int | None = None,
    with_events: bool = False,
    limit: int | None = 1000,
) -> Explanation:
    """An invoice's lines traced back to rated records, usage windows and events."""
    from meterctl import sql

    sql.install_macros(con)  # a meter valued from a property reads it with mc_is_decimal_text
    invoice = get_invoice(con, reference)
    lines = invoice.lines
    if line_no is not None:
        lines = tuple(line for line in lines if line.line_no == line_no)
        if not lines:
            raise UsageError(f"--line: invoice {reference} has lines 1 to {len(invoice.lines)}, not {line_no}")
    explained = []
    for line in lines:
        meters, as_of, _ = _run(con, line.rating_run_id)
        definition = meters.get(line.meter) if line.meter else None
        count, events, later = None, (), 0
        if definition is not None:
            meter = Meter.model_validate(definition)
            # The events as the rating run saw them; those ingested since belong to a later revision.
            where, params = _event_query(meter, line, invoice.customer_id, as_of)
            count = sql.execute(con, f"SELECT count(*) FROM events WHERE {where}", params).fetchall()[0][0]
            every, every_params = _event_query(meter, line, invoice.customer_id, None)
            later = sql.execute(con, f"SELECT count(*) FROM events WHERE {every}", every_params).fetchall()[0][0] - count
            if with_events:
                params["limit"] = limit
                rows = sql.execute(con, f"""
                    SELECT e.event_id, strftime(e.ts, '%Y-%m-%dT%H:%M:%S.%fZ'), e.event_name, CAST(e.quantity AS VARCHAR),
                           e.properties, b.source, e.line_no, {_meterable_sql(meter, params)}
                    FROM (SELECT * FROM events WHERE {where}) AS e JOIN ingest_batches AS b USING (batch_id)
                    ORDER BY e.ts, e.event_id LIMIT $limit""", params).fetchall()
                events = tuple(TracedEvent(r[0], r[1], r[2], None if r[3] is None else text(Decimal(r[3])),
                                           json.loads(r[4]) if r[4] is not None else None, r[5], r[6], bool(r[7]))
                               for r in rows)
        explained.append(ExplainedLine(line, line.rating_run_id, line.rated_line_no, definition, count, events, later))
    return Explanation(invoice, tuple(explained))


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Difference:
    line: str  # what the line is: "usage tokens model=gpt-large 2026-10-01"
    field: str
    stored: str
    derived: str


@dataclass(frozen=True)
class Verification:
    invoice_id: str
    identical: bool
    stored_hash: str
    derived_hash: str
    stored_total_minor: int
    derived_total_minor: int
    differences: tuple[Difference, ...]
    later_events: int = 0  # metered events of the period ingested after it was rated
    superseded_by: str | None = None


def _snapshot_catalog(con: duckdb.DuckDBPyConnection, invoice: Invoice, meters: list[Meter]) -> Catalog:
    """The frozen snapshots of the versions the invoice's rating run priced with (a run from
    before those were recorded: the versions its lines name)."""
    refs = []
    if has_table(con, "rating_run_pricebooks"):  # verify opens the store read-only: it may predate the table
        refs = con.execute("SELECT plan, version FROM rating_run_pricebooks WHERE run_id = ? ORDER BY ALL",
                           [invoice.rating_run_id]).fetchall()
    refs = refs or sorted({(line.plan, line.version) for line in invoice.lines})
    versions = []
    for plan, version in refs:
        rows = con.execute("SELECT source_text, source_path, content_hash FROM pricebook_versions WHERE plan = ? AND version = ?",
                           [plan, version]).fetchall()
        if not rows:
            raise DataError(f"pricebook {plan}@{version} has no stored snapshot: the store was changed by hand")
        text_, path, stored_hash = rows[0]
        snapshot = pricebook_from_text(text_, f"{path} (snapshot of {plan}@{version})", meters)
        if snapshot.content_hash != stored_hash:
            raise DataError(f"the stored snapshot of {plan}@{version} does not match its hash: the store was changed by hand")
        versions.append(snapshot)
    return Catalog(tuple(versions))


def _key(kind: str, name: str, meter: str | None, dims: dict, segment_start) -> str:
    dims_text = " ".join(f"{k}={v}" for k, v in sorted(dims.items()))
    return " ".join(part for part in (kind, name if kind == "fee" else meter or name, dims_text, str(segment_start)) if part)


def verify(con: duckdb.DuckDBPyConnection, reference: str) -> Verification:
    invoice = get_invoice(con, reference)
    run_meters, as_of, month = _run(con, invoice.rating_run_id)
    meters = [Meter.model_validate(m) for m in run_meters.values()]
    catalog = _snapshot_catalog(con, invoice, meters)
    customer = next((c for c in customer_history(con, invoice.customer_id) if c.version == invoice.customer_version), None)
    if customer is None:
        raise DataError(f"customer {invoice.customer_id} version {invoice.customer_version} is missing from the store")
    # The month the invoice's run rated: a period cut short by the end of a subscription is
    # billed in the month it was cut, not in the month of its nominal end.
    jobs = [job for job in plan_jobs(con, catalog, month, versions=[customer]) if job.segment.period.start == invoice.period_start]
    # From the events the invoice's rating saw: the invoice as it was must come out again.
    derived, _ = rate_jobs(con, jobs, meters, as_of_batch=as_of)
    totals = invoice_totals(derived)
    digest = content_hash(derived, totals)
    differences: list[Difference] = []
    stored = {_key(l.kind, l.name, l.meter, l.dimensions, l.segment_start): l for l in invoice.lines}
    fresh = {_key(l.kind, l.name, l.meter, l.dimensions, l.segment_start): l for l in derived}
    for key in sorted(set(stored) | set(fresh)):
        a, b = stored.get(key), fresh.get(key)
        if a is None or b is None:
            differences.append(Difference(key, "line", "absent" if a is None else "present", "absent" if b is None else "present"))
            continue
        for field, x, y in (("quantity", text(a.quantity), text(b.quantity)), ("precise_amount", a.precise_amount, b.precise_amount),
                            ("amount_minor", str(a.amount_minor), str(b.amount_minor)), ("pricebook", a.pricebook, b.pricebook)):
            if x != y:
                differences.append(Difference(key, field, x, y))
    if totals["total_minor"] != invoice.total_minor:
        differences.append(Difference("invoice", "total_minor", str(invoice.total_minor), str(totals["total_minor"])))
    later = 0
    if jobs:
        names = sorted({m.event_name for m in meters} | {m.stop_event for m in meters if m.stop_event})
        later = con.execute(
            "SELECT count(*) FROM events WHERE customer_id = $customer AND batch_id > $as_of AND list_contains($names, event_name) "
            "AND ts >= $start AND ts < $end",
            {"customer": invoice.customer_id, "as_of": as_of, "names": names,
             "start": min(j.start_at for j in jobs), "end": max(j.end_at for j in jobs)},
        ).fetchall()[0][0]
    return Verification(invoice.invoice_id, digest == invoice.content_hash and not differences, invoice.content_hash, digest,
                        invoice.total_minor, totals["total_minor"], tuple(differences), later, invoice.superseded_by)
