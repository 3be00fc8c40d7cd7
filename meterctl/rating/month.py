"""Rating a month: plan its segments, price them (or take a run recorded from the very same
inputs), and say what no line will carry.

`price_month` computes and writes nothing; `record.record_month` records what it priced as
a rating run. `rate` does both, as `meterctl rate` does; `invoice` checks the priced lines
in between (a period that has not ended cannot be finalized) so that a refused command
records nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from meterctl.config_yaml import Problem
from meterctl.customers import imported, select_customers
from meterctl.cycles import month_bounds
from meterctl.errors import DataError, MeterctlError
from meterctl.meters import Meter
from meterctl.pricebook import Catalog, PricebookVersion, check_frozen
from meterctl.rating.lines import RatedLine, run_hash
from meterctl.rating.notes import RunNotes
from meterctl.rating.plan import Job, inputs_digest, plan_jobs, pricebooks_of
from meterctl.rating.price import meter_of, price_jobs
from meterctl.rating.scope import month_query
from meterctl.store.ports import EventStore, Ledger
from meterctl.unbilled import Unbilled, summarize
from meterctl.usage import OpenSession, Unmeterable, UsageResult


class PricedMonth(NamedTuple):
    """A month priced, not yet recorded."""

    period: str
    customers: tuple[str, ...] | None  # the customer filter
    jobs: tuple[Job, ...]
    lines: tuple[RatedLine, ...]
    run_hash: str
    pricebooks: tuple[PricebookVersion, ...]  # the versions used, by plan and version
    notes: RunNotes
    unbilled: Unbilled
    as_of_batch: int  # the last ingest batch when it was priced: the events it saw
    inputs_sha256: str | None  # what the lines derive from (None: nothing to rate)
    recorded_run: int | None = None  # a run recorded from these very inputs, whose lines these are


@dataclass(frozen=True)
class RatingResult:
    period: str
    customers: tuple[str, ...] | None  # the customer filter
    lines: tuple[RatedLine, ...]
    run_hash: str
    run_id: int | None  # None when nothing was recorded (simulate, or nothing to rate)
    customers_rated: int
    segments: int
    pricebooks: tuple[str, ...]  # plan@version used
    unmeterable: tuple[Unmeterable, ...] = ()
    open_sessions: tuple[OpenSession, ...] = ()
    newly_frozen: tuple[str, ...] = ()
    # The month's events no line carries, by reason (see meterctl.unbilled).
    unbilled: Unbilled | None = None
    # Customers who could not be priced (customer_id, why): their usage (a value beyond what
    # a total can hold) or their subscriptions (a plan no pricebook defines): no lines, so
    # no bill, until that is corrected; everyone else was rated.
    unpriceable: tuple[tuple[str, str], ...] = ()

    def total_minor(self, customer_id: str | None = None) -> dict[str, int]:
        """Σ rounded lines in minor units, per currency."""
        totals: dict[str, int] = {}
        for line in self.lines:
            if customer_id is None or line.customer_id == customer_id:
                totals[line.currency] = totals.get(line.currency, 0) + line.amount_minor
        return totals

    def refusal(self, produced: int, nothing: str) -> MeterctlError | None:
        """What the run amounts to for a caller that acts on it (a cron job's exit code):
        customers that could not be priced (exit 65 once everyone else is done: a month
        with a missing bill is not a finished one), or nothing produced at all (`nothing`
        names what: "nothing rated")."""
        if self.unpriceable:
            shown = "; ".join(why for _, why in self.unpriceable[:3])
            more = f" (and {len(self.unpriceable) - 3} more)" if len(self.unpriceable) > 3 else ""
            return DataError(f"{len(self.unpriceable)} customer(s) could not be priced and have no lines, so no bill, "
                             f"until what stops them is corrected; everyone else was rated. {shown}{more}")
        if not produced:
            chosen = " for the chosen customers" if self.customers else ""
            return DataError(f"no billing period ends in {self.period}{chosen}: {nothing}")
        return None


def price_month(
    events: EventStore,
    ledger: Ledger,
    catalog: Catalog,
    meters: Sequence[Meter],
    period: str,
    *,
    customers: Sequence[str] | None = None,
    candidate: PricebookVersion | None = None,
    reuse_recorded: bool = False,
    ignored: Sequence[str] = (),
    tally: bool = True,
) -> PricedMonth:
    """Price every billing period ending in month `period` (YYYY-MM).

    With a candidate, segments on its plan are priced by it instead of the version in force
    (a simulation). `reuse_recorded` takes the lines of a run recorded from the very same
    inputs (see plan.inputs_digest) instead of pricing the month again. `ignored` are the
    event names meters.yaml ignores (reported as such among the unbilled events); `tally`
    False leaves the unbilled events uncounted (a caller that counts them itself).
    """
    from meterctl.rating.record import recorded_from

    month_bounds(period)  # a malformed month is the first thing to say
    latest = imported(ledger.latest_customers())
    chosen = select_customers(latest, customers)
    # A customer whose subscriptions cannot be priced (a plan name no pricebook defines,
    # a plan in another currency) is set aside like one whose usage cannot be: the
    # others are rated all the same.
    unplanned: dict[str, list[Problem]] = {}
    jobs = plan_jobs(chosen, catalog, period, candidate, set_aside=unplanned)
    # The month's events are tallied in the background while Python prices.
    pending = (events.tally_month(month_query(period, jobs, latest, customers, meters, ignored, unplanned=unplanned))
               if tally else None)
    try:
        used = pricebooks_of(jobs)
        check_frozen(catalog, ledger.frozen_versions(), {v.plan for v in used if v is not candidate})
        as_of_batch = events.last_batch()
        inputs = inputs_digest(period, customers, jobs, meters, as_of_batch) if jobs else None
        reused = recorded_from(ledger, period, customers, inputs) if reuse_recorded and inputs else None
        if reused is not None:
            run, lines = reused
            digest, notes, recorded = run.run_hash, run.notes or RunNotes(), run.run_id
        else:
            failed = [(customer_id, "; ".join(str(problem) for problem in problems))
                      for customer_id, problems in sorted(unplanned.items())]
            lines, found = price_jobs(events, jobs, meters, unpriceable=failed)
            failed.sort()
            digest, notes, recorded = run_hash(period, customers, lines), _notes(found, failed), None
        unbilled = summarize(period, pending.result() if pending else ())
    except BaseException:
        if pending:
            pending.cancel()
        raise
    return PricedMonth(period, tuple(customers) if customers else None, jobs, tuple(lines), digest, tuple(used),
                       notes, unbilled, as_of_batch, inputs, recorded)


def _notes(found: UsageResult | None, unpriceable: list[tuple[str, str]]) -> RunNotes:
    # Two variants of one meter (priced by a dimension for some plans, whole for others)
    # see the same events: report them once.
    unmeterable = found.unmeterable if found else ()
    open_sessions = found.open_sessions if found else ()
    return RunNotes(
        tuple({(u.customer_id, u.meter): u for u in (
            dataclasses.replace(u, meter=meter_of(u.meter)) for u in unmeterable)}.values()),
        tuple({(s.customer_id, s.meter, s.session): s for s in (
            dataclasses.replace(s, meter=meter_of(s.meter)) for s in open_sessions)}.values()),
        tuple(unpriceable),
    )


def result_of(priced: PricedMonth, run_id: int | None = None, newly_frozen: tuple[str, ...] = ()) -> RatingResult:
    """The priced month as a rating result (recorded as `run_id`, or not at all)."""
    set_aside = {customer_id for customer_id, _ in priced.notes.unpriceable}
    rated_jobs = [job for job in priced.jobs if job.customer.customer_id not in set_aside]
    return RatingResult(
        period=priced.period,
        customers=priced.customers,
        lines=priced.lines,
        run_hash=priced.run_hash,
        run_id=run_id,
        customers_rated=len({job.customer.customer_id for job in rated_jobs}),
        segments=len(rated_jobs),
        pricebooks=tuple(v.ref for v in priced.pricebooks),
        unmeterable=priced.notes.unmeterable,
        open_sessions=priced.notes.open_sessions,
        newly_frozen=newly_frozen,
        unbilled=priced.unbilled,
        unpriceable=priced.notes.unpriceable,
    )


def rate(events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], period: str, *,
         customers: Sequence[str] | None = None, record: bool = True,
         candidate: PricebookVersion | None = None, ignored: Sequence[str] = (), reuse: bool = False) -> RatingResult:
    """Rate every billing period ending in month `period` and record the run (unless asked not
    to). With `reuse`, a run recorded from the same inputs or holding these very lines is
    taken instead of recording another (a cron tick that finds nothing new adds nothing)."""
    from meterctl.rating.record import record_month

    priced = price_month(events, ledger, catalog, meters, period, customers=customers, candidate=candidate,
                         ignored=ignored, reuse_recorded=reuse)
    if not record:
        return result_of(priced)
    return record_month(ledger, meters, priced, reuse_identical=reuse)
