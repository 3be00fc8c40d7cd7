"""The event contract's records: how a file is ingested, what became of its lines, and the
batches, dead letters and conflicts the event store keeps.

Every input line ends in exactly one place: `lines read = accepted + duplicates +
conflicts + dead-lettered` for every file (blank lines are counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from meterctl.errors import DataError, InputNotFoundError, MeterctlError, Param

DEFAULT_MAX_FUTURE = timedelta(minutes=5)
# Input is read and judged this much at a time (a file of 3.05 chunks is read as 3 slightly
# larger ones: see io.readers.LineReader).
DEFAULT_CHUNK_BYTES = 128 << 20


class ContractRules(NamedTuple):
    """The bounds a line is judged by, fixed for one ingest."""

    now: datetime  # the ingest time
    max_future: timedelta  # a timestamp later than now + this is refused
    max_age: timedelta | None  # a timestamp earlier than now - this is refused (None: no lower bound)
    # False sends every line through the full rule set instead of settling clean lines on
    # the fast path first: same outcome, slower; tests compare the two.
    fast_path: bool = True


@dataclass(frozen=True)
class IngestOptions:
    max_future: timedelta = DEFAULT_MAX_FUTURE
    max_age: timedelta | None = None
    now: datetime | None = None  # the ingest time; defaults to the wall clock at the start
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    # False sends every line through the full rule set instead of settling clean lines on
    # the fast path first: same outcome, slower; tests compare the two.
    fast_path: bool = True

    def rules(self, now: datetime) -> ContractRules:
        return ContractRules(now, self.max_future, self.max_age, self.fast_path)


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

    def refusal(self, strict: bool = False) -> MeterctlError | None:
        """What the outcome amounts to for a caller that acts on it (a cron job's exit code):
        files that could not be read and left nothing stored; with `strict`, any conflict or
        dead letter (they are stored all the same)."""
        failed = self.failed_files
        if failed:
            names = ", ".join(f.source for f in failed)
            return InputNotFoundError(f"{len(failed)} file(s) could not be ingested and left nothing in the store "
                                      f"({names}); the others were ingested. First: {failed[0].error}")
        if strict and (self.conflicts or self.dead_lettered):
            return DataError(Param("strict"), f": {self.conflicts} conflict(s) and {self.dead_lettered} dead letter(s) "
                             "(they are stored; see 'meterctl conflicts list' and 'meterctl dlq list')")
        return None


# The records below are shown as the event store keeps them; their times are text, to the
# microsecond (2026-10-05T10:00:00.000000Z), as an event's own timestamp is.


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    source: str
    format: str
    finished_at: str
    read: int
    accepted: int
    duplicates: int
    conflicts: int
    dead_lettered: int


@dataclass(frozen=True)
class StoreStatus:
    events: int
    customers: int
    event_names: tuple[tuple[str, int], ...]
    first_event_at: str | None
    last_event_at: str | None
    dead_letters: int
    conflicts: int
    batches: int
    duplicates: int
    lines_read: int
    last_ingests: tuple[BatchSummary, ...]
    # Every block of the store was read back and matched its checksum (status --verify).
    verified: bool = False


@dataclass(frozen=True)
class DeadLetter:
    dead_letter_id: int
    batch_id: int
    source: str
    line_no: int
    reason: str
    event_id: str | None
    raw: str
    created_at: str


@dataclass(frozen=True)
class Conflict:
    conflict_id: int
    event_id: str
    billed_hash: str
    billed_source: str
    billed_line_no: int
    new_hash: str
    source: str
    line_no: int
    raw: str
    detected_at: str
