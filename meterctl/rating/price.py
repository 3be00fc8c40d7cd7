"""Pricing planned segments: usage × pricebook → rated lines, deterministically.

Per segment:

- each recurring fee is one line, prorated by days when the segment is shorter than a full
  cycle period (a first calendar period that starts mid-month, a plan change, a
  subscription that ends): `amount × segment days / full period days`;
- each charge prices its meter's usage over the segment's window; a charge with `price_by`
  gives one line per value of that dimension (events without the property are priced at
  the charge's own price), tiers and free units applying per line;
- a charge's `minimum` (or `maximum`), prorated like fees, adds a line that tops the
  charge's rounded lines up to it (or caps them at it).

Every line is rounded once, to the currency's minor units with the pricebook's mode, from
its exact amount. A prorated amount that does not terminate (49 × 24/31) is rounded from
the exact fraction; it is shown to 20 places.

Python loops over segments and charges (aggregates), never over events: usage comes from
one `usage()` call with the segments as windows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, time
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from meterctl import pricing
from meterctl.config_yaml import ConfigProblems, Problem
from meterctl.cycles import calendar_window
from meterctl.errors import DataError, UsageOverflowError
from meterctl.metering import usage
from meterctl.meters import Meter
from meterctl.pricebook import Charge
from meterctl.pricing import text
from meterctl.rating.lines import LineContext, RatedLine
from meterctl.rating.plan import Job
from meterctl.store.ports import EventStore
from meterctl.usage import BillingWindow, UsageResult

_DISPLAY_PLACES = 20
_ONE = Decimal(1)
_ZERO = Decimal(0)

# Usage rows of one charge variant, customer and window: (dimensions, value, unmeterable events).
UsageRows = dict[tuple[str, str, datetime], list[tuple[dict[str, str | None], Decimal | None, int]]]
# Usage per allowance window: (meter variant, customer, window start) → dimension values → value.
WindowUsage = dict[tuple[str, str, datetime], dict[tuple[tuple[str, str | None], ...], Decimal]]
_NO_USAGE: list[tuple[dict[str, str | None], Decimal | None, int]] = [({}, None, 0)]  # a charge with no usage still gets its line


def round_exact(value: Fraction, places: int, mode: str) -> Decimal:
    """Round an exact fraction to `places` decimals: half_up (ties away from zero) or half_even."""
    sign = -1 if value < 0 else 1
    scaled = abs(value) * 10**places
    whole = scaled.numerator // scaled.denominator
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and (mode == "half_up" or whole % 2 == 1)):
        whole += 1
    return Decimal(sign * whole).scaleb(-places)


def _fraction_text(value: Fraction) -> str:
    """Exact when the decimal expansion terminates, else 20 places."""
    with localcontext() as ctx:
        ctx.prec = 100
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        if Fraction(exact) == value:
            return text(exact)
        return text(exact.quantize(Decimal(1).scaleb(-_DISPLAY_PLACES)))


class _Builder:
    """The lines of one segment."""

    def __init__(self, job: Job, usage_rows: UsageRows, window_usage: WindowUsage | None = None) -> None:
        self.job = job
        self.usage_rows = usage_rows
        self.window_usage = window_usage or {}
        self.lines: list[RatedLine] = []
        self.minor = job.book.book.minor_units
        self.mode = job.book.book.rounding
        self.proration = Fraction(job.segment.days, job.full_days)
        self.prorated = self.proration != 1
        self.proration_text = f"{job.segment.days}/{job.full_days}"
        customer, segment, book = job.customer, job.segment, job.book
        self.context = LineContext(
            customer.customer_id, customer.currency, customer.timezone, segment.period.start, segment.period.end,
            segment.start, segment.end, job.start_at, job.end_at, book.plan, book.version, book.content_hash,
        )

    def add(self, kind: str, name: str, meter: str | None, dimensions: dict[str, str | None], quantity: Decimal,
            unit_price: Decimal | None, tiers: tuple[pricing.TierUse, ...], exact: Fraction | Decimal, prorated: bool,
            unmeterable: int = 0) -> RatedLine:
        if isinstance(exact, Fraction):
            amount = round_exact(exact, self.minor, self.mode)
            precise = _fraction_text(exact)
        else:
            amount = pricing.round_amount(exact, self.minor, self.mode)
            precise = text(exact)
        line = RatedLine(self.context, kind, name, meter, dimensions, quantity, unit_price, tiers,
                         self.proration_text if prorated else None, precise, amount, int(amount.scaleb(self.minor)),
                         unmeterable)
        self.lines.append(line)
        return line

    def fees(self) -> None:
        prorated = self.prorated
        for fee in self.job.book.book.fees:
            exact: Fraction | Decimal = Fraction(fee.amount) * self.proration if prorated else fee.amount
            self.add("fee", fee.name, None, {}, _ONE, fee.amount, (), exact, prorated)

    def charge(self, charge: Charge) -> None:
        key = (variant_name(charge), self.job.customer.customer_id, self.job.start_at)
        rows = self.usage_rows.get(key) or _NO_USAGE
        dimension = charge.dimension
        label, meter = charge.label, charge.meter
        charged: list[RatedLine] = []
        for dims, value, unmeterable in rows:
            quantity = value if value is not None else _ZERO
            dim_value = dims.get(dimension) if dimension else None
            try:
                if charge.per_window:
                    price = charge.price(self._billable(charge, dims), dim_value, allowance_taken=True)
                else:
                    price = charge.price(quantity, dim_value)
            except ValueError as error:
                raise DataError(f"customer {self.job.customer.customer_id}, meter {charge.meter}, "
                                f"period {self.job.segment.period}: {error}") from None
            charged.append(self.add("usage", label, meter, dict(dims), quantity, price.unit_price,
                                    price.tiers, price.amount, False, unmeterable))
        if charge.minimum is not None or charge.maximum is not None:
            self._limits(charge, charged)

    def _billable(self, charge: Charge, dims: dict[str, str | None]) -> Decimal:
        """Σ over the charge's allowance windows in the segment of max(0, usage − free units)."""
        variant, customer = variant_name(charge), self.job.customer.customer_id
        key = tuple(sorted(dims.items()))
        total = _ZERO
        for start, _ in allowance_windows(charge.free_units_per, self.job.start_at, self.job.end_at,
                                          self.job.customer.timezone):
            used = self.window_usage.get((variant, customer, start), {}).get(key, _ZERO)
            total += pricing.after_free_units(used, charge.free_units)
        return total

    def _limits(self, charge: Charge, charged: list[RatedLine]) -> None:
        total = sum((line.amount for line in charged), _ZERO)
        prorated = self.prorated
        for kind, limit in (("minimum", charge.minimum), ("maximum", charge.maximum)):
            if limit is None:
                continue
            bound = Fraction(limit) * self.proration if prorated else Fraction(limit)
            rounded = round_exact(bound, self.minor, self.mode)
            if (kind == "minimum" and total < rounded) or (kind == "maximum" and total > rounded):
                # The line brings the rounded total exactly to the rounded limit; rounding
                # `bound − total` instead could land a minor unit short under half_even. That
                # difference of rounded amounts is also its precise amount, so the line's
                # amount is its precise amount rounded, as on every other line.
                self.add(kind, f"{charge.label} {kind}", charge.meter, {}, _ONE, limit, (),
                         Decimal(rounded - total), prorated)


