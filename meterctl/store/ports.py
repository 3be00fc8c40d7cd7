"""The two ports the billing core talks to, and the records that cross them.

`EventStore` holds what was ingested: batches, events, conflicts, dead letters. It stages
and classifies input chunks (a whole file in one transaction), aggregates usage and traces
an invoice line back to its events. A second engine (ClickHouse, for the events of users
who outgrow one machine) implements this protocol; rating and invoicing only see it.

`Ledger` holds what meterctl decided: customer versions, frozen pricebook snapshots,
rating runs with their lines, invoices. It needs transactions: an invoice run reads and
writes in one.

Both are append-only except invoice drafts, which a later run may regenerate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from meterctl.credits import Grant, GrantRequest, NewEntry, WalletEntry
    from meterctl.customers import CustomerRecord, CustomerVersion
    from meterctl.events import Conflict, ContractRules, DeadLetter, StoreStatus
    from meterctl.invoices import Invoice, InvoiceChanges, LineMismatch, StoredInvoice
    from meterctl.meters import Meter
    from meterctl.pricebook.catalog import PricebookVersion
    from meterctl.rating.lines import RatedLine
    from meterctl.rating.notes import RunNotes
    from meterctl.usage import AggregateRow, OpenSessionRow, UsageQuery


# ---------------------------------------------------------------- event store


class PriorBatch(NamedTuple):
    """An ingest batch that already holds a file's content."""

    batch_id: int
    source: str


class ChunkCounts(NamedTuple):
    """What became of one chunk's lines."""

    read: int  # non-blank lines (or Parquet rows)
    blank_lines: int
    accepted: int
    duplicates: int
    conflicts: int
    dead_lettered: int


class BatchManifest(NamedTuple):
    """The row an ingest batch leaves: where the file came from and what became of it."""

    source: str  # as the user gave it, or '-'
    source_path: str | None
    format: str
    content_sha256: str
    size_bytes: int
    mtime_ns: int | None
    ingest_time: datetime
    read: int
    blank_lines: int
    accepted: int
    duplicates: int
    conflicts: int
    dead_lettered: int
    meterctl_version: str


class Batch(Protocol):
    """One file being ingested, inside its own transaction (see EventStore.new_batch)."""

    batch_id: int

    def add_lines(self, chunk: Any, rules: ContractRules) -> ChunkCounts:
        """Validate, classify and store a chunk of numbered JSONL lines (an Arrow table of
        line_no, raw and, when the chunk is valid UTF-8 throughout, txt)."""
        ...

    def add_rows(self, chunk: Any, rules: ContractRules) -> ChunkCounts:
        """The same for a chunk of Parquet rows (their row numbers as the last column)."""
        ...

    def commit(self, manifest: BatchManifest) -> None: ...

    def abandon(self) -> None:
        """Keep nothing of the file (its content turned out to be stored already)."""
        ...


class Pending(Protocol):
    """Work started in the background; `result()` waits for it."""

    def result(self) -> Any: ...

    def cancel(self) -> None: ...


class MonthWindow(NamedTuple):
    """A stretch of one customer's time that a month accounts for: a segment of a billing
    period ending in the month, or (`covered` False) a stretch of the customer's calendar
    month that no subscription covers."""

    customer_id: str
    start: datetime
    end: datetime
    covered: bool
    # Reconciliation: the last ingest batch the finalized invoice of the window's period saw;
    # its billable events ingested after it are late.
    late_after: int | None = None


class MonthQuery(NamedTuple):
    """Every stored event a month accounts for: those of the known customers in `windows`,
    and those of customer ids never imported in the UTC month [start, end) (`known` are
    the imported ids; None leaves such events out, as when some customers were chosen)."""

    start: datetime
    end: datetime
    windows: tuple[MonthWindow, ...]
    known: tuple[str, ...] | None
    meters: tuple[Meter, ...]
    ignored: tuple[str, ...]  # event names meters.yaml ignores


# What became of an event, in order of precedence: the first that applies is its fate.
EVENT_FATES = ("ignored", "no_meter", "unknown_customer", "outside_subscription", "unmeterable", "billable")


class MonthTally(NamedTuple):
    """Events of a month with one fate, window, customer, event name and set of meters."""

    fate: str  # one of EVENT_FATES
    window: int | None  # index in MonthQuery.windows (None: an unknown customer's)
    customer_id: str
    event_name: str
    meters: int  # bit i set: meter i of MonthQuery.meters selects these events
    events: int
    quantity: Decimal  # Σ of the events' own quantity (0 where they carry none)
    late_events: int  # ingested after the window's `late_after` batch
    first_at: datetime | None  # the earliest event, and its id (of unbilled events only)
    first_event_id: str | None


