"""Rating runs in DuckDB: the run, its lines, the pricebook versions it froze and used.

All append-only: a run never changes; rating again adds a run (with the same run_hash when
nothing changed).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb

from meterctl.canonical_json import string
from meterctl.errors import DataError
from meterctl.instants import EpochCache, from_epoch_us, iso
from meterctl.pricing import minor_units
from meterctl.rating.lines import CANONICAL_KEYS, LineContext, RatedLine, stored_dimensions, stored_tiers, tier_json, tier_use
from meterctl.rating.notes import RunNotes
from meterctl.store.duckdb.connect import has_table
from meterctl.store.duckdb.transaction import transaction
from meterctl.store.ports import FrozenVersion, RunRecord, StoredRun
from meterctl.usage import OpenSession, Unmeterable

if TYPE_CHECKING:
    from meterctl.meters import Meter
    from meterctl.pricebook.catalog import PricebookVersion


def definitions_json(meters: Sequence[Meter]) -> str:
    from meterctl.meters import definitions_json  # with pydantic: rating has loaded it already

    return definitions_json(meters)

# The rated_lines columns after run_id, in table order, with their types: the shape of the
# JSON object record_run sends for each line.
_STORED = (
    ("line_no", "INTEGER"), ("customer_id", "VARCHAR"), ("currency", "VARCHAR"), ("timezone", "VARCHAR"),
    ("period_start", "DATE"), ("period_end", "DATE"), ("segment_start", "DATE"), ("segment_end", "DATE"),
    ("window_start", "TIMESTAMPTZ"), ("window_end", "TIMESTAMPTZ"), ("plan", "VARCHAR"), ("version", "INTEGER"),
    ("pricebook_hash", "VARCHAR"), ("kind", "VARCHAR"), ("name", "VARCHAR"), ("meter", "VARCHAR"),
    ("dimensions", "VARCHAR"), ("quantity", "DECIMAL(38, 18)"), ("unit_price", "DECIMAL(38, 18)"), ("tiers", "VARCHAR"),
    ("proration", "VARCHAR"), ("precise_amount", "VARCHAR"), ("amount", "DECIMAL(38, 18)"),
    ("amount_minor", "BIGINT"), ("unmeterable", "BIGINT"),
)
_STORED_SHAPE = json.dumps(dict(_STORED))
# One list parameter of JSON objects, each parsed on its own row: linear in the number of
# lines and spread over DuckDB's threads (one document of them all is parsed as one value,
# slower the bigger it is, and inside the memory limit).
_INSERT_LINES = (f"INSERT INTO rated_lines (run_id, {', '.join(name for name, _ in _STORED)}) "
                 "SELECT $run, unnest(from_json_strict(line, $shape)) FROM (SELECT unnest($lines) AS line)")
# Values stored as the hashes encode them (canonical JSON), taken from a line's encoded values;
# the rest are the template's first five.
_OWN = ("line_no", "plan", "version", "dimensions", "tiers")
_REUSED = tuple(name for name, _ in _STORED if name not in _OWN)
_pick_reused = operator.itemgetter(*(CANONICAL_KEYS.index(name) for name in _REUSED))
_STORED_TEMPLATE = ('{"line_no":%d,"plan":%s,"version":%d,"dimensions":%s,"tiers":%s,'
                    + ",".join(f"{string(name)}:%s" for name in _REUSED) + "}")


def _line_objects(lines: Sequence[RatedLine]) -> list[str]:
    """Each line as the JSON object record_run inserts. Most values are the JSON text the
    hashes already encoded; dimensions and tiers are stored as the text `stored_dimensions`
    and `stored_tiers` write, so they go as strings. Decimals are strings, read exactly by
    `from_json_strict`, which fails (rather than giving NULL) on a value too large for its column."""
    template = _STORED_TEMPLATE
    return [
        template % (number, string(line.plan), line.version,
                    string(stored_dimensions(line.dimensions)) if line.dimensions else '"{}"',
                    string(stored_tiers([tier_json(t) for t in line.tiers])) if line.tiers else '"[]"',
                    *_pick_reused(line.encoded))
        for number, line in enumerate(lines, 1)
    ]


def _customers_json(customers: Sequence[str] | None) -> str | None:
    return json.dumps(sorted(customers)) if customers else None


def _notes_json(notes: RunNotes) -> str:
    return json.dumps({
        "unmeterable": [[u.customer_id, u.meter, u.events, u.reason] for u in notes.unmeterable],
        "open_sessions": [[o.customer_id, o.meter, o.session, iso(o.last_event_at)] for o in notes.open_sessions],
        "unpriceable": [list(u) for u in notes.unpriceable],
    })


def _notes(text: str | None) -> RunNotes | None:
    """A run's notes as recorded (runs from before notes were recorded have none)."""
    if not text:
        return None
    noted = json.loads(text)
    return RunNotes(
        tuple(Unmeterable(*u) for u in noted.get("unmeterable", ())),
        tuple(OpenSession(c, m, s, datetime.fromisoformat(last)) for c, m, s, last in noted.get("open_sessions", ())),
        tuple((customer, why) for customer, why in noted.get("unpriceable", ())),
    )