# What the ledger keeps: quantities, prices and amounts as DECIMAL(38, 18), so below 10^20;
# amounts and invoice totals in minor units as BIGINT.
_MAX_DECIMAL = Decimal(10) ** 20
_MAX_MINOR = 2**63 - 1


def _within_limits(customer_id: str, lines: Sequence[RatedLine]) -> None:
    """A customer whose lines the ledger could not keep is refused before anything is
    written (DataError: set aside, and the others' lines are recorded)."""
    totals: dict[tuple[str, object], int] = {}
    for line in lines:
        if abs(line.quantity) >= _MAX_DECIMAL or abs(line.amount) >= _MAX_DECIMAL or abs(line.amount_minor) > _MAX_MINOR:
            raise DataError(f"customer {customer_id}, {line.name}: quantity {line.quantity} or amount {line.amount} "
                            "is beyond what an invoice line holds (10^20); correct the events or the price")
        key = (line.currency, line.period_start)
        totals[key] = totals.get(key, 0) + line.amount_minor
        if abs(totals[key]) > _MAX_MINOR:
            raise DataError(f"customer {customer_id}: the invoice for the period from {line.period_start} would total "
                            f"more than {_MAX_MINOR} minor units of {line.currency}; correct the events or the prices")


def allowance_windows(per: str, start: datetime, end: datetime, tz: str) -> list[tuple[datetime, datetime]]:
    """The day, week (from Monday) or month windows of the customer's time zone that cover
    [start, end), each cut to it: a window a segment only partly covers gets the whole
    allowance (a segment starts and ends at local midnight, so only weeks and months are cut)."""
    zone = ZoneInfo(tz)
    day = start.astimezone(zone).date()
    windows: list[tuple[datetime, datetime]] = []
    while True:
        first, following = calendar_window(per, day)
        window_start = max(datetime.combine(first, time(), zone).astimezone(UTC), start)
        window_end = min(datetime.combine(following, time(), zone).astimezone(UTC), end)
        if window_start >= end:
            return windows
        windows.append((window_start, window_end))
        day = following