class IngestReadings(NamedTuple):
    """What the ingest batches record, for monitoring: totals ever, and the batches
    ingested since a time (their lines, and how late their accepted events came), by each
    batch's ingest time."""

    accepted: int  # ever
    duplicates: int
    conflicts: int
    dead_lettered: int
    recent_lines: int  # lines read by the batches committed since
    recent_duplicates: int
    recent_dead_lettered: int
    recent_events: int  # events those batches accepted
    lag_seconds: tuple[Decimal, Decimal, Decimal] | None  # ingest − timestamp: median, 99th percentile, max
    lag_sum_seconds: Decimal  # Σ of those lags
    last_ingest_at: datetime | None


class MonthIntegrity(NamedTuple):
    events: int
    repeated_ids: tuple[tuple[str, int], ...]  # (event_id, copies) of ids stored more than once
    duplicates: int  # identical resends of events on the month's UTC days
    conflicts: int  # resends with another payload of these events, kept aside


class LineEventQuery(NamedTuple):
    """The events a meter selects for one invoice line: the customer, the line's window and
    dimension values; `as_of_batch` limits them to those ingested by then."""

    meter: Meter
    customer_id: str
    start: datetime
    end: datetime
    dimensions: Mapping[str, str | None]
    as_of_batch: int | None


@dataclass(frozen=True)
class TracedEvent:
    event_id: str
    timestamp: str  # as stored, to the microsecond: 2026-10-05T10:00:00.000000Z
    event_name: str
    quantity: str | None
    properties: Any
    source: str
    source_line: int
    meterable: bool


class EventStore(Protocol):
    # ingest
    def prepare_ingest(self) -> None:
        """Ready the store for new batches (checks that must hold before any chunk)."""
        ...

    def batch_with_content(self, content_sha256: str) -> PriorBatch | None: ...

    def unchanged_since_ingest(self, source_path: str, size_bytes: int | None, mtime_ns: int | None) -> bool:
        """Was a batch ingested from this very path with this size and mtime?"""
        ...

    def new_batch(self, source: str) -> AbstractContextManager[Batch]:
        """A batch in its own transaction: committed by `Batch.commit`, rolled back on any
        failure or when the block ends without a commit. All or nothing of a file."""
        ...

    def last_batch(self) -> int:
        """The last ingest batch stored (0 when none): the events a rating run saw."""
        ...

    # usage and lineage
    def knows_time_zone(self, tz: str) -> bool: ...

    def aggregate(self, query: UsageQuery) -> tuple[list[AggregateRow], list[OpenSessionRow]]:
        """Usage rows ordered by meter (as asked), customer, window and dimensions; and the
        duration meters' open sessions."""
        ...

    def tally_month(self, query: MonthQuery) -> Pending:
        """The month's events as MonthTally rows, counted in the background (the store may
        overlap it with the caller's work) in one pass; results see committed data only."""
        ...

    def ingest_readings(self, since: datetime, until: datetime) -> IngestReadings:
        """As of `until` (batches ingested later are not counted): from the batch records, and
        the events of the batches ingested since `since` only."""
        ...

    def month_integrity(self, start: datetime, end: datetime, month: tuple[date, date]) -> MonthIntegrity:
        """Events with a timestamp in [start, end): ids stored more than once, and the
        conflicts ingest set aside for them; the identical resends of events on the UTC
        days [month)."""
        ...

    def line_events(self, query: LineEventQuery, *, limit: int | None, with_events: bool
                    ) -> tuple[int, int, tuple[TracedEvent, ...]]:
        """(events selected as of the batch, events selected now, the first `limit` events as of the batch)."""
        ...

    def count_later_events(self, customer_id: str, after_batch: int, event_names: Sequence[str],
                           start: datetime, end: datetime) -> int:
        """Events of the customer ingested after a batch, with these names, in [start, end)."""
        ...

    def customers_with_events(self, customer_ids: Sequence[str]) -> set[str]: ...

    # inspection
    def status(self, last: int) -> StoreStatus: ...

    def dead_letters(self, *, limit: int | None, batch_id: int | None, reason_contains: str | None
                     ) -> tuple[DeadLetter, ...]: ...

    def dead_letter(self, dead_letter_id: int) -> DeadLetter: ...

    def conflicts(self, *, limit: int | None, event_id: str | None) -> tuple[Conflict, ...]: ...


# ---------------------------------------------------------------- ledger


class FrozenVersion(NamedTuple):
    """A pricebook version that has rated usage: its content may no longer change."""

    plan: str
    version: int
    content_hash: str
    source_path: str
    frozen_at: datetime
    first_run_id: int


class StoredRun(NamedTuple):
    """A recorded rating run as invoicing and audit read it back."""

    run_id: int
    period: str
    run_hash: str
    line_count: int
    meters: tuple[dict[str, Any], ...]  # the meter definitions the run used, as recorded
    as_of_batch: int
    notes: RunNotes | None


class RunRecord(NamedTuple):
    """A rating run to record."""

    period: str
    customers: tuple[str, ...] | None  # the customer filter, or None for everyone
    lines: Sequence[RatedLine]
    run_hash: str
    pricebooks: Sequence[PricebookVersion]  # the versions it priced with (frozen by it)
    meters: Sequence[Meter]
    as_of_batch: int
    inputs_sha256: str | None
    notes: RunNotes


