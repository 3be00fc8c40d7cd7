"""Recording a priced month as a rating run, or finding the run that already holds it.

Runs are append-only: rating the same inputs again gives the same lines and run hash. A
run recorded from the very same inputs (see plan.inputs_digest) gives its lines without
rating the month again; a run that holds exactly the lines just priced, from the same
events, meters and pricebook versions, is pointed at instead of recording a copy.
"""

from __future__ import annotations

from collections.abc import Sequence

from meterctl.meters import Meter
from meterctl.rating.lines import RatedLine, run_hash
from meterctl.rating.month import PricedMonth, RatingResult, result_of
from meterctl.store.ports import Ledger, RunRecord, StoredRun


def record_month(ledger: Ledger, meters: Sequence[Meter], priced: PricedMonth, *,
                 reuse_identical: bool = False) -> RatingResult:
    """Record the priced month as a run (nothing when no period ends in it), freezing the
    pricebook versions it used. With `reuse_identical`, a run recorded from the same inputs,
    or one holding these very lines, is taken instead of a new one."""
    if priced.recorded_run is not None:
        return result_of(priced, priced.recorded_run)
    if not priced.jobs:  # no period ends in the month: nothing worth a rating run
        return result_of(priced)
    run_id = None
    if reuse_identical:
        run_id = ledger.identical_run(priced.period, priced.customers, priced.run_hash, len(priced.lines),
                                      sorted(v.ref for v in priced.pricebooks), meters, priced.as_of_batch)
    if run_id is not None:
        return result_of(priced, run_id)
    run_id, newly_frozen = ledger.record_run(RunRecord(
        period=priced.period, customers=priced.customers, lines=priced.lines, run_hash=priced.run_hash,
        pricebooks=priced.pricebooks, meters=meters, as_of_batch=priced.as_of_batch,
        inputs_sha256=priced.inputs_sha256, notes=priced.notes,
    ))
    return result_of(priced, run_id, newly_frozen)


def recorded_from(ledger: Ledger, period: str, customers: Sequence[str] | None,
                  inputs: str) -> tuple[StoredRun, list[RatedLine]] | None:
    """The latest run recorded from these very inputs, with its lines read back, or None.
    The lines read back must give the run's hash again, or the run is not used: rating the
    month again is then the safe way, and costs only time."""
    run = ledger.run_from_inputs(period, customers, inputs)
    if run is None:
        return None
    lines = ledger.run_lines(run.run_id)
    if len(lines) != run.line_count or run_hash(period, customers, lines) != run.run_hash:
        return None
    return run, lines
