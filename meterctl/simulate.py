"""What a candidate pricebook would have billed: current vs candidate amounts, writing nothing.

Both sides are rated from the same stored usage with `rate(record=False)`; the candidate
replaces whatever version of its plan is in force in the chosen periods. Only customers
with a segment on the candidate's plan are compared; their other segments (before a plan
change, say) appear on both sides unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meterctl import pricing
from meterctl.customers import imported, select_customers
from meterctl.cycles import month_bounds
from meterctl.errors import DataError
from meterctl.meters import Meter
from meterctl.pricebook import Catalog, PricebookVersion
from meterctl.rating.month import RatingResult, rate
from meterctl.rating.plan import plan_jobs
from meterctl.store.ports import EventStore, Ledger


def major(minor: int, currency: str) -> str:
    """Integer minor units as an amount at the currency's scale: 1234 USD → '12.34'."""
    return pricing.major(minor, pricing.minor_units(currency))


@dataclass(frozen=True)
class SimulatedCustomer:
    customer_id: str
    plan: str
    currency: str
    current_pricebook: str
    candidate_pricebook: str
    current: str
    candidate: str
    difference: str
    current_minor: int
    candidate_minor: int
    difference_minor: int


@dataclass(frozen=True)
class SimulatedTotal:
    currency: str
    customers: int
    current: str
    candidate: str
    difference: str
    current_minor: int
    candidate_minor: int
    difference_minor: int


@dataclass(frozen=True)
class SimulationResult:
    candidate: str
    candidate_file: str
    candidate_hash: str
    period: str
    rows: tuple[SimulatedCustomer, ...]
    totals: tuple[SimulatedTotal, ...]


def _refs(result: RatingResult, customer_id: str, plan: str) -> str:
    refs = sorted({line.pricebook for line in result.lines if line.customer_id == customer_id and line.plan == plan})
    return ", ".join(refs) or "-"


def simulate(
    events: EventStore,
    ledger: Ledger,
    catalog: Catalog,
    meters: Sequence[Meter],
    candidate: PricebookVersion,
    period: str,
    *,
    customers: Sequence[str] | None = None,
) -> SimulationResult:
    month_bounds(period)  # a malformed month is the first thing to say
    jobs = plan_jobs(select_customers(imported(ledger.latest_customers()), customers), catalog, period, candidate)
    affected = sorted({job.customer.customer_id for job in jobs if job.book is candidate})
    rows: list[SimulatedCustomer] = []
    if affected:
        current = rate(events, ledger, catalog, meters, period, customers=affected, record=False)
        proposed = rate(events, ledger, catalog, meters, period, customers=affected, record=False, candidate=candidate)
        unpriceable = current.unpriceable + proposed.unpriceable
        if unpriceable:  # a comparison with a customer left out would show a difference that is not there
            raise DataError(f"cannot compare: {unpriceable[0][1]}")
        currency = {job.customer.customer_id: job.customer.currency for job in jobs}
        for customer_id in affected:
            before = current.total_minor(customer_id).get(currency[customer_id], 0)
            after = proposed.total_minor(customer_id).get(currency[customer_id], 0)
            code = currency[customer_id]
            rows.append(SimulatedCustomer(
                customer_id=customer_id, plan=candidate.plan, currency=code,
                current_pricebook=_refs(current, customer_id, candidate.plan),
                candidate_pricebook=candidate.ref,
                current=major(before, code), candidate=major(after, code), difference=major(after - before, code),
                current_minor=before, candidate_minor=after, difference_minor=after - before,
            ))
    totals = []
    for code in sorted({r.currency for r in rows}):
        chosen = [r for r in rows if r.currency == code]
        before = sum(r.current_minor for r in chosen)
        after = sum(r.candidate_minor for r in chosen)
        totals.append(SimulatedTotal(code, len(chosen), major(before, code), major(after, code), major(after - before, code),
                                     before, after, after - before))
    return SimulationResult(candidate.ref, candidate.path, candidate.content_hash, period, tuple(rows), tuple(totals))