class InvoiceFilter(NamedTuple):
    period_start: date | None = None  # billed in [start, end): the month of --period
    period_end: date | None = None
    customers: tuple[str, ...] | None = None
    revision_status: str | None = None  # stored status: draft or finalized
    current_only: bool = False


class Ledger(Protocol):
    def transaction(self) -> AbstractContextManager[Any]:
        """Reads and writes inside it see one state and land together, or not at all."""
        ...

    # customers
    def import_customers(self, records: Sequence[CustomerRecord], source: str) -> tuple[int, int, tuple[str, ...]]:
        """Add a version of each new or changed customer: (added, changed, stored customers not among `records`)."""
        ...

    def latest_customers(self) -> tuple[CustomerVersion, ...]: ...

    def customer_history(self, customer_id: str) -> tuple[CustomerVersion, ...]:
        """Every version, newest first (empty when the customer was never imported)."""
        ...

    def known_customers(self, customer_ids: Sequence[str]) -> set[str]: ...

    # pricebooks
    def frozen_versions(self) -> dict[str, FrozenVersion]: ...

    def pricebook_snapshot(self, plan: str, version: int) -> tuple[str, str, str] | None:
        """(source text, source path, content hash) of a frozen version."""
        ...

    # rating runs
    def record_run(self, run: RunRecord) -> tuple[int, tuple[str, ...]]:
        """Record a run, freezing the versions it used: (run id, refs frozen by it)."""
        ...

    def run_from_inputs(self, period: str, customers: Sequence[str] | None, inputs_sha256: str) -> StoredRun | None:
        """The latest run recorded from these very inputs."""
        ...

    def identical_run(self, period: str, customers: Sequence[str] | None, run_hash: str, line_count: int,
                      pricebooks: Sequence[str], meters: Sequence[Meter], as_of_batch: int) -> int | None: ...

    def run(self, run_id: int) -> StoredRun | None: ...

    def run_lines(self, run_id: int) -> list[RatedLine]: ...

    def run_pricebooks(self, run_id: int) -> list[tuple[str, int]]: ...

    def last_successes(self) -> dict[str, datetime]:
        """When each command last wrote what it is for: rate (a run), invoice (an invoice
        revision), finalize (a number), and those recorded with `record_success`."""
        ...

    def record_success(self, command: str, at: datetime) -> None:
        """Note that `command` (one that leaves no other record, such as `run`) did its work."""
        ...

    # invoices
    def has_invoices(self) -> bool: ...

    def invoice_count(self) -> int: ...

    def stored_invoices(self, customer_ids: Sequence[str]) -> dict[str, list[StoredInvoice]]: ...

    def last_invoice_number(self, year: int) -> int: ...

    def invoice_sums(self, invoice_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Per invoice: Σ its lines' amounts and Σ the credits its lines took, in minor units."""
        ...

    def lines_against_runs(self, invoice_ids: Sequence[str], limit: int) -> tuple[int, int, tuple[LineMismatch, ...]]:
        """Each invoice's lines against its rating run's lines for the customer and period:
        (rated lines, invoice lines equal to theirs, the first `limit` that are not)."""
        ...

    def drafts_billed_in(self, start: date, end: date, customers: Sequence[str] | None) -> list[tuple[str, str, date]]:
        """(invoice_id, customer_id, period_start) of drafts whose billed_until is in (start, end]."""
        ...

    def apply_invoice_changes(self, changes: InvoiceChanges, run_id: int, now: datetime) -> None: ...

    def invoices(self, where: InvoiceFilter) -> tuple[Invoice, ...]: ...

    def invoice(self, reference: str) -> Invoice | None: ...

    # wallets
    def wallet_grants(self, customer_ids: Sequence[str] | None = None) -> tuple[Grant, ...]:
        """Grants (of these customers), in the order they were made, each with when it was voided."""
        ...

    def wallet_grant(self, grant_id: str) -> Grant | None: ...

    def wallet_entries(self, customer_ids: Sequence[str] | None = None) -> tuple[WalletEntry, ...]:
        """Ledger entries (of these customers), by when they take effect, then as written."""
        ...

    def record_grant(self, request: GrantRequest, request_sha256: str, now: datetime) -> tuple[Grant, bool]:
        """Write a grant and its entry, or return the one made with the same idempotency key and
        request (created: False); the same key with another request is a DataError."""
        ...

    def add_wallet_entries(self, entries: Sequence[NewEntry], now: datetime) -> None: ...

    def with_lines(self, invoices: Sequence[Invoice]) -> tuple[Invoice, ...]: ...


class Store(Protocol):
    path: Path
    events: EventStore
    ledger: Ledger

    def verify(self) -> None:
        """Read back everything stored; StoreDamagedError when any of it does not match
        what was written."""
        ...

    def close(self) -> None: ...