def _window_usage(events: EventStore, jobs: Sequence[Job], variants: Sequence[Meter],
                  as_of_batch: int | None) -> WindowUsage:
    """Usage per allowance window of every charge whose free units are per day, week or
    month: one aggregation per meter variant over every customer's windows."""
    by_name = {v.name: v for v in variants}
    wanted: dict[str, set[BillingWindow]] = {}
    for job in jobs:
        for charge in job.book.book.charges:
            if charge.per_window:
                wanted.setdefault(variant_name(charge), set()).update(
                    BillingWindow(job.customer.customer_id, a, b)
                    for a, b in allowance_windows(charge.free_units_per, job.start_at, job.end_at, job.customer.timezone))
    found: WindowUsage = {}
    for name, windows in sorted(wanted.items()):
        ordered = sorted(windows, key=lambda w: (w.customer_id, w.start))
        result = usage(events, [by_name[name]], window="period", start=min(w.start for w in ordered),
                       end=max(w.end for w in ordered), periods=ordered, as_of_batch=as_of_batch)
        for row in result.rows:
            if row.value is not None:
                cell = found.setdefault((name, row.customer_id, row.window_start), {})
                key = tuple(sorted(row.dimensions.items()))
                cell[key] = cell.get(key, _ZERO) + row.value
    return found


def variant_name(charge: Charge) -> str:
    """The usage a charge prices: its meter, whole or by the dimension it prices by."""
    return f"{charge.meter}#{charge.dimension or ''}"


def meter_of(variant: str) -> str:
    return variant.partition("#")[0]


def _meter_variants(jobs: Sequence[Job], meters: Sequence[Meter]) -> list[Meter]:
    """One meter per (meter, price_by dimension) the jobs' pricebooks charge."""
    by_name = {m.name: m for m in meters}
    variants: dict[str, Meter] = {}
    for job in jobs:
        for charge in job.book.book.charges:
            name = variant_name(charge)
            if name in variants:
                continue
            meter = by_name.get(charge.meter)
            if meter is None:
                raise ConfigProblems([Problem(job.book.path, None, "charges", f"unknown meter '{charge.meter}'")])
            group_by = tuple(g for g in meter.group_by if g.removeprefix("properties.") == charge.dimension)
            # model_copy skips validation: the internal name only keys the usage rows.
            variants[name] = meter.model_copy(update={"name": name, "group_by": group_by})
    return sorted(variants.values(), key=lambda m: m.name)


