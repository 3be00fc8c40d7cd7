"""One input file as one ingest batch: its chunks staged, judged and classified in SQL.

Each chunk is registered as an Arrow table and read by the SQL of `sql/`: stage_fast.sql
settles the plain, well-formed lines; stage_lines.sql judges the rest with the full event
contract; classify_stage.sql sorts the valid lines into new events, identical duplicates and
conflicts against what is stored (the file's earlier chunks included); insert_outcomes.sql
writes them. The whole file is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from meterctl.errors import InputNotFoundError
from meterctl.events import ContractRules
from meterctl.store.duckdb import sqlfiles
from meterctl.store.duckdb.connect import ENV_MEMORY_LIMIT
from meterctl.store.duckdb.transaction import transaction
from meterctl.store.ports import BatchManifest, ChunkCounts

# Parquet columns that hold a JSON object as text are embedded as JSON, not as a string.
_JSON_TEXT_COLUMNS = ("properties", "data")

# A chunk that is valid UTF-8 as a whole comes with `txt`, the same bytes as text (see
# io.readers.split_lines); otherwise chunk_lines.sql decodes it line by line.
_VALID_TEXT_VIEW = "CREATE OR REPLACE TEMP VIEW chunk_text AS SELECT line_no, txt, NULL::VARCHAR AS raw FROM chunk"


class DuckDBBatch:
    """The Batch port over one open transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, batch_id: int) -> None:
        self.con = con
        self.batch_id = batch_id
        self.done = False

    def add_lines(self, chunk: pa.Table, rules: ContractRules) -> ChunkCounts:
        view = _VALID_TEXT_VIEW if "txt" in chunk.column_names else sqlfiles.load("chunk_lines")
        return self._add(chunk, view, rules)

    def add_rows(self, chunk: pa.Table, rules: ContractRules) -> ChunkCounts:
        chunk = _scannable(chunk)
        return self._add(chunk, _parquet_lines_view(chunk.schema), rules)

    def _add(self, chunk: pa.Table, view: str, rules: ContractRules) -> ChunkCounts:
        con = self.con
        params = _parameters(rules, self.batch_id)
        con.register("chunk", chunk)
        try:
            con.execute(view)
            sqlfiles.run(con, "stage_fast", params)
            _stage_remaining_lines(con, params)
            _make_invalid_utf8_readable(con, chunk)
            staged, dead = con.execute(
                "SELECT count(*), count(*) FILTER (reason IS NOT NULL) FROM stage"
            ).fetchall()[0]
            sqlfiles.run(con, "classify_stage", params)
            outcome_counts = dict(con.execute("SELECT outcome, count(*) FROM repeats GROUP BY ALL").fetchall())
            for statement in sqlfiles.statements("insert_outcomes"):
                if "INTO conflicts" in statement and not outcome_counts.get("conflict"):
                    continue
                if "INTO duplicate_days" in statement and not outcome_counts.get("duplicate"):
                    continue
                if "INTO dead_letters" in statement and not dead:
                    continue
                sqlfiles.execute(con, statement, params)
        except BaseException:
            # After a failure the transaction is aborted and unregister fails too: the first
            # error is the one to report.
            try:
                con.unregister("chunk")
            except duckdb.Error:
                pass
            raise
        con.unregister("chunk")
        duplicates, conflicts = outcome_counts.get("duplicate", 0), outcome_counts.get("conflict", 0)
        return ChunkCounts(read=staged, blank_lines=chunk.num_rows - staged, accepted=staged - dead - duplicates - conflicts,
                           duplicates=duplicates, conflicts=conflicts, dead_lettered=dead)

    def commit(self, manifest: BatchManifest) -> None:
        self.con.execute(
            "INSERT INTO ingest_batches VALUES "
            "($batch_id, $source, $source_path, $format, $sha, $size, $mtime, $now, now(),"
            " $read, $blank, $accepted, $duplicates, $conflicts, $dead, $version)",
            {
                "batch_id": self.batch_id, "source": manifest.source, "source_path": manifest.source_path,
                "format": manifest.format, "sha": manifest.content_sha256, "size": manifest.size_bytes,
                "mtime": manifest.mtime_ns, "now": manifest.ingest_time, "read": manifest.read,
                "blank": manifest.blank_lines, "accepted": manifest.accepted, "duplicates": manifest.duplicates,
                "conflicts": manifest.conflicts, "dead": manifest.dead_lettered, "version": manifest.meterctl_version,
            },
        )
        self.done = True

    def abandon(self) -> None:
        self.done = False


@contextmanager
def new_batch(con: duckdb.DuckDBPyConnection, source: str) -> Iterator[DuckDBBatch]:
    """A batch in its own transaction: kept only when the caller commits it."""
    try:
        with _ingest_settings(con), transaction(con) as open_transaction:
            batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchall()[0][0]
            batch = DuckDBBatch(con, batch_id)
            yield batch
            if not batch.done:
                open_transaction.rollback()
    except duckdb.NotImplementedException as error:
        # A column type DuckDB cannot scan (_scannable converts the ones it knows of).
        reason = str(error).splitlines()[0]
        raise InputNotFoundError(f"{source}: cannot be read: {reason}") from None
    except duckdb.OutOfMemoryException:
        # Lines of hundreds of kilobytes take DuckDB far more memory than the usual events
        # (it works on 2048 rows at a time). The transaction is rolled back; the other
        # files go on.
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        raise InputNotFoundError(
            f"{source}: cannot be ingested within the memory limit of {limit} (nothing of it was stored); "
            f"ingest it again with a higher {ENV_MEMORY_LIMIT}, e.g. {ENV_MEMORY_LIMIT}=4GB") from None


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """What every batch of an ingest needs: the validation macros, current key hashes and
    the work tables that outlive a chunk."""
    from meterctl.store.duckdb.key_hashes import ensure_key_hashes

    sqlfiles.install_macros(con)
    ensure_key_hashes(con)
    sqlfiles.run(con, "stage_tables", {})


