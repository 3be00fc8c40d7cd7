"""`meterctl ingest`: Session.ingest, its summary as a table or JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterctl.cli.common import (
    DEFAULT_DB_OPTION,
    DbOption,
    JsonOption,
    WaitOption,
    parse_duration,
    print_json,
    print_table,
    session,
    stderr_console,
)

if TYPE_CHECKING:
    from types import TracebackType

    from rich.progress import TaskID

    from meterctl.events import FileOutcome, IngestResult

# The library's DEFAULT_MAX_FUTURE, written out as the option shows it. A test keeps the two equal.
MAX_FUTURE_DEFAULT = "300s"


class RichProgress:
    """A progress bar per file on stderr (only used when stderr is a terminal)."""

    def __init__(self) -> None:
        # Imported here: start-up time counts for every run, and most runs have no terminal.
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=stderr_console(), transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._progress.__exit__(kind, error, trace)

    def start_file(self, name: str, total_bytes: int | None) -> None:
        self._task = self._progress.add_task(name, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def end_file(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None


def result_document(result: IngestResult) -> dict[str, Any]:
    def counts(item: IngestResult | FileOutcome) -> dict[str, int]:
        return {
            "read": item.read,
            "accepted": item.accepted,
            "duplicates": item.duplicates,
            "conflicts": item.conflicts,
            "dead_lettered": item.dead_lettered,
            "blank_lines": item.blank_lines,
        }

    return {
        **counts(result),
        "skipped_files": result.skipped_files,
        "failed_files": len(result.failed_files),
        "seconds": round(result.seconds, 3),
        "ingest_time": result.ingest_time.isoformat().replace("+00:00", "Z"),
        "files": [
            {
                "source": f.source,
                "format": f.format,
                **counts(f),
                "skipped_files": int(f.skipped),
                "skipped": f.skipped,
                "skip_reason": f.skip_reason,
                "batch_id": f.batch_id,
                "content_sha256": f.content_sha256,
                "error": f.error,
                "seconds": round(f.seconds, 3),
            }
            for f in result.files
        ],
    }


def render_summary(result: IngestResult) -> None:
    from rich.table import Table

    table = Table(title="ingest", title_justify="left")
    table.add_column("file")
    for name in ("read", "accepted", "duplicates", "conflicts", "dead-lettered"):
        table.add_column(name, justify="right")
    table.add_column("note")
    for f in result.files:
        note = (f"NOT INGESTED: {f.error}" if f.error else f"skipped: {f.skip_reason}" if f.skipped
                else f"batch {f.batch_id}" if f.batch_id else "")
        if f.blank_lines:
            note += f", {f.blank_lines} blank line(s)"
        table.add_row(f.source, *(str(v) for v in (f.read, f.accepted, f.duplicates, f.conflicts, f.dead_lettered)), note)
    if len(result.files) > 1:
        table.add_row(
            "total",
            *(str(v) for v in (result.read, result.accepted, result.duplicates, result.conflicts, result.dead_lettered)),
            f"{result.skipped_files} skipped" if result.skipped_files else "",
            style="bold",
        )
    console = stderr_console()
    print_table(console, table)
    console.print(f"{result.seconds:.2f}s")
    if result.conflicts:
        console.print("conflicts kept: see 'meterctl conflicts list'", style="yellow")
    if result.dead_lettered:
        console.print("dead letters kept: see 'meterctl dlq list'", style="yellow")


def ingest_command(
    paths: Annotated[list[str], typer.Argument(help="Files (.jsonl, .ndjson, .jsonl.gz, .parquet), directories, globs, or - for stdin.", show_default=False)],
    db: DbOption = DEFAULT_DB_OPTION,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 65 if any line was a conflict or dead-lettered.")] = False,
    max_future: Annotated[str, typer.Option("--max-future", metavar="DURATION", help="Reject timestamps later than ingest time plus this.")] = MAX_FUTURE_DEFAULT,
    max_age: Annotated[str | None, typer.Option("--max-age", metavar="DURATION", help="Reject timestamps older than this (default: no lower bound).")] = None,
) -> None:
    """Ingest usage-event files: validate, deduplicate, dead-letter what is bad."""
    from meterctl.events import IngestOptions

    options = IngestOptions(
        max_future=parse_duration(max_future, "--max-future"),
        max_age=parse_duration(max_age, "--max-age") if max_age else None,
    )
    with session(db, wait=wait) as s:
        if sys.stderr.isatty():
            with RichProgress() as progress:
                result = s.ingest(paths, options, progress)
        else:
            result = s.ingest(paths, options)
    if as_json:
        print_json(result_document(result))
    else:
        render_summary(result)
    refusal = result.refusal(strict)
    if refusal is not None:
        raise refusal
