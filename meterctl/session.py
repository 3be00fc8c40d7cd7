"""`meterctl.Session`: the library's front door, and what every command calls.

    with meterctl.Session(db="meterctl.duckdb", config="pricebooks") as s:
        s.import_customers("customers.yaml")
        s.ingest(["events/"])
        run = s.invoice(period="2026-10")
        for invoice in run.outcomes: ...

A session opens the store and reads the configuration directory once, when a method first
needs them: a method that finds a problem in its input first (a malformed file, a bad
pricebook) has written nothing and created no store. Every method returns a frozen result
and raises errors from meterctl.errors, each with its exit code; none prints.

`read_only=True` opens an existing store without taking it for writing (it is never
created then); reading methods need no more.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from meterctl.errors import (
    DataError,
    InputNotFoundError,
    MeterctlError,
    NotFoundError,
    OutputError,
    Param,
    UsageError,
)
from meterctl.instants import local_instant, parse_duration, time_zone
from meterctl.settings import ENV_CONFIG_DIR, config_dir, default_db_path
from meterctl.store import faults, open_store

if TYPE_CHECKING:
    from meterctl.audit import Explanation, Verification
    from meterctl.billing_terms import Tax
    from meterctl.credits import Balance
    from meterctl.customers import BillingPeriods, CustomerVersion, ImportResult
    from meterctl.customers_file import CustomerModel
    from meterctl.cycles import Cycle
    from meterctl.entitlements import CheckAnswer, EntitlementState
    from meterctl.entitlements_push import PushResult
    from meterctl.events import Conflict, DeadLetter, IngestOptions, IngestResult, StoreStatus
    from meterctl.export import ExportResult
    from meterctl.export.events import EventsExport
    from meterctl.invoices import Invoice
    from meterctl.invoicing import InvoiceRun
    from meterctl.meters import Meter, MetersFile
    from meterctl.monitoring import Health, Metrics
    from meterctl.pricebook import Catalog, PricebookVersion
    from meterctl.pricebook.catalog import ConfigSummary, PricebookListing
    from meterctl.pricebook.diff import PricebookDiff
    from meterctl.progress import Progress
    from meterctl.rating import RatingResult
    from meterctl.reconcile import Reconciliation
    from meterctl.simulate import SimulationResult
    from meterctl.store.ports import FrozenVersion, Ledger, Store
    from meterctl.tick import Tick, TickOptions
    from meterctl.usage import UsageResult
    from meterctl.wallets import GrantOutcome, LedgerLine, VoidOutcome
    from meterctl.wallets_file import GrantImport

# The heavy modules (pydantic models, pyarrow, rating) are imported by the methods that need
# them: a cron job's `meterctl ingest` should not pay for rating at start-up.


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[Concatenate[Session, P], R]) -> Callable[Concatenate[Session, P], R]:
    """The method with the store's failures (locked, disk full, damaged) as meterctl's errors."""

    @functools.wraps(method)
    def guarded(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with faults(self.db, read_only=self.read_only):
            return method(self, *args, **kwargs)

    return guarded


def _names(given: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Ids given as one or several; none (or an empty list) means all."""
    if isinstance(given, str):
        return (given,)
    return tuple(given) if given else None


def _day(given: date | str, name: str) -> date:
    if isinstance(given, date):
        return given
    try:
        return date.fromisoformat(given)
    except ValueError:
        raise UsageError(Param(name), f": '{given}' is not a date such as 2026-10-01") from None


def _cycle(given: Cycle | str | None) -> Cycle | None:
    from meterctl.cycles import cycle_named

    return None if given is None else cycle_named(given)


