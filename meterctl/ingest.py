"""Files → events, identical duplicates, conflicts and dead letters.

Each input file is ingested in one transaction: after a crash at any moment the store
holds all of that file's effects or none of them. Inside it, the file is read in
chunks; each chunk is validated, normalised and classified by set-based SQL against
the stored events (which include the file's earlier chunks), so that every line ends
in exactly one place:

    lines read = accepted + duplicates + conflicts + dead-lettered
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from meterctl import __version__, sql
from meterctl.errors import InputNotFoundError
from meterctl.event_keys import ensure_key_hashes
from meterctl.progress import NullProgress, Progress
from meterctl.readers import (
    DEFAULT_CHUNK_BYTES,
    FORMAT_PARQUET,
    LineReader,
    PARQUET_MAGIC,
    FileInfo,
    ParquetReader,
    content_sha256,
    file_info,
    stdin_bytes,
    sniff_format,
    spool_stdin,
)
from meterctl.sources import Source
from meterctl.store import ENV_MEMORY_LIMIT

DEFAULT_MAX_FUTURE = timedelta(minutes=5)

# Parquet columns that hold a JSON object as text are embedded as JSON, not as a string.
_JSON_TEXT_COLUMNS = ("properties", "data")


@dataclass(frozen=True)
class IngestOptions:
    max_future: timedelta = DEFAULT_MAX_FUTURE
    max_age: timedelta | None = None
    now: datetime | None = None  # the ingest time; defaults to the wall clock at the start
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    # False sends every line through the full rule set (stage_lines.sql) instead of settling
    # clean lines on the fast path first: same outcome, slower; tests compare the two.
    fast_path: bool = True


@dataclass(frozen=True)
class FileOutcome:
    source: str
    format: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0
    blank_lines: int = 0
    skipped: bool = False
    skip_reason: str | None = None
    batch_id: int | None = None
    content_sha256: str | None = None
    seconds: float = 0.0
    # Why the file could not be read (nothing of it was stored); the other files go on.
    error: str | None = None

    @property
    def balanced(self) -> bool:
        return self.read == self.accepted + self.duplicates + self.conflicts + self.dead_lettered


@dataclass(frozen=True)
class IngestResult:
    files: tuple[FileOutcome, ...]
    seconds: float
    ingest_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def _sum(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def read(self) -> int:
        return self._sum("read")

    @property
    def accepted(self) -> int:
        return self._sum("accepted")

    @property
    def duplicates(self) -> int:
        return self._sum("duplicates")

    @property
    def conflicts(self) -> int:
        return self._sum("conflicts")

    @property
    def dead_lettered(self) -> int:
        return self._sum("dead_lettered")

    @property
    def blank_lines(self) -> int:
        return self._sum("blank_lines")

    @property
    def skipped_files(self) -> int:
        return sum(1 for f in self.files if f.skipped)

    @property
    def failed_files(self) -> tuple[FileOutcome, ...]:
        return tuple(f for f in self.files if f.error is not None)


def ingest(
    con: duckdb.DuckDBPyConnection,
    sources: Sequence[Source],
    options: IngestOptions = IngestOptions(),
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest every source, each in its own transaction, and say what became of each line.

    A file that cannot be read (a truncated gzip stream, a damaged Parquet file) leaves
    nothing in the store; its outcome says why, and the files after it are still ingested.
    """
    progress = progress or NullProgress()
    now = options.now or datetime.now(UTC)
    started = time.perf_counter()
    sql.install_macros(con)
    ensure_key_hashes(con)
    _run(con, "stage_tables", {})
    outcomes = []
    for source in sources:
        began = time.perf_counter()
        try:
            outcomes.append(_ingest_source(con, source, options, now, progress))
        except InputNotFoundError as error:
            outcomes.append(FileOutcome(source=source.name, format=_format_of(source), error=str(error),
                                        seconds=time.perf_counter() - began))
    return IngestResult(tuple(outcomes), time.perf_counter() - started, now)


def _format_of(source: Source) -> str:
    try:
        return sniff_format(source)
    except OSError:
        return "unknown"


def _already_ingested(con: duckdb.DuckDBPyConnection, sha: str) -> tuple[int, str] | None:
    row = con.execute(
        "SELECT batch_id, source FROM ingest_batches WHERE content_sha256 = ? ORDER BY batch_id LIMIT 1",
        [sha],
    ).fetchall()
    return (row[0][0], row[0][1]) if row else None


def _skip(source: Source, fmt: str, sha: str, earlier: tuple[int, str], started: float) -> FileOutcome:
    batch_id, earlier_source = earlier
    return FileOutcome(
        source=source.name,
        format=fmt,
        skipped=True,
        skip_reason=f"same content already ingested as batch {batch_id} ({earlier_source})",
        batch_id=batch_id,
        content_sha256=sha,
        seconds=time.perf_counter() - started,
    )