class RunRecords:
    """The Ledger's rating runs and frozen pricebook versions."""

    con: duckdb.DuckDBPyConnection

    def frozen_versions(self) -> dict[str, FrozenVersion]:
        if not has_table(self.con, "pricebook_versions"):
            return {}  # a store from before rating existed, opened read-only: nothing is frozen
        instants = EpochCache()
        rows = self.con.execute(
            "SELECT plan, version, content_hash, source_path, epoch_us(frozen_at), first_run_id "
            "FROM pricebook_versions ORDER BY plan, version"
        ).fetchall()
        return {f"{r[0]}@{r[1]}": FrozenVersion(r[0], r[1], r[2], r[3], instants[r[4]], r[5]) for r in rows}

    def pricebook_snapshot(self, plan: str, version: int) -> tuple[str, str, str] | None:
        rows = self.con.execute(
            "SELECT source_text, source_path, content_hash FROM pricebook_versions WHERE plan = ? AND version = ?",
            [plan, version]).fetchall()
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def _freeze(self, versions: Sequence[PricebookVersion], run_id: int) -> None:
        """Store the hash and content of versions rating for the first time (inside the caller's transaction)."""
        for v in versions:
            self.con.execute(
                "INSERT INTO pricebook_versions "
                "SELECT $plan, $version, $hash, $canonical, $path, $text, now(), $run "
                "WHERE NOT EXISTS (SELECT 1 FROM pricebook_versions WHERE plan = $plan AND version = $version)",
                {"plan": v.plan, "version": v.version, "hash": v.content_hash, "canonical": v.book.canonical(),
                 "path": v.path, "text": v.source_text, "run": run_id},
            )

    def record_run(self, run: RunRecord) -> tuple[int, tuple[str, ...]]:
        con = self.con
        with transaction(con):
            run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM rating_runs").fetchall()[0][0]
            before = {row[0] for row in con.execute("SELECT plan || '@' || version FROM pricebook_versions").fetchall()}
            self._freeze(run.pricebooks, run_id)
            newly = tuple(v.ref for v in run.pricebooks if v.ref not in before)
            for v in run.pricebooks:
                con.execute("INSERT INTO rating_run_pricebooks VALUES (?, ?, ?)", [run_id, v.plan, v.version])
            con.execute(
                "INSERT INTO rating_runs (run_id, period, customers, run_hash, line_count, meters, as_of_batch, created_at, "
                "inputs_sha256, notes) SELECT $run, $period, $customers, $hash, $count, $meters, $as_of_batch, now(), "
                "$inputs, $notes",
                {"run": run_id, "period": run.period, "customers": _customers_json(run.customers), "hash": run.run_hash,
                 "count": len(run.lines), "meters": definitions_json(run.meters), "as_of_batch": run.as_of_batch,
                 "inputs": run.inputs_sha256, "notes": _notes_json(run.notes)},
            )
            try:
                con.execute(_INSERT_LINES, {"run": run_id, "lines": _line_objects(run.lines), "shape": _STORED_SHAPE})
            except duckdb.InvalidInputException as error:
                raise DataError("a rated line does not fit the store's columns (DECIMAL(38, 18) quantities, prices and "
                                f"amounts; 64-bit minor units): {error}") from None
        return int(run_id), newly

    def run_from_inputs(self, period: str, customers: Sequence[str] | None, inputs_sha256: str) -> StoredRun | None:
        rows = self.con.execute(
            f"{_RUN_SELECT} WHERE inputs_sha256 = $inputs "
            "AND period = $period AND CAST(customers AS VARCHAR) IS NOT DISTINCT FROM $customers "
            "ORDER BY run_id DESC LIMIT 1",
            {"inputs": inputs_sha256, "period": period, "customers": _customers_json(customers)},
        ).fetchall()
        return _stored_run(rows[0]) if rows else None

    def identical_run(self, period: str, customers: Sequence[str] | None, run_hash: str, line_count: int,
                      pricebooks: Sequence[str], meters: Sequence[Meter], as_of_batch: int) -> int | None:
        """A run of this month and customer filter that holds exactly these lines (same run hash
        and count), priced with the same pricebook versions and meters from the same stored
        events (no ingest since): recording another would only copy it. The latest such run."""
        found = self.con.execute(
            "SELECT max(r.run_id) FROM rating_runs AS r WHERE r.period = $period "
            "AND CAST(r.customers AS VARCHAR) IS NOT DISTINCT FROM $customers "
            "AND r.run_hash = $hash AND r.line_count = $count AND CAST(r.meters AS VARCHAR) = $meters "
            "AND r.as_of_batch = $as_of_batch "
            "AND (SELECT list_sort(list(p.plan || '@' || CAST(p.version AS VARCHAR))) FROM rating_run_pricebooks AS p "
            "     WHERE p.run_id = r.run_id) = $refs",
            {"period": period, "customers": _customers_json(customers), "hash": run_hash, "count": line_count,
             "meters": definitions_json(meters), "refs": sorted(pricebooks), "as_of_batch": as_of_batch},
        ).fetchall()[0][0]
        return None if found is None else int(found)

    def last_successes(self) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        queries = {"rate": "SELECT epoch_us(max(created_at)) FROM rating_runs"}
        if has_table(self.con, "invoices"):
            queries["invoice"] = "SELECT epoch_us(max(created_at)) FROM invoices"
            queries["finalize"] = "SELECT epoch_us(max(finalized_at)) FROM invoices"
        for command, query in queries.items():
            micros = self.con.execute(query).fetchall()[0][0]
            if micros is not None:
                found[command] = from_epoch_us(micros)
        if has_table(self.con, "command_successes"):
            for command, micros in self.con.execute(
                    "SELECT command, epoch_us(max(finished_at)) FROM command_successes GROUP BY command").fetchall():
                found[command] = from_epoch_us(micros)
        return found

    def record_success(self, command: str, at: datetime) -> None:
        self.con.execute("INSERT INTO command_successes VALUES (?, ?)", [command, at])

    def run(self, run_id: int) -> StoredRun | None:
        # Without the notes: a store opened read-only may predate them (migration 0007).
        rows = self.con.execute(
            "SELECT run_id, period, run_hash, line_count, CAST(meters AS VARCHAR), as_of_batch, NULL "
            "FROM rating_runs WHERE run_id = ?", [run_id]).fetchall()
        return _stored_run(rows[0]) if rows else None

    def run_pricebooks(self, run_id: int) -> list[tuple[str, int]]:
        if not has_table(self.con, "rating_run_pricebooks"):  # a store opened read-only may predate the table
            return []
        rows = self.con.execute("SELECT plan, version FROM rating_run_pricebooks WHERE run_id = ? ORDER BY ALL",
                                [run_id]).fetchall()
        return [(plan, version) for plan, version in rows]

    def run_lines(self, run_id: int) -> list[RatedLine]:
        """A run's lines as rating made them: amounts at their currency's scale again, tiers as
        TierUse (decimals are compared by value; the hashes write them with text())."""
        rows = self.con.execute(
            "SELECT customer_id, currency, timezone, period_start, period_end, segment_start, segment_end, "
            "epoch_us(window_start), epoch_us(window_end), plan, version, pricebook_hash, kind, name, "
            "meter, dimensions, quantity, unit_price, tiers, proration, precise_amount, amount, amount_minor, unmeterable "
            "FROM rated_lines WHERE run_id = ? ORDER BY line_no",
            [run_id],
        ).fetchall()
        quanta = {currency: Decimal(1).scaleb(-minor_units(currency)) for currency in {row[1] for row in rows}}
        instants = EpochCache()
        contexts: dict[tuple[Any, ...], LineContext] = {}
        lines = []
        for row in rows:
            (customer_id, currency, timezone, period_start, period_end, segment_start, segment_end, window_start,
             window_end, plan, version, pricebook_hash, kind, name, meter, dimensions, quantity, unit_price, tiers,
             proration, precise, amount, minor, unmeterable) = row
            key = row[:12]
            context = contexts.get(key)
            if context is None:
                context = contexts[key] = LineContext(
                    customer_id, currency, timezone, period_start, period_end, segment_start, segment_end,
                    instants[window_start], instants[window_end], plan, version, pricebook_hash)
            lines.append(RatedLine(
                context, kind, name, meter, json.loads(dimensions) if dimensions != "{}" else {}, quantity, unit_price,
                tuple(tier_use(t) for t in json.loads(tiers)) if tiers != "[]" else (), proration, precise,
                amount.quantize(quanta[currency]), minor, unmeterable))
        return lines


_RUN_SELECT = ("SELECT run_id, period, run_hash, line_count, CAST(meters AS VARCHAR), as_of_batch, "
               "CAST(notes AS VARCHAR) FROM rating_runs")


def _stored_run(row: tuple[Any, ...]) -> StoredRun:
    run_id, period, run_hash, count, meters, as_of_batch, notes = row
    return StoredRun(run_id, period, run_hash, count, tuple(json.loads(meters)), as_of_batch, _notes(notes))