def _derivable(variants: list[Meter]) -> dict[str, str]:
    """Whole-meter variants of count and sum meters that a per-dimension variant also needs:
    their value is the sum over the dimension's rows, so the events are read once."""
    by_meter: dict[str, list[Meter]] = {}
    for variant in variants:
        by_meter.setdefault(meter_of(variant.name), []).append(variant)
    derived = {}
    for group in by_meter.values():
        whole = next((v for v in group if not v.group_by), None)
        split = next((v for v in group if v.group_by), None)
        if whole is not None and split is not None and whole.aggregation in ("count", "sum"):
            derived[whole.name] = split.name
    return derived


def price_jobs(events: EventStore, jobs: Sequence[Job], meters: Sequence[Meter], as_of_batch: int | None = None,
               unpriceable: list[tuple[str, str]] | None = None) -> tuple[list[RatedLine], UsageResult | None]:
    """Price every job; returns the lines (in a fixed order) and the usage result behind them.

    `as_of_batch` prices the events stored by that ingest batch only (see usage()). A
    customer whose usage cannot be priced (a negative total on a tiered charge) raises
    DataError; given an `unpriceable` list, that customer gets no lines at all (no partial
    bill) and (customer_id, why) is appended to it instead, and the others are priced."""
    variants = _meter_variants(jobs, meters)
    derived = _derivable(variants)
    rows: UsageRows = {}
    found = None
    while jobs and variants:
        windows = [job.window for job in jobs]
        try:
            found = usage(events, [v for v in variants if v.name not in derived], window="period",
                          start=min(w.start for w in windows), end=max(w.end for w in windows),
                          periods=windows, as_of_batch=as_of_batch)  # the windows already name the customers
            break
        except UsageOverflowError as error:
            overflowing = {customer for customer, _ in error.overflowing}
            if unpriceable is None or not overflowing:
                raise
            # One customer's absurd value must not stop everyone's bill: set it aside, look again.
            for customer in sorted(overflowing):
                named = sorted({meter_of(m) for c, m in error.overflowing if c == customer})
                unpriceable.append((customer, f"customer {customer}: the usage of meter {', '.join(named)} sums to "
                                              "10^20 or more, beyond what a quantity holds; find the events with huge "
                                              "values (meterctl usage --customer ID --meter NAME --window day) and "
                                              "correct them at the source"))
            jobs = [job for job in jobs if job.customer.customer_id not in overflowing]
    if found is not None:
        sums: dict[tuple[str, str, datetime], list[Any]] = {}
        source_of = {split: whole for whole, split in derived.items()}
        for row in found.rows:
            rows.setdefault((row.meter, row.customer_id, row.window_start), []).append(
                (row.dimensions, row.value, row.unmeterable))
            whole = source_of.get(row.meter)
            if whole is not None:
                total = sums.setdefault((whole, row.customer_id, row.window_start), [None, 0])
                if row.value is not None:
                    total[0] = row.value if total[0] is None else total[0] + row.value
                total[1] += row.unmeterable
        for key, (value, unmeterable) in sums.items():
            rows[key] = [({}, value, unmeterable)]
    window_usage = _window_usage(events, jobs, variants, as_of_batch) if jobs and variants else {}
    lines: list[RatedLine] = []
    ordered = sorted(jobs, key=lambda j: (j.customer.customer_id, j.segment.start))
    for customer_id, customer_jobs in itertools.groupby(ordered, key=lambda j: j.customer.customer_id):
        priced: list[RatedLine] = []
        try:
            for job in customer_jobs:
                builder = _Builder(job, rows, window_usage)
                builder.fees()
                for charge in job.book.book.charges:
                    builder.charge(charge)
                priced.extend(builder.lines)
            _within_limits(customer_id, priced)
        except DataError as error:
            if unpriceable is None:
                raise
            unpriceable.append((customer_id, str(error)))
            continue
        lines.extend(priced)
    return lines, found