class Session:
    def __init__(self, db: Path | str | None = None, config: Path | str | None = None, *, wait: float = 0.0,
                 read_only: bool = False) -> None:
        self.db = Path(db) if db is not None else default_db_path()
        self.config_dir = config_dir(Path(config) if config is not None else None)
        # Named by the caller (or METERCTL_PRICEBOOKS), not the ./pricebooks default.
        self._config_named = config is not None or bool(os.environ.get(ENV_CONFIG_DIR))
        self.wait = wait
        self.read_only = read_only
        self._store: Store | None = None
        self._closed = False
        self._meter_file: MetersFile | None = None
        self._taxes: dict[str, Tax] | None = None
        self._catalog: Catalog | None = None

    # ------------------------------------------------------------ lifetime

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.close()
            return
        try:
            self.close()
        except Exception:  # the failure on its way out is what to report, not this one
            pass

    def close(self) -> None:
        """Let go of the store (and its lock); the session cannot be used after."""
        self._closed = True
        if self._store is not None:
            store, self._store = self._store, None
            with faults(self.db, read_only=self.read_only):
                store.close()

    @property
    def store(self) -> Store:
        if self._closed:
            raise ValueError("this meterctl session is closed")
        if self._store is None:
            self._store = open_store(self.db, read_only=self.read_only, wait=self.wait)
        return self._store

    def _for_writing(self, what: str) -> Store:
        """The store, for a method that writes to it."""
        if self.read_only:
            raise OutputError(f"{self.db}: this session opened the store read-only (read_only=True); "
                              f"open it for writing to {what}")
        return self.store

    # ------------------------------------------------------------ configuration

    def meters(self) -> tuple[Meter, ...]:
        """The meters of meters.yaml in the configuration directory."""
        return self._meters_file().meters

    def ignored_events(self) -> tuple[str, ...]:
        """The event names meters.yaml declares as never billed (`ignore_events`)."""
        return self._meters_file().ignore_events

    def taxes(self) -> dict[str, Tax]:
        """taxes.yaml of the configuration directory, by code (empty without one)."""
        if self._taxes is None:
            from meterctl.billing_terms import load_taxes

            self._taxes = load_taxes(self.config_dir)
        return self._taxes

    def _payment_terms(self) -> int:
        """The seller's payment terms in days (seller.yaml; 30 without one)."""
        from meterctl.billing_terms import load_seller

        seller = load_seller(self.config_dir)
        return seller.payment_terms_days if seller is not None else 30

    def _meters_file(self) -> MetersFile:
        if self._meter_file is None:
            from meterctl.meters import load_meter_file

            self._meter_file = load_meter_file(self.config_dir)
        return self._meter_file

    def catalog(self) -> Catalog:
        """Every pricebook version of the configuration directory."""
        if self._catalog is None:
            from meterctl.pricebook import load_catalog

            self._catalog = load_catalog(self.config_dir, self.meters())
        return self._catalog

    def configuration(self) -> tuple[tuple[Meter, ...], Catalog]:
        """Meters and pricebooks, every problem of both at once (exit 78)."""
        if self._meter_file is None or self._catalog is None:
            from meterctl.pricebook import load_configuration

            self._meter_file, self._catalog = load_configuration(self.config_dir)
        return self._meter_file.meters, self._catalog

    def validate_config(self) -> ConfigSummary:
        """Meters, pricebooks, seller.yaml and taxes.yaml: every problem of all at once (exit 78)."""
        from meterctl.billing_terms import load_seller, load_taxes
        from meterctl.config_yaml import ConfigProblems, Problem
        from meterctl.pricebook.catalog import ConfigSummary

        problems: list[Problem] = []
        found: dict[str, Any] = {}
        for name, load in (("configuration", self.configuration), ("seller", lambda: load_seller(self.config_dir)),
                           ("taxes", lambda: load_taxes(self.config_dir))):
            try:
                found[name] = load()
            except ConfigProblems as error:
                problems.extend(error.problems)
        if problems:
            raise ConfigProblems(problems)
        meters, catalog = found["configuration"]
        return ConfigSummary(str(self.config_dir), tuple(m.name for m in meters), tuple(v.ref for v in catalog.versions),
                             found["seller"] is not None, tuple(sorted(found["taxes"])))

    def _frozen(self) -> dict[str, FrozenVersion]:
        """Frozen versions from the store, or none when there is no store yet."""
        if self._store is None and not self.db.exists():
            return {}
        return self.store.ledger.frozen_versions()

    @_guarded
    def validate_pricebooks(self) -> Catalog:
        """Every pricebook checked, and that frozen versions were not edited (exit 78)."""
        from meterctl.config_yaml import ConfigProblems
        from meterctl.pricebook import frozen_problems

        _, catalog = self.configuration()
        problems = frozen_problems(catalog, self._frozen())
        if problems:
            raise ConfigProblems(problems)
        return catalog

    @_guarded
    def pricebooks(self) -> tuple[PricebookListing, ...]:
        from meterctl.pricebook.catalog import PricebookListing

        _, catalog = self.configuration()
        frozen = self._frozen()
        return tuple(
            PricebookListing(v.ref, v.plan, v.version, v.book.effective_from, v.book.currency, str(v.book.billing_cycle),
                             v.path, v.content_hash, v.ref in frozen,
                             v.ref in frozen and frozen[v.ref].content_hash != v.content_hash)
            for v in catalog.versions)

    @_guarded
    def pricebook(self, ref: str) -> PricebookVersion:
        """A plan's version (`pro@2`) or its latest (`pro`); refused (exit 78) when it was edited
        after it rated usage: what the file says now is not what was billed."""
        _, catalog = self.configuration()
        chosen = self._resolve(catalog, ref)
        self._refuse_edited(catalog, [chosen])
        return chosen

    @_guarded
    def diff_pricebooks(self, before: str, after: str) -> PricebookDiff:
        from meterctl.pricebook.diff import diff

        _, catalog = self.configuration()
        a, b = self._resolve(catalog, before), self._resolve(catalog, after)
        self._refuse_edited(catalog, [a, b])
        return diff(a, b)

    @staticmethod
    def _resolve(catalog: Catalog, ref: str) -> PricebookVersion:
        from meterctl.pricebook import parse_ref

        try:
            plan, version = parse_ref(ref)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return catalog.get(plan, version)

    def _refuse_edited(self, catalog: Catalog, chosen: Sequence[PricebookVersion]) -> None:
        from meterctl.config_yaml import ConfigProblems
        from meterctl.pricebook import frozen_problems

        frozen = self._frozen()
        problems = frozen_problems(catalog, {v.ref: frozen[v.ref] for v in chosen if v.ref in frozen})
        if problems:
            raise ConfigProblems(problems)

    # ------------------------------------------------------------ customers

    @_guarded
    def import_customers(self, path: Path | str) -> ImportResult:
        """Import customers (YAML or CSV); unchanged ones are left alone, changed ones get a new
        version. Subscriptions that rating would refuse are named in `plan_notes`: the
        customers are imported all the same, since pricebooks may be published later."""
        from meterctl.customers_file import import_customers, load_customers

        path = Path(path)
        loaded = load_customers(path)  # a bad file stops here, before the store is opened
        result = import_customers(self._for_writing("import customers").ledger, path, loaded)
        return dataclasses.replace(result, plan_notes=self._plan_notes(loaded))

    def _plan_notes(self, loaded: Sequence[CustomerModel]) -> tuple[str, ...]:
        """What rating would refuse in the imported subscriptions, when the configuration
        directory can tell: checked against ./pricebooks only when it exists, against a
        directory named by the caller always."""
        from meterctl.customers_file import plan_problems
        from meterctl.errors import ConfigError

        if not self._config_named and not self.config_dir.is_dir():
            return ()
        try:
            _, catalog = self.configuration()
        except ConfigError as error:
            lines = str(error).splitlines()
            more = f" (and {len(lines) - 1} more: 'meterctl config validate' lists them)" if len(lines) > 1 else ""
            return (f"plans not checked: {lines[0]}{more}",)
        notes = plan_problems(loaded, catalog)
        taxed = {customer.id: customer.taxes for customer in loaded if customer.taxes}
        if taxed:
            from meterctl.billing_terms import load_taxes, unknown_tax_codes

            try:
                taxes = load_taxes(self.config_dir)
            except ConfigError as error:
                return (*notes, f"taxes not checked: {str(error).splitlines()[0]}")
            notes += tuple(f"{p.key}: {p.message}" for p in unknown_tax_codes(taxed, taxes, "customers"))
        return notes

    @_guarded
    def customers(self) -> tuple[CustomerVersion, ...]:
        """Every customer as last imported."""
        return self.store.ledger.latest_customers()

    @_guarded
    def customer(self, customer_id: str) -> tuple[CustomerVersion, ...]:
        """One customer's versions, newest first."""
        from meterctl.customers import history

        return history(self.store.ledger.customer_history(customer_id), customer_id)

    @_guarded
    def periods(self, customer_id: str, start: date | str, end: date | str,
                cycle: Cycle | str | None = None) -> BillingPeriods:
        """A customer's billing periods overlapping local dates [start, end), split into
        segments where the plan changes; the cycle is its plans' unless given."""
        from meterctl.customers import BillingPeriods, PeriodSegment, billing_segments, history
        from meterctl.rating.plan import customer_cycle, full_period_days

        start, end = _day(start, "start"), _day(end, "end")
        if start >= end:
            raise UsageError(Param("start"), " must be before ", Param("end"))
        latest = history(self.store.ledger.customer_history(customer_id), customer_id)[0]
        given = _cycle(cycle)
        chosen = given if given is not None else customer_cycle(latest, self.catalog())
        try:
            found = billing_segments([latest], cycle=chosen, start=start, end=end)
        except ValueError as error:  # periods that would run past the year 9999
            raise UsageError(Param("start"), "/", Param("end"), f": {error}") from None
        return BillingPeriods(customer_id, str(chosen), tuple(
            PeriodSegment(cid, s.period.start, s.period.end, s.period.tz, s.plan, s.start, s.end, s.start_at, s.end_at,
                          s.days, full_period_days(s, chosen, latest.billing))
            for cid, s in found))

    # ------------------------------------------------------------ events

    @_guarded
    def ingest(self, paths: str | Path | Sequence[str | Path], options: IngestOptions | None = None,
               progress: Progress | None = None) -> IngestResult:
        """Ingest files, directories, globs or '-' (standard input), each file in one
        transaction; the result says what became of every line."""
        from meterctl.events import IngestOptions
        from meterctl.ingest import ingest
        from meterctl.io.sources import resolve_sources

        given = [paths] if isinstance(paths, str | Path) else paths
        sources = resolve_sources([str(p) for p in given])  # a missing input stops the run before any write
        return ingest(self._for_writing("ingest").events, sources, options or IngestOptions(), progress)

    @_guarded
    def status(self, last: int = 5, *, verify: bool = False) -> StoreStatus:
        """What the store holds; with `verify`, every block of it is read back first and
        checked against its checksum (StoreDamagedError, exit 66, when one does not match)."""
        if not verify:
            return self.store.events.status(last)
        self.store.verify()
        return dataclasses.replace(self.store.events.status(last), verified=True)

    @_guarded
    def dead_letters(self, *, limit: int | None = 100, batch_id: int | None = None,
                     reason_contains: str | None = None) -> tuple[DeadLetter, ...]:
        return self.store.events.dead_letters(limit=limit, batch_id=batch_id, reason_contains=reason_contains)

    @_guarded
    def dead_letter(self, dead_letter_id: int) -> DeadLetter:
        return self.store.events.dead_letter(dead_letter_id)

    @_guarded
    def conflicts(self, *, limit: int | None = 100, event_id: str | None = None) -> tuple[Conflict, ...]:
        return self.store.events.conflicts(limit=limit, event_id=event_id)

    @_guarded
    def usage(
        self,
        *,
        window: str = "day",
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        tz: str = "UTC",
        customers: str | Sequence[str] | None = None,
        meters: str | Sequence[str] | None = None,
        cycle: Cycle | str | None = None,
        output: Path | str | None = None,
        format: str | None = None,
    ) -> UsageResult:
        """Usage per customer × meter × window in [start, end) (default: this month in `tz`);
        a date is local midnight in `tz`, and so is a date-time without an offset.

        Window `period` gives each customer's billing periods overlapping the range, split at
        plan changes (on `cycle`, or the billing cycle of the customer's plans). With
        `output`, the rows are also written there as CSV or Parquet (`format`, or the suffix).
        """
        from meterctl.customers import billing_segments, select_customers
        from meterctl.metering import usage
        from meterctl.usage import BillingWindow

        if format is not None and format not in ("csv", "parquet"):
            raise UsageError(Param("format"), f" must be csv or parquet, not '{format}'")
        zone = time_zone(tz)
        month = datetime.now(zone).date().replace(day=1)
        begin = local_instant(start if start is not None else month, zone, "start")
        finish = local_instant(end if end is not None else (month + timedelta(days=32)).replace(day=1), zone, "end")
        customers, meters, cycle = _names(customers), _names(meters), _cycle(cycle)
        everything = self.meters()
        chosen = everything
        if meters:
            unknown = sorted(set(meters) - {m.name for m in everything})
            if unknown:
                raise UsageError(Param("meter"), f": unknown meter(s) {', '.join(unknown)} (see meters.yaml)")
            chosen = tuple(m for m in everything if m.name in meters)
        events, ledger = self.store.events, self.store.ledger
        if customers:
            # An id that is neither imported nor in any event is a typo, not a customer without usage.
            missing = sorted(set(customers) - events.customers_with_events(customers) - ledger.known_customers(customers))
            if missing:
                raise NotFoundError(Param("customer"), f": no customer or event has the id(s) {', '.join(missing)}")
        periods = None
        if window == "period":
            from meterctl.rating.plan import customer_cycle

            # Whole billing periods of each customer that overlap the range, split at plan changes.
            catalog = self.catalog() if cycle is None else None
            try:
                found = billing_segments(
                    select_customers(ledger.latest_customers(), customers),
                    cycle=cycle if cycle is not None else (lambda c: customer_cycle(c, catalog)),  # type: ignore[arg-type]
                    start=begin.date() - timedelta(days=1), end=finish.date() + timedelta(days=1))
            except (OverflowError, ValueError) as error:  # periods before the year 1 or past 9999
                raise UsageError(Param("start"), "/", Param("end"), f": {error}") from None
            periods = [BillingWindow(cid, s.start_at, s.end_at) for cid, s in found
                       if s.start_at < finish and s.end_at > begin]
            if periods:
                begin, finish = min(p.start for p in periods), max(p.end for p in periods)
        result = usage(events, chosen, window=window, start=begin, end=finish, tz=tz, customers=customers,
                       periods=periods)
        if output is not None:
            self.write_usage(result, output, format)
        return result

    @staticmethod
    def write_usage(result: UsageResult, output: Path | str, format: str | None = None) -> None:
        """Usage rows written as CSV or Parquet (`format`, or the file's suffix), atomically;
        the store is not involved."""
        from meterctl.export.usage import write_usage

        if format is not None and format not in ("csv", "parquet"):
            raise UsageError(Param("format"), f" must be csv or parquet, not '{format}'")
        write_usage(result, Path(output), format)

    # ------------------------------------------------------------ rating and invoices

    @_guarded
    def rate(self, period: str, customers: str | Sequence[str] | None = None, *, reuse: bool = False) -> RatingResult:
        """Rate the billing periods that end in month `period` (YYYY-MM) and record the run
        (with `reuse`, none when a recorded run already holds these very lines)."""
        from meterctl.rating import rate

        meters, catalog = self.configuration()
        store = self._for_writing("record a rating run")
        return rate(store.events, store.ledger, catalog, meters, period, customers=_names(customers),
                    ignored=self.ignored_events(), reuse=reuse)

    @_guarded
    def simulate(self, pricebook: Path | str, period: str, customers: str | Sequence[str] | None = None,
                 output: Path | str | None = None) -> SimulationResult:
        """What a candidate pricebook file would have billed for a past month, writing nothing
        to the store (with `output`, the comparison is written there as CSV)."""
        from meterctl.pricebook import load_pricebook
        from meterctl.simulate import simulate

        meters, catalog = self.configuration()
        candidate = load_pricebook(Path(pricebook), meters)
        result = simulate(self.store.events, self.store.ledger, catalog, meters, candidate, period,
                          customers=_names(customers))
        if output is not None:
            from meterctl.export.simulation import simulation_csv
            from meterctl.io.files import write_bytes_atomically

            write_bytes_atomically(Path(output), simulation_csv(result))
        return result

    @_guarded
    def invoice(self, period: str, customers: str | Sequence[str] | None = None, *, finalize: bool = False,
                now: datetime | None = None) -> InvoiceRun:
        """Build (or rebuild) the invoices of the billing periods ending in month `period`; with
        `finalize`, number them and make them immutable."""
        from meterctl.invoicing import build_invoices

        meters, catalog = self.configuration()
        store = self._for_writing("write invoices")
        return build_invoices(store.events, store.ledger, catalog, meters, period,
                              customers=_names(customers), finalize=finalize, now=now, ignored=self.ignored_events(),
                              taxes=self.taxes(), payment_terms_days=self._payment_terms())

    @_guarded
    def reconcile(self, period: str, customers: str | Sequence[str] | None = None, *,
                  now: datetime | None = None) -> Reconciliation:
        """Account for every event of month `period` and check its invoices (see
        meterctl.reconcile); writes nothing. `refusal()` says whether it reconciles."""
        from meterctl.reconcile import reconcile

        meters, catalog = self.configuration()
        store = self.store
        return reconcile(store.events, store.ledger, catalog, meters, period, customers=_names(customers),
                         ignored=self.ignored_events(), now=now, taxes=self.taxes())

    def _ledger_with_invoices(self) -> Ledger:
        ledger = self.store.ledger
        if not ledger.has_invoices():
            raise DataError(NO_INVOICES_YET)
        return ledger

    @_guarded
    def invoices(self, *, period: str | None = None, customers: str | Sequence[str] | None = None,
                 status: str | None = None) -> tuple[Invoice, ...]:
        """Invoices and their revisions (draft, finalized or superseded)."""
        from meterctl.invoicing import list_invoices

        if status not in (None, "draft", "finalized", "superseded"):
            raise UsageError(Param("status"), f" must be draft, finalized or superseded, not '{status}'")
        ledger = self.store.ledger
        if not ledger.has_invoices():
            return ()
        return list_invoices(ledger, period=period, customers=_names(customers), status=status)

    @_guarded
    def get_invoice(self, reference: str) -> Invoice:
        """An invoice by id (cus_1-20261001-r1) or number (INV-2026-000001), with its lines."""
        from meterctl.invoicing import get_invoice

        return get_invoice(self._ledger_with_invoices(), reference)

    @_guarded
    def export(self, format: str, output: Path | str, *, period: str | None = None,
               customers: str | Sequence[str] | None = None, all_revisions: bool = False,
               status: str | None = None) -> ExportResult:
        """Write invoices as json, csv, parquet or html (one page each into a directory),
        atomically and byte for byte reproducibly; the latest revision of each period unless
        `all_revisions`, or the latest of `status` (draft or finalized)."""
        from meterctl.export import FORMATS, export
        from meterctl.invoicing import list_invoices

        if format not in FORMATS:
            raise UsageError(Param("format"), f" must be one of {', '.join(FORMATS)}, not '{format}'")
        ledger = self._ledger_with_invoices()
        if status not in (None, "draft", "finalized"):
            raise UsageError(Param("status"), f" must be draft or finalized, not '{status}'")
        customers = _names(customers)
        invoices = list_invoices(ledger, period=period, customers=customers, current_only=not all_revisions,
                                 with_lines=True, revision_status=status)
        if not invoices:
            if not ledger.invoice_count():
                raise DataError(NO_INVOICES_YET)
            chosen: list[str | Param] = []
            for name, value in (("period", period), ("status", status)):
                if value:
                    chosen += [" ", Param(name), f" {value}"]
            if customers:
                chosen += [" ", Param("customer"), " " + " ".join(customers)]
            raise DataError("no invoices match", *chosen, " (see 'meterctl invoice list')")
        return export(invoices, format, output)

    @_guarded
    def verify(self, reference: str) -> Verification:
        """Derive an invoice again from the events its rating saw and the frozen pricebook
        snapshots: identical, or the differences."""
        from meterctl.audit import verify

        ledger = self._ledger_with_invoices()
        return verify(self.store.events, ledger, reference)

    @_guarded
    def explain(self, reference: str, *, line: int | None = None, events: bool = False,
                limit: int | None = 1000) -> Explanation:
        """An invoice's lines traced back: rated record, usage window and meter, and (with
        `events`) the first `limit` events of each, with the file and line they came from."""
        from meterctl.audit import explain

        ledger = self._ledger_with_invoices()
        return explain(self.store.events, ledger, reference, line_no=line, with_events=events, limit=limit)

    @_guarded
    def export_events(self, reference: str, output: Path | str, *, line: int | None = None) -> EventsExport:
        """Every event behind an invoice's lines (or one line) as JSONL, written atomically."""
        from meterctl.audit import explain
        from meterctl.export.events import EventsExport, events_jsonl
        from meterctl.io.files import write_bytes_atomically

        ledger = self._ledger_with_invoices()
        explanation = explain(self.store.events, ledger, reference, line_no=line, with_events=True, limit=None)
        data, count = events_jsonl(explanation)
        write_bytes_atomically(Path(output), data)
        return EventsExport(str(output), count)

    # ------------------------------------------------------------ wallets

    def _customer_latest(self, customer_id: str) -> CustomerVersion | None:
        history = self.store.ledger.customer_history(customer_id)
        return history[0] if history else None

    def _meter_names(self) -> tuple[str, ...] | None:
        """The meters a grant may name, when the configuration directory is there to tell."""
        if not self._config_named and not self.config_dir.is_dir():
            return None
        return tuple(m.name for m in self.meters())

    @_guarded
    def grant(self, customer_id: str, *, amount: str | Decimal | None = None, credits: str | Decimal | None = None,
              rate: str | Decimal | None = None, currency: str | None = None, name: str | None = None,
              priority: int | None = None, effective: str | datetime | None = None,
              expires: str | datetime | None = None, applies_to: Sequence[str] = (), reason: str | None = None,
              key: str | None = None, now: datetime | None = None) -> GrantOutcome:
        """Add money to a customer's wallet: `amount`, or `credits` × `rate` (money per credit).
        A time is RFC 3339, or a date (midnight in the customer's time zone); `effective`
        defaults to now. With `key`, asking again for the same grant returns the first one."""
        from meterctl.wallets import GrantAsked, make_grant

        asked = GrantAsked(customer_id, amount, credits, rate, currency, name, priority, effective, expires,
                           tuple(applies_to), reason, key)
        ledger = self._for_writing("grant credits").ledger
        return make_grant(ledger, asked, self._customer_latest(customer_id), self._meter_names(), _now(now))

    @_guarded
    def import_grants(self, path: Path | str, now: datetime | None = None) -> GrantImport:
        """Grants from a YAML or CSV file, each with its idempotency key: importing the file
        again grants nothing more. Checked whole first; written all together or not at all."""
        from meterctl.wallets_file import import_grants

        path = Path(path)
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file")
        ledger = self._for_writing("import grants").ledger
        customers = {c.customer_id: c for c in ledger.latest_customers()}
        return import_grants(ledger, path, customers, self._meter_names(), _now(now))

    @_guarded
    def void_grant(self, grant_id: str, *, at: str | datetime | None = None, now: datetime | None = None) -> VoidOutcome:
        """What remains of a grant is no longer available from `at` (default now)."""
        from meterctl.wallets import void_grant

        ledger = self._for_writing("void a grant").ledger
        found = ledger.wallet_grant(grant_id)
        customer = self._customer_latest(found.customer_id) if found else None
        return void_grant(ledger, grant_id, at, customer.timezone if customer else None, _now(now))

    @_guarded
    def wallet_balance(self, customers: str | Sequence[str] | None = None,
                       at: str | datetime | None = None) -> tuple[Balance, ...]:
        """Each customer's wallet at `at` (default now): the available balance and every grant."""
        from meterctl.customers import select_customers
        from meterctl.wallets import balances

        chosen = select_customers(self.store.ledger.latest_customers(), _names(customers))
        zone = time_zone(chosen[0].timezone if len(chosen) == 1 else "UTC")
        when = _now(None) if at is None else local_instant(at, zone, "at")
        found = balances(self.store.ledger, chosen, when)
        return self._with_ongoing(found, chosen)

    def _with_ongoing(self, found: Sequence[Balance], customers: Sequence[CustomerVersion]) -> tuple[Balance, ...]:
        """The balances with the ongoing one: each customer's billing period open at its time,
        rated from its events so far (those customers', those periods': not the history), one
        pricing per month for every customer whose open period ends in it."""
        from meterctl.credits import PayableLine
        from meterctl.customers import billing_segments
        from meterctl.pricing import minor_units
        from meterctl.rating.month import price_month
        from meterctl.rating.plan import customer_cycle
        from meterctl.wallets import with_ongoing

        open_periods: dict[str, tuple[date, date]] = {}
        by_month: dict[str, list[str]] = {}
        try:
            meters, catalog = self.configuration()
            for balance, customer in zip(found, customers, strict=True):
                if not any(g.status == "active" for g in balance.grants):
                    continue
                day = balance.at.astimezone(time_zone(customer.timezone)).date()
                try:
                    segments = billing_segments([customer], cycle=customer_cycle(customer, catalog), start=day,
                                                end=day + timedelta(days=1))
                except (MeterctlError, ValueError):
                    continue  # a plan without a pricebook, periods past the year 9999: nothing to rate
                if segments:
                    period = segments[0][1].period
                    open_periods[customer.customer_id] = (period.start, period.end)
                    by_month.setdefault((period.end - timedelta(days=1)).strftime("%Y-%m"), []).append(
                        customer.customer_id)
            lines: dict[str, list[PayableLine]] = {}
            for month, ids in sorted(by_month.items()):
                priced = price_month(self.store.events, self.store.ledger, catalog, meters, month, customers=ids)
                for line in priced.lines:
                    if open_periods.get(line.customer_id, (None,))[0] == line.period_start:
                        mine = lines.setdefault(line.customer_id, [])
                        mine.append(PayableLine(len(mine) + 1, line.kind, line.meter, line.segment_start,
                                                line.amount_minor))
        except MeterctlError:
            return tuple(found)  # no pricebooks to rate with: no ongoing balance to tell
        grants = self.store.ledger.wallet_grants(list(open_periods))
        done = []
        for balance, customer in zip(found, customers, strict=True):
            if customer.customer_id not in open_periods:
                done.append(balance)
                continue
            zone = time_zone(customer.timezone)
            start, end = open_periods[customer.customer_id]
            done.append(with_ongoing(balance, [g for g in grants if g.customer_id == customer.customer_id],
                                     lines.get(customer.customer_id, []),
                                     (datetime.combine(start, time(), zone), datetime.combine(end, time(), zone)),
                                     minor_units(customer.currency)))
        return tuple(done)

    @_guarded
    def wallet_ledger(self, customer_id: str, now: datetime | None = None) -> tuple[LedgerLine, ...]:
        """Every entry of the customer's wallet, oldest first, with the running balance."""
        from meterctl.wallets import ledger_lines

        if self._customer_latest(customer_id) is None:
            raise NotFoundError(Param("customer"), f": no customer '{customer_id}' (see 'meterctl customers list')")
        return ledger_lines(self.store.ledger, customer_id, _now(now))

    # ------------------------------------------------------------ entitlements

    @_guarded
    def check(self, customer_id: str, feature: str, *, quantity: str | Decimal | int | None = None,
              at: str | datetime | None = None) -> CheckAnswer:
        """May the customer use `feature` at `at` (default now), `quantity` more of it? The
        answer says why; anything that cannot be answered is denied (fail closed)."""
        from meterctl.entitlements import check

        meters, catalog = self.configuration()
        customer = self._customer_latest(customer_id)
        zone = time_zone(customer.timezone if customer else "UTC")
        when = _now(None) if at is None else local_instant(at, zone, "at")
        asked = None
        if quantity is not None:
            try:
                asked = Decimal(str(quantity))
            except ArithmeticError:
                raise UsageError(Param("quantity"), f": '{quantity}' is not a number") from None
            if not asked.is_finite() or asked < 0:
                raise UsageError(Param("quantity"), f": '{quantity}' must be a number of zero or more")
        return check(self.store.events, catalog, {m.name: m for m in meters}, customer, customer_id, feature, when,
                     asked)

    @_guarded
    def entitlements(self, *, customers: str | Sequence[str] | None = None, features: str | Sequence[str] | None = None,
                     at: str | datetime | None = None) -> tuple[EntitlementState, ...]:
        """Every customer × feature at `at` (default now): the check answer, the state (ok,
        warning, over_soft_limit, at_limit, not_entitled), the percentage of the limit and
        the highest alert crossed. One aggregation per meter, not one query per customer."""
        from meterctl.customers import select_customers
        from meterctl.entitlements import states

        meters, catalog = self.configuration()
        chosen = select_customers(self.store.ledger.latest_customers(), _names(customers))
        when = _now(None) if at is None else local_instant(at, time_zone("UTC"), "at")
        return states(self.store.events, catalog, {m.name: m for m in meters}, chosen, when, _names(features))

    def push_entitlements(self, redis_url: str, *, at: str | datetime | None = None) -> PushResult:
        """Every customer × feature into Redis (HSET meterctl:entitlements:<customer> <feature>
        <json>), each customer's hash replaced whole; customers with no state any more are
        removed. UnavailableError (exit 69) when Redis cannot be reached."""
        from meterctl.entitlements_push import push

        when = _now(None) if at is None else local_instant(at, time_zone("UTC"), "at")
        return push(self.entitlements(at=when), redis_url, when)

    def export_entitlements(self, output: Path | str, *, at: str | datetime | None = None) -> tuple[str, int]:
        """Every customer × feature as one JSON document, written atomically: (path, states)."""
        from meterctl.export.entitlements import snapshot
        from meterctl.io.files import write_bytes_atomically

        when = _now(None) if at is None else local_instant(at, time_zone("UTC"), "at")
        found = self.entitlements(at=when)
        write_bytes_atomically(Path(output), snapshot(found, when))
        return str(output), len(found)

    # ------------------------------------------------------------ monitoring

    @_guarded
    def metrics(self, *, at: str | datetime | None = None, customer_series: bool = True,
                burn_floor: str | Decimal | None = None, output: Path | str | None = None) -> Metrics:
        """meterctl's health as Prometheus text (see meterctl.monitoring), written atomically to
        `output` when given (for node_exporter's textfile collector)."""
        from meterctl.export.prometheus import exposition
        from meterctl.io.files import write_bytes_atomically
        from meterctl.monitoring import BURN_FLOOR, Metrics, read

        meters, catalog = self.configuration()
        when = _now(None) if at is None else local_instant(at, time_zone("UTC"), "at")
        floor = BURN_FLOOR if burn_floor is None else _positive(burn_floor, "burn_floor")
        readings = read(self.store.events, self.store.ledger, catalog, meters, when, ignored=self.ignored_events(),
                        customer_series=customer_series, burn_floor=floor, taxes=self.taxes())
        text = exposition(readings, sorted({c.currency for c in self.store.ledger.latest_customers()}))
        if output is not None:
            write_bytes_atomically(Path(output), text)
        return Metrics(readings, text, None if output is None else str(output))

    @_guarded
    def health(self, *, at: str | datetime | None = None, max_lag: str | timedelta | None = None,
               max_dead_letter_ratio: str | Decimal | None = None,
               max_age_last_ingest: str | timedelta | None = None) -> Health:
        """The shipped alert rules' thresholds as checks (durations as 90s, 5m, 2h, 1d);
        `refusal()` names the failing ones (exit 65)."""
        from meterctl import monitoring

        lag, ratio, age = _thresholds(max_lag, max_dead_letter_ratio, max_age_last_ingest)
        meters, catalog = self.configuration()
        when = _now(None) if at is None else local_instant(at, time_zone("UTC"), "at")
        readings = monitoring.read(self.store.events, self.store.ledger, catalog, meters, when,
                                   ignored=self.ignored_events(), customer_series=False, taxes=self.taxes())
        return monitoring.health(readings, max_lag=lag, max_dead_letter_ratio=ratio, max_age_last_ingest=age)

    def record_success(self, command: str, at: datetime | None = None) -> None:
        """Note that `command` did its work (monitoring's last success per command)."""
        self._for_writing("note a command's success").ledger.record_success(command, _now(at))

    @_guarded
    def run(self, options: TickOptions) -> Tick:
        """One cron tick (see meterctl.tick): ingest the spool, rate the open month, draft (and
        in time finalize) the closed one, reconcile it, write metrics and entitlements."""
        from meterctl.tick import tick

        # Thresholds are checked before the tick does anything (a typo stores nothing).
        lag, ratio, _ = _thresholds(options.max_lag, options.max_dead_letter_ratio, None)
        self._for_writing("run a tick")
        return tick(self, dataclasses.replace(options, max_lag=lag, max_dead_letter_ratio=ratio))


