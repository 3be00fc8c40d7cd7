"""`meterctl run`: one cron tick, under the store's one write lock.

1. ingest every file of the spool not ingested yet (a file ingested before, unchanged, is
   passed over; with `move_to`, each file is moved there once its content is stored);
2. rate the month of now, so that the open periods' lines (and what `wallet balance` and
   `metrics` read from them) are current: a run holding the very same lines is reused;
3. build or refresh the drafts of the last closed month;
4. finalize them once the month ended more than `finalize_after` ago (never by default);
5. reconcile the last closed month;
6. write the metrics file, the entitlement snapshot and push to Redis, when asked;
7. note the tick's success (`meterctl_last_success_timestamp_seconds{command="run"}`), when
   every step succeeded. The metrics written in step 6 show the tick before.

Every step is a transaction of its own (or several): killed at any moment, the next tick
does what is left, and a tick with nothing new changes nothing. It calls for exit 65 when
the closed month does not reconcile or a health check fails (ingest lag, dead letters: a
quiet spool is not the data's fault, so the age of the last ingest is not checked here).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterctl.cycles import month_bounds
from meterctl.errors import DataError, InputNotFoundError, OutputError
from meterctl.io.sources import SUPPORTED_SUFFIXES
from meterctl.monitoring import months_watched

if TYPE_CHECKING:
    from meterctl.events import IngestResult
    from meterctl.invoicing import InvoiceRun
    from meterctl.monitoring import Health
    from meterctl.rating import RatingResult
    from meterctl.reconcile import Reconciliation
    from meterctl.session import Session

# The latest a calendar month ends anywhere: local midnight at UTC−12 is 12:00 UTC, and an
# anniversary period may end on the month's last day there too.
LATEST_MONTH_END = timedelta(hours=14)


@dataclass(frozen=True)
class TickOptions:
    spool: Path | None = None
    move_to: Path | None = None
    finalize_after: timedelta | None = None  # None: never finalize
    metrics: Path | None = None
    entitlements: Path | None = None
    redis: str | None = None
    now: datetime | None = None
    max_lag: str | timedelta | None = None  # health's thresholds, as Session.health takes them (None: its defaults)
    max_dead_letter_ratio: str | Decimal | None = None


@dataclass(frozen=True)
class Tick:
    at: datetime
    open_month: str
    closed_month: str
    ingest: IngestResult | None = None
    moved: tuple[str, ...] = ()
    rate: RatingResult | None = None
    invoice: InvoiceRun | None = None
    finalized: bool = False
    reconcile: Reconciliation | None = None
    health: Health | None = None
    metrics: str | None = None
    entitlements: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # steps that could not be done, and why

    @property
    def ingested_new(self) -> bool:
        return self.ingest is not None and any(not f.skipped for f in self.ingest.files)

    @property
    def changed(self) -> bool:
        """Did this tick store anything new: events, or an invoice drafted, revised or finalized?"""
        invoices = self.invoice is not None and any(o.action != "unchanged" for o in self.invoice.outcomes)
        return self.ingested_new or invoices or bool(self.moved)

    def refusal(self) -> DataError | None:
        found = list(self.problems)
        if self.rate is not None and self.rate.unpriceable:
            found.append(f"{len(self.rate.unpriceable)} customer(s) could not be priced (see 'meterctl rate')")
        if self.reconcile is not None and not self.reconcile.ok:
            found.append(str(self.reconcile.refusal()))
        if self.health is not None:
            failing = [c for c in self.health.checks if not c.ok and c.name != "last_ingest"]
            found += [f"unhealthy: {c.name}: {c.detail}" for c in failing]
        if self.ingest is not None:
            found += [f"{f.source}: {f.error}" for f in self.ingest.files if f.error]
        return DataError("; ".join(found)) if found else None


def document(tick: Tick) -> dict[str, Any]:
    """The tick as one JSON document, a section per step."""
    ingest = tick.ingest
    invoice = tick.invoice
    actions: dict[str, int] = {}
    for outcome in invoice.outcomes if invoice else ():
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    push = tick.entitlements.get("push")
    return {
        "at": tick.at.isoformat().replace("+00:00", "Z"),
        "ok": tick.refusal() is None,
        "changed": tick.changed,
        "ingest": None if ingest is None else {
            "files": len(ingest.files), "new_files": sum(not f.skipped for f in ingest.files), "read": ingest.read,
            "accepted": ingest.accepted, "duplicates": ingest.duplicates, "conflicts": ingest.conflicts,
            "dead_lettered": ingest.dead_lettered, "errors": [f"{f.source}: {f.error}" for f in ingest.files if f.error],
            "moved": list(tick.moved)},
        "rate": None if tick.rate is None else {
            "period": tick.open_month, "run_id": tick.rate.run_id, "run_hash": tick.rate.run_hash,
            "customers": tick.rate.customers_rated, "lines": len(tick.rate.lines)},
        "invoice": None if invoice is None else {
            "period": tick.closed_month, "invoices": len(invoice.outcomes), "actions": actions,
            "finalized": tick.finalized},
        "reconcile": None if tick.reconcile is None else {
            "period": tick.closed_month, "ok": tick.reconcile.ok,
            "failing": [c.name for c in tick.reconcile.checks if not c.ok], "unbilled": tick.reconcile.unbilled.lost},
        "health": None if tick.health is None else tick.health.document(),
        "metrics": tick.metrics,
        "entitlements": {**({"snapshot": tick.entitlements["snapshot"]} if "snapshot" in tick.entitlements else {}),
                         **({"push": {"customers": push.customers, "states": push.states}} if push else {})},
        "problems": list(tick.problems),
    }


def spool_files(spool: Path) -> list[Path]:
    """The closed files of a spool directory, in name order (a file still being written
    has another suffix, and is left for a later tick)."""
    if not spool.is_dir():
        raise InputNotFoundError(f"{spool}: the spool directory does not exist")
    return sorted(p for p in spool.iterdir() if p.is_file() and p.name.lower().endswith(SUPPORTED_SUFFIXES))


def tick(session: Session, options: TickOptions) -> Tick:
    from meterctl.events import IngestOptions

    now = options.now or datetime.now(UTC)
    open_month, closed_month = months_watched(now)
    found: dict[str, Any] = {}
    problems: list[str] = []

    def step(name: str, work: Callable[[], Any]) -> None:
        # A step that finds a data problem (no customers yet, a plan no pricebook defines)
        # is reported, and the others still run: the metrics must be written all the same.
        try:
            found[name] = work()
        except DataError as error:
            problems.append(f"{name}: {error}")

    moved: tuple[str, ...] = ()
    if options.spool is not None:
        files = spool_files(options.spool)
        if files:
            found["ingest"] = session.ingest([str(f) for f in files], IngestOptions(now=now))
            if options.move_to is not None:
                moved = _move(found["ingest"], files, options.move_to)
    step("rate", lambda: session.rate(open_month, reuse=True))
    closed_end = datetime.combine(month_bounds(closed_month)[1], time(), UTC) + LATEST_MONTH_END
    finalize = options.finalize_after is not None and now >= closed_end + options.finalize_after
    step("invoice", lambda: session.invoice(closed_month, finalize=finalize, now=now))
    step("reconcile", lambda: session.reconcile(closed_month, now=now))
    step("health", lambda: session.health(at=now, max_lag=options.max_lag,
                                          max_dead_letter_ratio=options.max_dead_letter_ratio))
    if options.metrics is not None:
        step("metrics", lambda: session.metrics(at=now, output=options.metrics).output)
    entitlements: dict[str, Any] = {}
    if options.entitlements is not None:
        path, states = session.export_entitlements(options.entitlements, at=now)
        entitlements["snapshot"] = {"path": path, "states": states}
    if options.redis is not None:
        entitlements["push"] = session.push_entitlements(options.redis, at=now)
    done = Tick(now, open_month, closed_month, found.get("ingest"), moved, found.get("rate"), found.get("invoice"),
                finalize and "invoice" in found, found.get("reconcile"), found.get("health"), found.get("metrics"),
                entitlements, tuple(problems))
    if done.refusal() is None:
        session.record_success("run", now)
    return done


def _move(ingested: IngestResult, files: list[Path], target: Path) -> tuple[str, ...]:
    """Each file whose content is stored (now or before) into `target`; a file that could not
    be read stays in the spool."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{target}: cannot create the directory to move ingested files to: {error.strerror}") from None
    moved = []
    for path, outcome in zip(files, ingested.files, strict=True):  # one outcome per file, in order
        if outcome.error:
            continue
        try:
            shutil.move(str(path), str(target / path.name))
        except OSError as error:
            raise OutputError(f"{path}: ingested, but it could not be moved to {target}: {error.strerror}") from None
        moved.append(path.name)
    return tuple(moved)