def _unchanged_since_ingest(con: duckdb.DuckDBPyConnection, info: FileInfo) -> bool:
    """Is there a batch from this very path with the same size and mtime?"""
    if info.absolute_path is None:
        return False
    row = con.execute(
        "SELECT count(*) FROM ingest_batches WHERE source_path = ? AND size_bytes = ? AND mtime_ns = ?",
        [info.absolute_path, info.size_bytes, info.mtime_ns],
    ).fetchall()[0]
    return bool(row and row[0])


def _ingest_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    options: IngestOptions,
    now: datetime,
    progress: Progress,
) -> FileOutcome:
    started = time.perf_counter()
    spooled = None
    fmt = sniff_format(source)
    if source.is_stdin and _stdin_is_parquet():
        # Parquet needs to seek: keep standard input in a file, then look at its footer too.
        spooled = spool_stdin()
        fmt = sniff_format(Source(source.name, spooled))
        source = Source(source.name, spooled)
    try:
        # A cron job that names the same files again should not pay for parsing them:
        # when path, size and mtime match an earlier batch, check the content hash first.
        info = file_info(source)
        if spooled is not None:  # standard input: its size, not the path of a file about to be deleted
            info = FileInfo(info.size_bytes, None, None)
        if _unchanged_since_ingest(con, info):
            sha = content_sha256(source.path, fmt)
            earlier = _already_ingested(con, sha)
            if earlier:
                return _skip(source, fmt, sha, earlier, started)
        progress.start_file(source.name, info.size_bytes)
        try:
            return _ingest_in_transaction(con, source, fmt, info, options, now, progress, started)
        except duckdb.NotImplementedException as error:
            # A column type DuckDB cannot scan (readers.py converts the ones it knows of).
            reason = str(error).splitlines()[0]
            raise InputNotFoundError(f"{source.name}: cannot be read: {reason}") from None
        except duckdb.OutOfMemoryException:
            # Lines of hundreds of kilobytes take DuckDB far more memory than the usual events
            # (it works on 2048 rows at a time). The transaction is rolled back; the other
            # files go on.
            limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
            raise InputNotFoundError(
                f"{source.name}: cannot be ingested within the memory limit of {limit} (nothing of it was stored); "
                f"ingest it again with a higher {ENV_MEMORY_LIMIT}, e.g. {ENV_MEMORY_LIMIT}=4GB") from None
        finally:
            progress.end_file()
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


def _stdin_is_parquet() -> bool:
    return stdin_bytes().peek(4)[:4] == PARQUET_MAGIC


@dataclass
class _Counts:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0
    blank_lines: int = 0


def _ingest_in_transaction(con, source, fmt, info, options, now, progress, started) -> FileOutcome:
    reader = ParquetReader(source) if fmt == FORMAT_PARQUET else LineReader(source, options.chunk_bytes)
    params = {
        "now": now,
        "max_future_seconds": int(options.max_future.total_seconds()),
        "max_age_seconds": int(options.max_age.total_seconds()) if options.max_age is not None else None,
        "fast_path": options.fast_path,
    }
    counts = _Counts()
    with _ingest_settings(con):
        return _ingest_file(con, source, fmt, reader, info, params, counts, progress, started)


