"""Files → events, identical duplicates, conflicts and dead letters.

Each input file is ingested in one transaction of the event store: after a crash at any
moment the store holds all of that file's effects or none of them. Inside it, the file is
read in chunks; the event store validates, normalises and classifies each chunk as a whole
against the stored events (which include the file's earlier chunks), so that every line
ends in exactly one place:

    lines read = accepted + duplicates + conflicts + dead-lettered
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from meterctl import __version__
from meterctl.errors import InputNotFoundError
from meterctl.events import ContractRules, FileOutcome, IngestOptions, IngestResult
from meterctl.io.readers import (
    FORMAT_PARQUET,
    PARQUET_MAGIC,
    FileInfo,
    LineReader,
    ParquetReader,
    Reader,
    content_sha256,
    file_info,
    sniff_format,
    spool_stdin,
    stdin_bytes,
)
from meterctl.io.sources import Source
from meterctl.progress import NullProgress, Progress
from meterctl.store.ports import BatchManifest, ChunkCounts, EventStore, PriorBatch


def ingest(
    events: EventStore,
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
    events.prepare_ingest()
    rules = options.rules(now)
    outcomes = []
    for source in sources:
        began = time.perf_counter()
        try:
            outcomes.append(_ingest_source(events, source, options.chunk_bytes, rules, progress))
        except InputNotFoundError as error:
            outcomes.append(FileOutcome(source=source.name, format=_format_of(source), error=str(error),
                                        seconds=time.perf_counter() - began))
    return IngestResult(tuple(outcomes), time.perf_counter() - started, now)


def _format_of(source: Source) -> str:
    try:
        return sniff_format(source)
    except OSError:
        return "unknown"


def _skip(source: Source, fmt: str, sha: str, earlier: PriorBatch, started: float) -> FileOutcome:
    return FileOutcome(
        source=source.name,
        format=fmt,
        skipped=True,
        skip_reason=f"same content already ingested as batch {earlier.batch_id} ({earlier.source})",
        batch_id=earlier.batch_id,
        content_sha256=sha,
        seconds=time.perf_counter() - started,
    )


def _ingest_source(events: EventStore, source: Source, chunk_bytes: int, rules: ContractRules,
                   progress: Progress) -> FileOutcome:
    started = time.perf_counter()
    spooled = None
    fmt = sniff_format(source)
    if source.is_stdin and _stdin_is_parquet():
        # Parquet needs to seek: keep standard input in a file, then look at its footer too.
        spooled = spool_stdin()
        fmt = sniff_format(Source(source.name, spooled))
        source = Source(source.name, spooled)
    try:
        info = file_info(source)
        if spooled is not None:  # standard input: its size, not the path of a file about to be deleted
            info = FileInfo(info.size_bytes, None, None)
        # A cron job that names the same files again should not pay for parsing them:
        # when path, size and mtime match an earlier batch, check the content hash first.
        if source.path is not None and info.absolute_path is not None and events.unchanged_since_ingest(
                info.absolute_path, info.size_bytes, info.mtime_ns):
            sha = content_sha256(source.path, fmt)
            earlier = events.batch_with_content(sha)
            if earlier:
                return _skip(source, fmt, sha, earlier, started)
        progress.start_file(source.name, info.size_bytes)
        try:
            reader: Reader = ParquetReader(source) if fmt == FORMAT_PARQUET else LineReader(source, chunk_bytes)
            return _ingest_file(events, source, reader, info, rules, progress, started)
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
    blank_lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    dead_lettered: int = 0

    def add(self, chunk: ChunkCounts) -> None:
        self.read += chunk.read
        self.blank_lines += chunk.blank_lines
        self.accepted += chunk.accepted
        self.duplicates += chunk.duplicates
        self.conflicts += chunk.conflicts
        self.dead_lettered += chunk.dead_lettered


def _ingest_file(events: EventStore, source: Source, reader: Reader, info: FileInfo, rules: ContractRules,
                 progress: Progress, started: float) -> FileOutcome:
    counts = _Counts()
    with events.new_batch(source.name) as batch:
        add = batch.add_rows if reader.format == FORMAT_PARQUET else batch.add_lines
        for chunk, nbytes in reader.chunks():
            counts.add(add(chunk, rules))
            progress.advance(nbytes)
        sha = reader.content_sha256()
        earlier = events.batch_with_content(sha)
        if earlier:
            batch.abandon()
            return _skip(source, reader.format, sha, earlier, started)
        batch.commit(BatchManifest(
            source=source.name, source_path=info.absolute_path, format=reader.format, content_sha256=sha,
            size_bytes=info.size_bytes if info.size_bytes is not None else reader.size_bytes,
            mtime_ns=info.mtime_ns, ingest_time=rules.now, read=counts.read, blank_lines=counts.blank_lines,
            accepted=counts.accepted, duplicates=counts.duplicates, conflicts=counts.conflicts,
            dead_lettered=counts.dead_lettered, meterctl_version=__version__,
        ))
    return FileOutcome(
        source=source.name,
        format=reader.format,
        read=counts.read,
        accepted=counts.accepted,
        duplicates=counts.duplicates,
        conflicts=counts.conflicts,
        dead_lettered=counts.dead_lettered,
        blank_lines=counts.blank_lines,
        batch_id=batch.batch_id,
        content_sha256=sha,
        seconds=time.perf_counter() - started,
    )
