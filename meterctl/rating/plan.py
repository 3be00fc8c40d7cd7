"""Which segments a month rates, and with which pricebook version.

A month rates every billing period that ends in it (its last billed day falls in the month:
the period's last day, or the last subscribed day of a subscription that ended inside it),
per segment: a plan change inside a period splits it, and each segment is priced by the
pricebook version in force on its first day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

from meterctl import __version__, cycles
from meterctl.canonical_json import compact
from meterctl.config_yaml import ConfigProblems, Problem
from meterctl.customers import CustomerVersion
from meterctl.cycles import Cycle, month_bounds
from meterctl.meters import Meter, definitions_json
from meterctl.pricebook import Catalog, PricebookVersion
from meterctl.usage import BillingWindow


class Job(NamedTuple):
    """One segment to price: who, when, and the pricebook version in force."""

    customer: CustomerVersion
    segment: cycles.Segment
    full_days: int  # days of the full cycle period the segment belongs to
    book: PricebookVersion
    start_at: datetime  # the segment's instants, worked out once per segment (time zones)
    end_at: datetime

    @classmethod
    def of(cls, customer: CustomerVersion, segment: cycles.Segment, full_days: int, book: PricebookVersion) -> Job:
        return cls(customer, segment, full_days, book, segment.start_at, segment.end_at)

    @property
    def window(self) -> BillingWindow:
        return BillingWindow(self.customer.customer_id, self.start_at, self.end_at)


def customer_cycle(customer: CustomerVersion, catalog: Catalog, since: date | None = None) -> Cycle:
    """A customer's billing cycle: the cycle of its plans' pricebooks (they must agree).

    With `since`, only subscriptions still running on or after that day count: a plan on
    another cycle long ago does not block billing today.
    """
    current = [s for s in customer.subscriptions if since is None or s.end is None or s.end > since]
    found = {cycle for s in current if (cycle := catalog.cycle(s.plan)) is not None}
    if len(found) > 1:
        plans = ", ".join(sorted({s.plan for s in current}))
        raise ConfigProblems([Problem(customer.source, None, f"customer {customer.customer_id}",
                                      f"its plans ({plans}) bill on different cycles ({', '.join(sorted(found))}); "
                                      "meterctl bills one customer on one cycle")])
    return found.pop() if found else Cycle.MONTHLY


def full_period_days(segment: cycles.Segment, cycle: Cycle, alignment: str) -> int:
    """Days of the full cycle period: a first calendar period starting mid-month is partial."""
    if alignment != "calendar":
        return segment.period.days
    whole = cycles.period_containing(cycle=cycle, alignment="calendar", anchor=date(1, 1, 1),
                                     tz=segment.period.tz, at=segment.period.start)
    return whole.days


def _day_before(day: date) -> date:
    return day - timedelta(days=1) if day > date.min else day  # no day before 0001-01-01


def plan_jobs(
    customers: Sequence[CustomerVersion],
    catalog: Catalog,
    month: str,
    candidate: PricebookVersion | None = None,
    *,
    set_aside: dict[str, list[Problem]] | None = None,
) -> tuple[Job, ...]:
    """Every segment of every billing period of these customers ending in `month`, with its
    pricebook version; every problem (a plan with no version in force, another currency)
    at once: raised as ConfigProblems, or, given `set_aside`, noted there per customer, whose
    segments are then left out (no partial bill) while the others' are planned.

    With a candidate, segments on the candidate's plan are priced by it instead of the
    version in force (a simulation).
    """
    month_start, month_end = month_bounds(month)
    # A period ending in the month began at most one cycle before the month; looking back
    # that far also finds the last period of a subscription that ended early.
    year_back = _day_before(date(month_start.year - 1, month_start.month, 1))
    jobs: list[Job] = []
    full_days: dict[tuple[cycles.Period, Cycle, str], int] = {}
    by_customer: dict[str, list[Problem]] = {}
    for customer in customers:
        problems = by_customer.setdefault(customer.customer_id, [])
        planned = len(jobs)
        try:
            if candidate and any(s.plan == candidate.plan for s in customer.subscriptions):
                cycle = candidate.book.billing_cycle
            else:
                cycle = customer_cycle(customer, catalog, since=year_back)
            back = month_start.month - 1 - cycle.months
            lookback = _day_before(date(month_start.year + back // 12, back % 12 + 1, 1))
            found = cycles.periods_for_customer(subscriptions=customer.subscriptions, cycle=cycle,
                                                alignment=customer.billing, tz=customer.timezone,
                                                start=lookback, end=month_end)
        except ConfigProblems as error:
            problems.extend(error.problems)
            continue
        except ValueError as error:
            problems.append(Problem(customer.source, None, f"customer {customer.customer_id}", str(error)))
            continue
        # A period is billed in the month its last billed day falls in: normally the period's
        # own last day; for a subscription that ended inside it, the last subscribed day (a
        # cancelled yearly plan is invoiced when it ends, not a year later).
        billed_until: dict[cycles.Period, date] = {}
        for segment in found:
            billed_until[segment.period] = max(billed_until.get(segment.period, segment.end), segment.end)
        for segment in found:
            if not (month_start < billed_until[segment.period] <= month_end):
                continue  # billed in another month
            if candidate is not None and segment.plan == candidate.plan:
                book: PricebookVersion | None = candidate
            else:
                book = catalog.in_force(segment.plan, segment.start)
            where = f"customer {customer.customer_id}"
            if book is None:
                known = catalog.of_plan(segment.plan)
                hint = (f"its first version, {known[0].ref}, takes effect {known[0].book.effective_from}"
                        if known else "no pricebook file defines this plan")
                problems.append(Problem(customer.source, None, where,
                                        f"plan '{segment.plan}' has no version in force on {segment.start} ({hint})"))
                continue
            if book.book.currency != customer.currency:
                problems.append(Problem(book.path, book.key_lines.get("currency"), "currency",
                                        f"{book.ref} prices in {book.book.currency} but {where} is billed in {customer.currency}"))
                continue
            full = (segment.period, cycle, customer.billing)
            if full not in full_days:  # customers on one calendar share their periods: work each out once
                full_days[full] = full_period_days(segment, cycle, customer.billing)
            jobs.append(Job.of(customer, segment, full_days[full], book))
        if problems:
            del jobs[planned:]
    refused = {customer_id: problems for customer_id, problems in by_customer.items() if problems}
    if refused and set_aside is None:
        raise ConfigProblems([problem for problems in refused.values() for problem in problems])
    if set_aside is not None:
        set_aside.update(refused)
    return tuple(jobs)


def pricebooks_of(jobs: Sequence[Job]) -> list[PricebookVersion]:
    """The versions the jobs price with, by plan and version."""
    return sorted({job.book.ref: job.book for job in jobs}.values(), key=lambda v: (v.plan, v.version))


def inputs_digest(period: str, customers: Sequence[str] | None, jobs: Sequence[Job], meters: Sequence[Meter],
                  as_of_batch: int) -> str:
    """sha256 of everything a run's lines are derived from: the month and customer filter,
    every segment with its customer version, dates, instants and pricebook version (by content
    hash), the meter definitions, the events (append-only: named by the last ingest batch),
    and meterctl's version (the code that prices them). Equal digests, equal lines."""
    document = {
        "as_of_batch": as_of_batch,
        "customers": sorted(customers) if customers else None,
        "jobs": [[job.customer.customer_id, job.customer.version, job.customer.currency, job.customer.timezone,
                  job.segment.plan, str(job.segment.period.start), str(job.segment.period.end), str(job.segment.start),
                  str(job.segment.end), job.full_days, job.start_at.isoformat(), job.end_at.isoformat(),
                  job.book.ref, job.book.content_hash] for job in jobs],
        "meterctl": __version__,
        "meters": definitions_json(meters),
        "period": period,
    }
    return hashlib.sha256(compact(document).encode()).hexdigest()