@contextmanager
def _ingest_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Session settings for an ingest, put back as they were afterwards."""
    settings = {
        # Row order inside the work tables and `events` carries no meaning (every ordering
        # is explicit, by line number); not preserving it lets DuckDB write them in parallel.
        "preserve_insertion_order": "false",
    }
    # DuckDB's memory is capped for every connection in store.connect (METERCTL_MEMORY_LIMIT).
    before = {name: _setting_text(con, name) for name in settings}
    for name, value in settings.items():
        con.execute(f"SET {name} = '{value}'")
    try:
        yield
    finally:
        for name, value in before.items():
            con.execute(f"SET {name} = '{value}'")


def _setting_text(con: duckdb.DuckDBPyConnection, name: str) -> str:
    value = con.execute("SELECT CAST(current_setting(?) AS VARCHAR)", [name]).fetchall()[0][0]
    return str(value).replace("'", "''")


def _ingest_file(con, source, fmt, reader, info, params, counts, progress, started) -> FileOutcome:
    con.execute("BEGIN TRANSACTION")
    try:
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM ingest_batches").fetchall()[0][0]
        params["batch_id"] = batch_id
        for chunk, nbytes in reader.chunks():
            _ingest_chunk(con, chunk, fmt, params, counts)
            progress.advance(nbytes)
        sha = reader.content_sha256()
        earlier = _already_ingested(con, sha)
        if earlier:
            con.execute("ROLLBACK")
            return _skip(source, reader.format, sha, earlier, started)
        con.execute(
            "INSERT INTO ingest_batches VALUES "
            "($batch_id, $source, $source_path, $format, $sha, $size, $mtime, $now, now(),"
            " $read, $blank, $accepted, $duplicates, $conflicts, $dead, $version)",
            {
                "batch_id": batch_id,
                "source": source.name,
                "source_path": info.absolute_path,
                "format": reader.format,
                "sha": sha,
                "size": info.size_bytes if info.size_bytes is not None else getattr(reader, "hasher").size,
                "mtime": info.mtime_ns,
                "now": params["now"],
                "read": counts.read,
                "blank": counts.blank_lines,
                "accepted": counts.accepted,
                "duplicates": counts.duplicates,
                "conflicts": counts.conflicts,
                "dead": counts.dead_lettered,
                "version": __version__,
            },
        )
        con.execute("COMMIT")
    except BaseException:
        _rollback_quietly(con)
        raise
    return FileOutcome(
        source=source.name,
        format=reader.format,
        read=counts.read,
        accepted=counts.accepted,
        duplicates=counts.duplicates,
        conflicts=counts.conflicts,
        dead_lettered=counts.dead_lettered,
        blank_lines=counts.blank_lines,
        batch_id=batch_id,
        content_sha256=sha,
        seconds=time.perf_counter() - started,
    )


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # the transaction was already aborted by the failure being raised


def _ingest_chunk(con, chunk: pa.Table, fmt: str, params: dict, counts: _Counts) -> None:
    con.register("chunk", chunk)
    try:
        if fmt == FORMAT_PARQUET:
            con.execute(_parquet_lines_view(chunk.schema))
        elif "txt" in chunk.column_names:
            con.execute(_VALID_TEXT_VIEW)
        else:
            con.execute(sql.load("chunk_lines"))
        _run(con, "stage_fast", params)
        _stage_remaining_lines(con, params)
        _make_invalid_utf8_readable(con, chunk)
        staged, dead = con.execute(
            "SELECT count(*), count(*) FILTER (reason IS NOT NULL) FROM stage"
        ).fetchall()[0]
        _run(con, "classify_stage", params)
        outcome_counts = dict(con.execute("SELECT outcome, count(*) FROM repeats GROUP BY ALL").fetchall())
        for statement in sql.statements("insert_outcomes"):
            if "INTO conflicts" in statement and not outcome_counts.get("conflict"):
                continue
            if "INTO dead_letters" in statement and not dead:
                continue
            sql.execute(con, statement, params)
    except BaseException:
        # After a failure the transaction is aborted and unregister fails too: the first
        # error is the one to report.
        try:
            con.unregister("chunk")
        except duckdb.Error:
            pass
        raise
    con.unregister("chunk")
    counts.read += staged
    counts.blank_lines += chunk.num_rows - staged
    counts.dead_lettered += dead
    counts.accepted += staged - dead - outcome_counts.get("duplicate", 0) - outcome_counts.get("conflict", 0)
    counts.duplicates += outcome_counts.get("duplicate", 0)
    counts.conflicts += outcome_counts.get("conflict", 0)


def _stage_remaining_lines(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    """Judge the lines the fast path left (stage_lines.sql), if there are any.

    Binding that statement (its macros expand to thousands of expressions) costs DuckDB 50
    to 90 ms whatever the number of lines: a chunk of clean events, the usual content of a
    small file ingested from cron, does without it.
    """
    con.execute("DELETE FROM slow_stage")
    if con.execute("SELECT EXISTS (SELECT 1 FROM chunk_lines)").fetchall()[0][0]:
        _run(con, "stage_lines", params)


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


# A chunk that is valid UTF-8 as a whole comes with `txt`, the same bytes as text (see
# readers.split_lines); otherwise chunk_lines.sql decodes it line by line.
_VALID_TEXT_VIEW = "CREATE OR REPLACE TEMP VIEW chunk_text AS SELECT line_no, txt, NULL::VARCHAR AS raw FROM chunk"


def _run(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> None:
    for statement in sql.statements(name):
        sql.execute(con, statement, params)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _is_text(kind: pa.DataType) -> bool:
    """A string column, however Arrow holds it (plain, large, view, or dictionary-encoded)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _parquet_lines_view(schema: pa.Schema) -> str:
    """Each Parquet row as the JSON object it would be as a JSONL line (ParquetReader appends
    the row number as the last column)."""
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