def _thresholds(max_lag: str | timedelta | None, max_dead_letter_ratio: str | Decimal | None,
                max_age_last_ingest: str | timedelta | None) -> tuple[timedelta, Decimal, timedelta]:
    """health's thresholds, checked, with their defaults (durations as 90s, 5m, 2h, 1d)."""
    from meterctl import monitoring

    def duration(given: str | timedelta | None, default: timedelta, name: str) -> timedelta:
        return default if given is None else given if isinstance(given, timedelta) else parse_duration(given, name)

    ratio = (monitoring.DEFAULT_MAX_DEAD_LETTER_RATIO if max_dead_letter_ratio is None
             else _positive(max_dead_letter_ratio, "max_dead_letter_ratio", zero=True))
    return (duration(max_lag, monitoring.DEFAULT_MAX_LAG, "max_lag"), ratio,
            duration(max_age_last_ingest, monitoring.DEFAULT_MAX_AGE_LAST_INGEST, "max_age_last_ingest"))


def _positive(given: str | Decimal, name: str, *, zero: bool = False) -> Decimal:
    try:
        value = Decimal(str(given))
    except ArithmeticError:
        raise UsageError(Param(name), f": '{given}' is not a number") from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero):
        raise UsageError(Param(name), f": '{given}' must be a number " + ("of zero or more" if zero else "above zero"))
    return value


def _now(given: datetime | None) -> datetime:
    from datetime import UTC

    return given if given is not None else datetime.now(UTC)


NO_INVOICES_YET = "no invoices yet: run 'meterctl invoice --period YYYY-MM' first"