def _parameters(rules: ContractRules, batch_id: int) -> dict[str, Any]:
    return {
        "now": rules.now,
        "max_future_seconds": int(rules.max_future.total_seconds()),
        "max_age_seconds": int(rules.max_age.total_seconds()) if rules.max_age is not None else None,
        "fast_path": rules.fast_path,
        "batch_id": batch_id,
    }


@contextmanager
def _ingest_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Session settings for an ingest, put back as they were afterwards."""
    settings = {
        # Row order inside the work tables and `events` carries no meaning (every ordering
        # is explicit, by line number); not preserving it lets DuckDB write them in parallel.
        "preserve_insertion_order": "false",
    }
    # DuckDB's memory is capped for every connection in connect.py (METERCTL_MEMORY_LIMIT).
    before = {name: _setting_text(con, name) for name in settings}
    for name, value in settings.items():
        con.execute(f"SET {name} = '{value}'")
    try:
        yield
    except BaseException:
        # The failure on its way is what to report: a connection it left unusable must
        # not replace it with an error about a setting.
        try:
            _restore(con, before)
        except duckdb.Error:
            pass
        raise
    _restore(con, before)


def _restore(con: duckdb.DuckDBPyConnection, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        con.execute(f"SET {name} = '{value}'")


def _setting_text(con: duckdb.DuckDBPyConnection, name: str) -> str:
    value = con.execute("SELECT CAST(current_setting(?) AS VARCHAR)", [name]).fetchall()[0][0]
    return str(value).replace("'", "''")


def _stage_remaining_lines(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> None:
    """Judge the lines the fast path left (stage_lines.sql), if there are any.

    Binding that statement (its macros expand to thousands of expressions) costs DuckDB 50
    to 90 ms whatever the number of lines: a chunk of clean events, the usual content of a
    small file ingested from cron, does without it.
    """
    con.execute("DELETE FROM slow_stage")
    if con.execute("SELECT EXISTS (SELECT 1 FROM chunk_lines)").fetchall()[0][0]:
        sqlfiles.run(con, "stage_lines", params)


def _make_invalid_utf8_readable(con: duckdb.DuckDBPyConnection, chunk: pa.Table) -> None:
    """Show a line that is not valid UTF-8 as text with only its bad bytes escaped.

    DuckDB can only render the whole line as an escaped BLOB; such lines are rare, so
    Python decodes just those few with 'backslashreplace'.
    """
    bad = [row[0] for row in con.execute("SELECT line_no FROM stage WHERE reason = 'not valid UTF-8'").fetchall()]
    if not bad:
        return
    first = chunk.column("line_no")[0].as_py()
    raws = chunk.column("raw").take(pa.array([n - first for n in bad])).to_pylist()
    fixed = pa.table({
        "line_no": pa.array(bad, pa.int64()),
        "raw": pa.array([r.decode("utf-8", "backslashreplace") for r in raws], pa.large_string()),
    })
    con.register("readable_lines", fixed)
    try:
        # Lines that are not UTF-8 never take the fast path: they sit in `slow_stage`.
        con.execute("UPDATE slow_stage SET raw = r.raw FROM readable_lines AS r WHERE slow_stage.line_no = r.line_no")
    finally:
        con.unregister("readable_lines")


def _scannable(table: pa.Table) -> pa.Table:
    """The columns whose Arrow type DuckDB cannot scan, as types it can, losing nothing:
    half floats widened, 256-bit decimals as their exact text."""
    for index, column in enumerate(table.schema):
        kind = column.type
        if pa.types.is_float16(kind):
            table = table.set_column(index, column.name, table.column(index).cast(pa.float32()))
        elif pa.types.is_decimal256(kind):
            table = table.set_column(index, column.name, table.column(index).cast(pa.string()))
    return table


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _is_text(kind: pa.DataType) -> bool:
    """A string column, however Arrow holds it (plain, large, view, or dictionary-encoded)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _parquet_lines_view(schema: pa.Schema) -> str:
    """Each Parquet row as the JSON object it would be as a JSONL line (io.readers.ParquetReader
    appends the row number as the last column). Column names are quoted identifiers."""
    row_column = _quote(schema.names[-1])
    replacements = [
        f"CASE WHEN json_valid(CAST({_quote(f.name)} AS VARCHAR)) THEN CAST(CAST({_quote(f.name)} AS VARCHAR) AS JSON) "
        f"ELSE to_json({_quote(f.name)}) END AS {_quote(f.name)}"
        for f in list(schema)[:-1]
        if f.name in _JSON_TEXT_COLUMNS and _is_text(f.type)
    ] + [
        # A struct holds every key any row has (pyarrow makes one from a column of dicts): a
        # row's null fields are the keys it did not have, so they are dropped (as a JSON
        # merge patch drops null members) and a row equals the JSONL line it came from.
        f"json_merge_patch('{{}}', to_json({_quote(f.name)})) AS {_quote(f.name)}"
        for f in list(schema)[:-1]
        if f.name in _JSON_TEXT_COLUMNS and pa.types.is_struct(f.type)
    ]
    replace = f" REPLACE ({', '.join(replacements)})" if replacements else ""
    return (
        "CREATE OR REPLACE TEMP VIEW chunk_text AS "
        f"SELECT {row_column} AS line_no, CAST(to_json(struct_pack(*COLUMNS(* EXCLUDE ({row_column})))) AS VARCHAR) AS txt, "
        "NULL::VARCHAR AS raw "
        f"FROM (SELECT *{replace} FROM chunk)"
    )
