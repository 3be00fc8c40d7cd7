"""Usage × pricebook → rated lines, deterministically.

`rate` prices every billing period that ends in a month (its last billed day falls in the
month: the period's last day, or the last subscribed day of a subscription that ended
inside it), per segment: a plan change inside a period splits it, and each segment is priced by the
pricebook version in force on its first day. Per segment:

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

import dataclasses
import functools
import hashlib
import itertools
import json
import operator
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

import duckdb

from meterctl import __version__, cycles, pricing, sql, store
from meterctl.canonical_json import compact, nullable, string
from meterctl.pricing import text
from meterctl.config_yaml import ConfigProblems, Problem
from meterctl.cycles import month_bounds
from meterctl.customers import CustomerVersion, list_customers, select_customers
from meterctl.errors import DataError
from meterctl.meters import Meter
from meterctl.pricebook import Catalog, Charge, PricebookVersion, check_frozen, freeze
from meterctl.store import has_table
from meterctl.usage import OpenSession, Unmeterable, usage

_ISO = "%Y-%m-%dT%H:%M:%SZ"
_DISPLAY_PLACES = 20


@dataclass(frozen=True)
class RatedLine:
    customer_id: str
    currency: str
    timezone: str
    period_start: date
    period_end: date
    segment_start: date
    segment_end: date
    window_start: str  # the usage window behind the line (UTC instants)
    window_end: str
    plan: str
    version: int
    pricebook_hash: str
    kind: str  # fee | usage | minimum | maximum
    name: str
    meter: str | None
    dimensions: dict[str, str | None]
    quantity: Decimal
    unit_price: Decimal | None
    tiers: tuple[pricing.TierUse, ...]
    proration: str | None  # "24/31": segment days / full period days
    precise_amount: str
    amount: Decimal
    amount_minor: int
    unmeterable: int = 0

    @property
    def pricebook(self) -> str:
        return f"{self.plan}@{self.version}"

    @classmethod
    def assemble(cls, shared: dict, **own: object) -> RatedLine:
        """A line from the values its segment's lines share and its own: every field, given
        once. The generated __init__ sets the 24 fields one object.__setattr__ at a time, five
        times slower, and rating makes a line per segment × charge × dimension value."""
        line = object.__new__(cls)
        line.__dict__.update(shared, **own)
        return line

    @property
    def billed_until_at(self) -> datetime:
        """When the usage behind the line stops: its segment's end, which is before the
        period's end when the subscription ended early."""
        return datetime.fromisoformat(self.window_end)  # '…Z' (_ISO): UTC; strptime is 20x slower

    def canonical(self) -> dict:
        """The line as JSON-ready data, decimals as strings; what the run hash covers."""
        return {
            "customer_id": self.customer_id, "currency": self.currency, "timezone": self.timezone,
            "period_start": self.period_start.isoformat(), "period_end": self.period_end.isoformat(),
            "segment_start": self.segment_start.isoformat(), "segment_end": self.segment_end.isoformat(),
            "window_start": self.window_start, "window_end": self.window_end,
            "pricebook": self.pricebook, "pricebook_hash": self.pricebook_hash,
            "kind": self.kind, "name": self.name, "meter": self.meter, "dimensions": self.dimensions,
            "quantity": text(self.quantity),
            "unit_price": None if self.unit_price is None else text(self.unit_price),
            "tiers": [_tier_json(t) for t in self.tiers],
            "proration": self.proration,
            "precise_amount": self.precise_amount,
            "amount": format(self.amount, "f"),  # at the currency's scale: "1.10", "2" for yen
            "amount_minor": self.amount_minor,
            "unmeterable": self.unmeterable,
        }

    def canonical_json(self, skip: tuple[str, ...] = ()) -> str:
        """`canonical()` as sorted-key compact JSON, without the `skip` keys: the exact text
        `json.dumps(..., sort_keys=True, separators=(",", ":"))` gives, which the run and
        invoice hashes have always covered. Rating and invoicing hash every line twice; built
        from values encoded once per line, this is several times faster than json.dumps."""
        values = self.__dict__.get("_encoded")
        if values is None:  # frozen (its dimensions dict is never changed either): computed once
            values = self._encoded_values()
            object.__setattr__(self, "_encoded", values)
        template, pick = _member_layout(skip)
        return template % pick(values)

    def _encoded_values(self) -> tuple[str, ...]:
        """The JSON text of each canonical() value, in _CANONICAL_KEYS order."""
        return _line_values(self, _segment_values(
            self.customer_id, self.currency, self.timezone, self.period_start, self.period_end, self.segment_start,
            self.segment_end, self.window_start, self.window_end, self.pricebook, self.pricebook_hash))


_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(RatedLine))


def _segment_values(customer_id: str, currency: str, timezone: str, period_start: date, period_end: date,
                    segment_start: date, segment_end: date, window_start: str, window_end: str, pricebook: str,
                    pricebook_hash: str) -> tuple[str, ...]:
    """The JSON text of the canonical() values every line of one segment shares; rating
    encodes them once per segment."""
    return (
        string(currency), string(customer_id), string(period_end.isoformat()), string(period_start.isoformat()),
        string(pricebook), string(pricebook_hash), string(segment_end.isoformat()), string(segment_start.isoformat()),
        string(timezone), string(window_end), string(window_start),
    )


def _line_values(line: RatedLine, segment: tuple[str, ...]) -> tuple[str, ...]:
    """Every canonical() value as JSON text, in _CANONICAL_KEYS order, the shared ones
    (`segment`, from _segment_values) included."""
    (currency, customer_id, period_end, period_start, pricebook, pricebook_hash, segment_end, segment_start,
     timezone, window_end, window_start) = segment
    return (
        string(format(line.amount, "f")),  # amount
        str(line.amount_minor),  # amount_minor
        currency,
        customer_id,
        compact(line.dimensions) if line.dimensions else "{}",  # dimensions
        string(line.kind),  # kind
        nullable(line.meter),  # meter
        string(line.name),  # name
        period_end,
        period_start,
        string(line.precise_amount),  # precise_amount
        pricebook,
        pricebook_hash,
        nullable(line.proration),  # proration
        string(text(line.quantity)),  # quantity
        segment_end,
        segment_start,
        compact([_tier_json(t) for t in line.tiers]) if line.tiers else "[]",  # tiers
        timezone,
        "null" if line.unit_price is None else string(text(line.unit_price)),  # unit_price
        str(line.unmeterable),  # unmeterable
        window_end,
        window_start,
    )


# canonical()'s keys, sorted: the order of _encoded_values() (a test holds them together).
_CANONICAL_KEYS = (
    "amount", "amount_minor", "currency", "customer_id", "dimensions", "kind", "meter", "name", "period_end",
    "period_start", "precise_amount", "pricebook", "pricebook_hash", "proration", "quantity", "segment_end",
    "segment_start", "tiers", "timezone", "unit_price", "unmeterable", "window_end", "window_start",
)


@functools.cache
def _member_layout(skip: tuple[str, ...]) -> tuple[str, Callable[[tuple], tuple]]:
    """A %-template of the object with the kept keys ('{"amount":%s,...}'), and a picker of
    their values: one formatting operation per line instead of a join of pairs."""
    kept = [i for i, key in enumerate(_CANONICAL_KEYS) if key not in skip]
    template = "{" + ",".join(string(_CANONICAL_KEYS[i]).replace("%", "%%") + ":%s" for i in kept) + "}"
    if len(kept) == len(_CANONICAL_KEYS):
        return template, lambda values: values
    if len(kept) < 2:  # itemgetter of one index gives the value itself, not a 1-tuple
        return template, lambda values: tuple(values[i] for i in kept)
    return template, operator.itemgetter(*kept)


# The text rated_lines stores for dimensions and tiers.
_sorted = json.JSONEncoder(sort_keys=True).encode
_plain_json = json.JSONEncoder().encode


def _tier_json(t: pricing.TierUse) -> dict:
    return {"tier": t.tier, "lower": text(t.lower), "up_to": None if t.up_to is None else text(t.up_to),
            "units": text(t.units), "unit_price": text(t.unit_price), "flat_fee": text(t.flat_fee), "amount": text(t.amount)}


@dataclass(frozen=True)
class RatingResult:
    period: str
    customers: tuple[str, ...] | None  # the --customer filter
    lines: tuple[RatedLine, ...]
    run_hash: str
    run_id: int | None  # None when nothing was recorded (simulate, or a dry run)
    customers_rated: int
    segments: int
    pricebooks: tuple[str, ...]  # plan@version used
    unmeterable: tuple[Unmeterable, ...] = ()
    open_sessions: tuple[OpenSession, ...] = ()
    newly_frozen: tuple[str, ...] = field(default=())
    # Events in the month from customer ids that were never imported: nobody is billed for them.
    unknown_customers: tuple[tuple[str, int], ...] = ()
    # Events in the month (UTC) of imported customers at times no subscription covers
    # (before the first one starts, after the last one ends, in a gap): not billed either.
    outside_subscriptions: tuple[tuple[str, int], ...] = ()
    # Customers whose usage could not be priced (customer_id, why): no lines, so no bill,
    # until their events are corrected; everyone else was rated.
    unpriceable: tuple[tuple[str, str], ...] = ()

    def total_minor(self, customer_id: str | None = None) -> dict[str, int]:
        """Σ rounded lines in minor units, per currency."""
        totals: dict[str, int] = {}
        for line in self.lines:
            if customer_id is None or line.customer_id == customer_id:
                totals[line.currency] = totals.get(line.currency, 0) + line.amount_minor
        return totals


@dataclass(frozen=True)
class _Job:
    """One segment to price: who, when, and the pricebook version in force."""

    customer: CustomerVersion
    segment: cycles.Segment
    full_days: int  # days of the full cycle period the segment belongs to
    book: PricebookVersion
    start_at: datetime = field(init=False)
    end_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        # Time-zone arithmetic once per segment, not once per line.
        object.__setattr__(self, "start_at", self.segment.start_at)
        object.__setattr__(self, "end_at", self.segment.end_at)

    @property
    def window(self) -> tuple[str, datetime, datetime]:
        return (self.customer.customer_id, self.start_at, self.end_at)


def _subscriptions(customer: CustomerVersion) -> list[cycles.Subscription]:
    return [
        cycles.Subscription(s["plan"], date.fromisoformat(s["start"]), date.fromisoformat(s["end"]) if s.get("end") else None)
        for s in customer.subscriptions
    ]


def customer_cycle(customer: CustomerVersion, catalog: Catalog, since: date | None = None) -> cycles.Cycle:
    """A customer's billing cycle: the cycle of its plans' pricebooks (they must agree).

    With `since`, only subscriptions still running on or after that day count: a plan on
    another cycle long ago does not block billing today.
    """
    current = [s for s in customer.subscriptions
               if since is None or not s.get("end") or date.fromisoformat(s["end"]) > since]
    found = {catalog.cycle(s["plan"]) for s in current} - {None}
    if len(found) > 1:
        plans = ", ".join(sorted({s["plan"] for s in current}))
        raise ConfigProblems([Problem(customer.source, None, f"customer {customer.customer_id}",
                                      f"its plans ({plans}) bill on different cycles ({', '.join(sorted(found))}); "
                                      "meterctl bills one customer on one cycle")])
    return found.pop() if found else cycles.Cycle.MONTHLY


def full_period_days(segment: cycles.Segment, cycle: cycles.Cycle, alignment: str) -> int:
    """Days of the full cycle period: a first calendar period starting mid-month is partial."""
    if alignment != "calendar":
        return segment.period.days
    whole = cycles.period_containing(cycle=cycle, alignment="calendar", anchor=date(1, 1, 1),
                                     tz=segment.period.tz, at=segment.period.start)
    return whole.days


def _select_customers(con: duckdb.DuckDBPyConnection, wanted: Sequence[str] | None) -> tuple[CustomerVersion, ...]:
    if not has_table(con, "customer_versions") or not con.execute("SELECT count(*) FROM customer_versions").fetchall()[0][0]:
        raise DataError("no customers imported yet: run 'meterctl customers import FILE' first")
    return select_customers(con, wanted)


def plan_jobs(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    month: str,
    customers: Sequence[str] | None = None,
    candidate: PricebookVersion | None = None,
    versions: Sequence[CustomerVersion] | None = None,
) -> tuple[_Job, ...]:
    """Every segment of every billing period ending in `month`, with its pricebook version.

    With a candidate, segments on the candidate's plan are priced by it instead of the
    version in force (a simulation). `versions` replaces the customers' latest imported
    versions (to re-derive an old invoice).
    """
    month_start, month_end = month_bounds(month)
    # A period ending in the month began at most one cycle before the month; looking back
    # that far also finds the last period of a subscription that ended early.
    year_back = date(month_start.year - 1, month_start.month, 1) - timedelta(days=1)
    jobs: list[_Job] = []
    problems: list[Problem] = []
    full_days: dict[tuple[cycles.Period, str, str], int] = {}
    for customer in versions if versions is not None else _select_customers(con, customers):
        try:
            if candidate and any(s["plan"] == candidate.plan for s in customer.subscriptions):
                cycle = candidate.book.billing_cycle
            else:
                cycle = customer_cycle(customer, catalog, since=year_back)
            months = {cycles.Cycle.MONTHLY: 1, cycles.Cycle.QUARTERLY: 3, cycles.Cycle.YEARLY: 12}[cycles.Cycle(cycle)]
            back = month_start.month - 1 - months
            lookback = date(month_start.year + back // 12, back % 12 + 1, 1) - timedelta(days=1)
            found = cycles.periods_for_customer(subscriptions=_subscriptions(customer), cycle=cycle,
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
            jobs.append(_Job(customer, segment, full_days[full], book))
    if problems:
        raise ConfigProblems(problems)
    return tuple(jobs)


# ---------------------------------------------------------------- pricing one segment


def _round_exact(value: Fraction, places: int, mode: str) -> Decimal:
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

    def __init__(self, job: _Job, usage_rows: dict[tuple[str, str, str], list]) -> None:
        self.job = job
        self.usage_rows = usage_rows  # (variant, customer, window_start) → rows
        self.lines: list[RatedLine] = []
        self.minor = job.book.book.minor_units
        self.mode = job.book.book.rounding
        self.proration = Fraction(job.segment.days, job.full_days)
        self.prorated = self.proration != 1
        self.proration_text = f"{job.segment.days}/{job.full_days}"
        self.window_start = job.start_at.strftime(_ISO)
        self.window_end = job.end_at.strftime(_ISO)
        customer, segment, book = job.customer, job.segment, job.book
        self.shared = dict(
            customer_id=customer.customer_id, currency=customer.currency, timezone=customer.timezone,
            period_start=segment.period.start, period_end=segment.period.end,
            segment_start=segment.start, segment_end=segment.end,
            window_start=self.window_start, window_end=self.window_end,
            plan=book.plan, version=book.version, pricebook_hash=book.content_hash,
        )
        self.shared_json = _segment_values(
            customer.customer_id, customer.currency, customer.timezone, segment.period.start, segment.period.end,
            segment.start, segment.end, self.window_start, self.window_end, book.ref, book.content_hash)

    def add(self, kind: str, name: str, meter: str | None, dimensions: dict, quantity: Decimal,
            unit_price: Decimal | None, tiers: tuple, exact: Fraction | Decimal, prorated: bool,
            unmeterable: int = 0) -> RatedLine:
        if isinstance(exact, Fraction):
            amount = _round_exact(exact, self.minor, self.mode)
            precise = _fraction_text(exact)
        else:
            amount = pricing.round_amount(exact, self.minor, self.mode)
            precise = text(exact)
        line = RatedLine.assemble(
            self.shared,
            kind=kind, name=name, meter=meter, dimensions=dimensions, quantity=quantity, unit_price=unit_price,
            tiers=tiers, proration=self.proration_text if prorated else None,
            precise_amount=precise, amount=amount, amount_minor=int(amount.scaleb(self.minor)),
            unmeterable=unmeterable,
        )
        # Both hashes cover every line: encode its values now, the segment's shared ones once.
        object.__setattr__(line, "_encoded", _line_values(line, self.shared_json))
        self.lines.append(line)
        return line

    def fees(self) -> None:
        prorated = self.prorated
        for fee in self.job.book.book.fees:
            exact: Fraction | Decimal = Fraction(fee.amount) * self.proration if prorated else fee.amount
            self.add("fee", fee.name, None, {}, _ONE, fee.amount, (), exact, prorated)

    def charge(self, charge: Charge) -> None:
        key = (_variant_name(charge), self.job.customer.customer_id, self.window_start)
        rows = self.usage_rows.get(key) or _NO_USAGE
        dimension = charge.dimension
        label, meter = charge.label, charge.meter
        charged: list[RatedLine] = []
        for dims, value, unmeterable in rows:
            quantity = value if value is not None else _ZERO
            dim_value = dims.get(dimension) if dimension else None
            try:
                price = charge.price(quantity, dim_value)
            except ValueError as error:
                raise DataError(f"customer {self.job.customer.customer_id}, meter {charge.meter}, "
                                f"period {self.job.segment.period}: {error}") from None
            charged.append(self.add("usage", label, meter, dict(dims), quantity, price.unit_price,
                                    price.tiers, price.amount, False, unmeterable))
        if charge.minimum is not None or charge.maximum is not None:
            self._limits(charge, charged)

    def _limits(self, charge: Charge, charged: list[RatedLine]) -> None:
        total = sum((line.amount for line in charged), _ZERO)
        prorated = self.prorated
        for kind, limit in (("minimum", charge.minimum), ("maximum", charge.maximum)):
            if limit is None:
                continue
            bound = Fraction(limit) * self.proration if prorated else Fraction(limit)
            rounded = _round_exact(bound, self.minor, self.mode)
            if (kind == "minimum" and total < rounded) or (kind == "maximum" and total > rounded):
                # The line brings the rounded total exactly to the rounded limit; rounding
                # `bound − total` instead could land a minor unit short under half_even. That
                # difference of rounded amounts is also its precise amount, so the line's
                # amount is its precise amount rounded, as on every other line.
                self.add(kind, f"{charge.label} {kind}", charge.meter, {}, _ONE, limit, (),
                         Decimal(rounded - total), prorated)


_ONE = Decimal(1)
_ZERO = Decimal(0)
_NO_USAGE = (({}, None, 0),)  # a charge with no usage rows still gets its line, at quantity 0


def _variant_name(charge: Charge) -> str:
    return f"{charge.meter}#{charge.dimension or ''}"


def _meter_of(variant: str) -> str:
    return variant.partition("#")[0]


def _meter_variants(jobs: Sequence[_Job], meters: Sequence[Meter]) -> list[Meter]:
    """One meter per (meter, price_by dimension) the jobs' pricebooks charge."""
    by_name = {m.name: m for m in meters}
    variants: dict[str, Meter] = {}
    for job in jobs:
        for charge in job.book.book.charges:
            name = _variant_name(charge)
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
        by_meter.setdefault(_meter_of(variant.name), []).append(variant)
    derived = {}
    for group in by_meter.values():
        whole = next((v for v in group if not v.group_by), None)
        split = next((v for v in group if v.group_by), None)
        if whole is not None and split is not None and whole.aggregation in ("count", "sum"):
            derived[whole.name] = split.name
    return derived


def rate_jobs(con: duckdb.DuckDBPyConnection, jobs: Sequence[_Job], meters: Sequence[Meter],
              as_of_batch: int | None = None, unpriceable: list[tuple[str, str]] | None = None,
              ) -> tuple[list[RatedLine], object]:
    """Price every job; returns the lines (in a fixed order) and the usage result behind them.

    `as_of_batch` prices the events stored by that ingest batch only (see usage()). A
    customer whose usage cannot be priced (a negative total on a tiered charge) raises
    DataError; given an `unpriceable` list, that customer gets no lines at all (no partial
    bill) and (customer_id, why) is appended to it instead, and the others are priced."""
    variants = _meter_variants(jobs, meters)
    derived = _derivable(variants)
    rows: dict[tuple[str, str, str], list] = {}
    found = None
    if jobs and variants:
        windows = [job.window for job in jobs]
        found = usage(con, [v for v in variants if v.name not in derived], window="period",
                      start=min(w[1] for w in windows), end=max(w[2] for w in windows),
                      periods=windows, as_of_batch=as_of_batch)  # the windows already name the customers
        sums: dict[tuple[str, str, str], list] = {}
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
    lines: list[RatedLine] = []
    ordered = sorted(jobs, key=lambda j: (j.customer.customer_id, j.segment.start))
    for customer_id, customer_jobs in itertools.groupby(ordered, key=lambda j: j.customer.customer_id):
        priced: list[RatedLine] = []
        try:
            for job in customer_jobs:
                builder = _Builder(job, rows)
                builder.fees()
                for charge in job.book.book.charges:
                    builder.charge(charge)
                priced.extend(builder.lines)
        except DataError as error:
            if unpriceable is None:
                raise
            unpriceable.append((customer_id, str(error)))
            continue
        lines.extend(priced)
    return lines, found


def run_hash(period: str, customers: Sequence[str] | None, lines: Sequence[RatedLine]) -> str:
    """sha256 of {"customers": ..., "lines": [...], "period": ...} as canonical JSON. The
    document is hashed in three pieces (keys in sorted order) rather than built whole:
    the lines make megabytes, and every concatenation would copy them."""
    digest = hashlib.sha256(('{"customers":' + compact(sorted(customers) if customers else None) + ',"lines":[').encode())
    digest.update(",".join([line.canonical_json() for line in lines]).encode())
    digest.update(('],"period":' + string(period) + "}").encode())
    return digest.hexdigest()


def rate(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    meters: Sequence[Meter],
    period: str,
    *,
    customers: Sequence[str] | None = None,
    record: bool = True,
    candidate: PricebookVersion | None = None,
    check: Callable[[Sequence[RatedLine]], None] | None = None,
    reuse_identical_run: bool = False,
) -> RatingResult:
    """Rate every billing period ending in month `period` (YYYY-MM); record the run unless asked not to.

    `check` sees the lines before anything is recorded, and may refuse them by raising.
    `reuse_identical_run` records nothing when a recorded run already holds these very lines
    and returns that run's id: a run recorded from the same inputs (see _inputs_digest) gives
    its lines without rating the month again; otherwise the month is rated and compared with
    the latest run (see _identical_run).
    Not to be called inside an open transaction on `con`: the unbilled-event checks read
    through a cursor of their own, which sees committed data only.
    """
    with _Unbilled(con, period, meters, customers) as unbilled:
        jobs = plan_jobs(con, catalog, period, customers, candidate)
        used = sorted({job.book.ref: job.book for job in jobs}.values(), key=lambda v: (v.plan, v.version))
        check_frozen(con, catalog, {v.plan for v in used if v is not candidate})
        inputs = reused = as_of_batch = None
        if record and jobs:
            # The events rated: those of every ingest batch so far. The digest, the reuse checks
            # and the recorded run all name this one batch.
            as_of_batch = _last_batch(con)
            inputs = _inputs_digest(period, customers, jobs, meters, as_of_batch)
            if reuse_identical_run:
                reused = _recorded_from(con, period, customers, inputs)
        if reused is not None:
            run_id, lines, digest, unmeterable, open_sessions, unpriceable = reused
        else:
            failed: list[tuple[str, str]] = []
            lines, found = rate_jobs(con, jobs, meters, unpriceable=failed)
            unpriceable = tuple(failed)
            digest = run_hash(period, customers, lines)
            # Two variants of one meter (priced by a dimension for some plans, whole for others)
            # see the same events: report them once.
            unmeterable = tuple({(u.customer_id, u.meter): u for u in (
                dataclasses.replace(u, meter=_meter_of(u.meter)) for u in (found.unmeterable if found else ()))}.values())
            open_sessions = tuple({(s.customer_id, s.meter, s.session): s for s in (
                dataclasses.replace(s, meter=_meter_of(s.meter)) for s in (found.open_sessions if found else ()))}.values())
        unknown_customers, outside_subscriptions = unbilled.result()
    if check is not None:
        check(lines)
    newly_frozen: tuple[str, ...] = ()
    if reused is None:
        run_id = None
        if record and jobs:  # no period ends in the month: nothing worth a rating run
            if reuse_identical_run:
                run_id = _identical_run(con, period, customers, lines, digest, used, meters, as_of_batch)
            if run_id is None:
                run_id, newly_frozen = _record(con, period, customers, lines, digest, used, meters, as_of_batch,
                                               inputs, _notes_json(unmeterable, open_sessions, unpriceable))
    set_aside = {customer_id for customer_id, _ in unpriceable}
    rated_jobs = [job for job in jobs if job.customer.customer_id not in set_aside]
    return RatingResult(
        period=period,
        customers=tuple(customers) if customers else None,
        lines=tuple(lines),
        run_hash=digest,
        run_id=run_id,
        customers_rated=len({job.customer.customer_id for job in rated_jobs}),
        segments=len(rated_jobs),
        pricebooks=tuple(v.ref for v in used),
        unmeterable=unmeterable,
        open_sessions=open_sessions,
        newly_frozen=newly_frozen,
        unknown_customers=unknown_customers,
        outside_subscriptions=outside_subscriptions,
        unpriceable=unpriceable,
    )


# ---------------------------------------------------------------- reusing a recorded run


def _last_batch(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(batch_id), 0) FROM ingest_batches").fetchall()[0][0]


def _inputs_digest(period: str, customers: Sequence[str] | None, jobs: Sequence[_Job], meters: Sequence[Meter],
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
        "meters": _meters_json(meters),
        "period": period,
    }
    return hashlib.sha256(compact(document).encode()).hexdigest()


def _recorded_from(con: duckdb.DuckDBPyConnection, period: str, customers: Sequence[str] | None, inputs: str):
    """The latest run recorded from these very inputs, with its lines read back from the store
    (run id, lines, run hash, unmeterable, open sessions), or None. The lines read back must
    give the run's hash again, or the run is not used: rating the month again is then the
    safe way, and costs only time."""
    rows = con.execute(
        "SELECT run_id, run_hash, line_count, CAST(notes AS VARCHAR) FROM rating_runs WHERE inputs_sha256 = $inputs "
        "AND period = $period AND CAST(customers AS VARCHAR) IS NOT DISTINCT FROM $customers "
        "ORDER BY run_id DESC LIMIT 1",
        {"inputs": inputs, "period": period, "customers": _customers_json(customers)},
    ).fetchall()
    if not rows:
        return None
    run_id, digest, count, notes = rows[0]
    lines = _stored_lines(con, run_id)
    if len(lines) != count or run_hash(period, customers, lines) != digest:
        return None
    noted = json.loads(notes) if notes else {}
    return (run_id, lines, digest, tuple(Unmeterable(*u) for u in noted.get("unmeterable", ())),
            tuple(OpenSession(*o) for o in noted.get("open_sessions", ())),
            tuple((customer, why) for customer, why in noted.get("unpriceable", ())))


def _stored_lines(con: duckdb.DuckDBPyConnection, run_id: int) -> list[RatedLine]:
    """A run's lines as rating made them: amounts at their currency's scale again, tiers as
    TierUse (decimals are compared by value; the hashes write them with text())."""
    rows = con.execute(
        "SELECT customer_id, currency, timezone, period_start, period_end, segment_start, segment_end, "
        f"strftime(window_start, '{_ISO}'), strftime(window_end, '{_ISO}'), plan, version, pricebook_hash, kind, name, "
        "meter, dimensions, quantity, unit_price, tiers, proration, precise_amount, amount, amount_minor, unmeterable "
        "FROM rated_lines WHERE run_id = ? ORDER BY line_no",
        [run_id],
    ).fetchall()
    quanta = {currency: Decimal(1).scaleb(-pricing.minor_units(currency)) for currency in {row[1] for row in rows}}
    lines = []
    new = object.__new__
    for row in rows:
        line = new(RatedLine)
        line.__dict__.update(zip(_LINE_FIELDS, (
            *row[:15], json.loads(row[15]) if row[15] != "{}" else {}, row[16], row[17],
            tuple(_tier_use(t) for t in json.loads(row[18])) if row[18] != "[]" else (), row[19], row[20],
            row[21].quantize(quanta[row[1]]), row[22], row[23]), strict=True))
        lines.append(line)
    return lines


def _tier_use(stored: dict) -> pricing.TierUse:
    def number(key: str) -> Decimal | None:
        return None if stored[key] is None else Decimal(stored[key])

    return pricing.TierUse(stored["tier"], number("lower"), number("up_to"), number("units"), number("unit_price"),
                           number("flat_fee"), number("amount"))


def _notes_json(unmeterable: Sequence[Unmeterable], open_sessions: Sequence[OpenSession],
                unpriceable: Sequence[tuple[str, str]]) -> str:
    return json.dumps({"unmeterable": [dataclasses.astuple(u) for u in unmeterable],
                       "open_sessions": [dataclasses.astuple(o) for o in open_sessions],
                       "unpriceable": [list(u) for u in unpriceable]})


class _Unbilled:
    """The unbilled-event checks, run on their own cursor while Python prices the lines:
    DuckDB works outside the GIL, so the two overlap instead of adding up. The cursor is a
    connection of its own, so it sees committed data only: rate() is never called inside a
    transaction of `con` (build_invoices opens its transaction after rating)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, period: str, meters: Sequence[Meter],
                 customers: Sequence[str] | None) -> None:
        self._cursor = store.cursor(con)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterctl-unbilled")
        self._future = self._pool.submit(self._check, period, meters, customers)

    def _check(self, period: str, meters: Sequence[Meter], customers: Sequence[str] | None) -> _Counts:
        unknown = () if customers else _unknown_customers(self._cursor, period, meters)
        return unknown, _outside_subscriptions(self._cursor, period, meters, customers)

    def result(self) -> _Counts:
        """(events of customers never imported, events outside every subscription), per customer."""
        return self._future.result()

    def __enter__(self) -> _Unbilled:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if error_type is not None:  # pricing failed (or Ctrl-C): the counts are not wanted
            self._cursor.interrupt()
        self._pool.shutdown(wait=True)
        self._cursor.close()


_Counts = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]


def _outside_subscriptions(con: duckdb.DuckDBPyConnection, period: str, meters: Sequence[Meter],
                           customers: Sequence[str] | None) -> tuple[tuple[str, int], ...]:
    """Metered events of the month (UTC) that fall outside every subscription of their customer."""
    month_start, month_end = (datetime.combine(d, datetime.min.time(), UTC) for d in month_bounds(period))
    # The uncovered stretches of the month, per customer (usually none): joining events to
    # these few rows is cheap, where "not in any subscription" per event would not be.
    gaps: list[tuple[str, datetime, datetime]] = []
    for customer in list_customers(con):
        if customers and customer.customer_id not in set(customers):
            continue
        tz = cycles.zone(customer.timezone)
        covered = sorted(
            (datetime.fromisoformat(sub["start"]).replace(tzinfo=tz).astimezone(UTC),
             datetime.fromisoformat(sub["end"]).replace(tzinfo=tz).astimezone(UTC) if sub.get("end") else month_end)
            for sub in customer.subscriptions)
        cursor = month_start
        for start, end in covered:
            if start > cursor:
                gaps.append((customer.customer_id, cursor, min(start, month_end)))
            cursor = max(cursor, end)
            if cursor >= month_end:
                break
        if cursor < month_end:
            gaps.append((customer.customer_id, cursor, month_end))
    gaps = [g for g in gaps if g[1] < g[2]]
    if not gaps:
        return ()
    names = sorted({m.event_name for m in meters} | {m.stop_event for m in meters if m.stop_event})
    sql.temp_table(con, "uncovered", {
        "customer_id": ("VARCHAR", [g[0] for g in gaps]),
        "start_at": ("TIMESTAMPTZ", [g[1] for g in gaps]),
        "end_at": ("TIMESTAMPTZ", [g[2] for g in gaps]),
    })
    try:
        rows = con.execute(
            "SELECT e.customer_id, count(*) FROM events AS e JOIN uncovered AS u "
            "ON u.customer_id = e.customer_id AND e.ts >= u.start_at AND e.ts < u.end_at "
            "WHERE e.event_name IN (SELECT unnest($names)) GROUP BY e.customer_id ORDER BY e.customer_id",
            {"names": names},
        ).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS temp.uncovered")
    return tuple((customer, count) for customer, count in rows)


def _unknown_customers(con: duckdb.DuckDBPyConnection, period: str, meters: Sequence[Meter]) -> tuple[tuple[str, int], ...]:
    """Metered events of the month (UTC) whose customer id is not imported."""
    if not has_table(con, "customer_versions"):
        return ()
    month_start, month_end = month_bounds(period)
    names = sorted({m.event_name for m in meters} | {m.stop_event for m in meters if m.stop_event})
    rows = con.execute(
        "SELECT customer_id, count(*) FROM events "
        # IN (SELECT unnest(...)) rather than list_contains: one hash lookup per event, half the time.
        "WHERE ts >= CAST($start AS TIMESTAMPTZ) AND ts < CAST($end AS TIMESTAMPTZ) AND event_name IN (SELECT unnest($names)) "
        "AND customer_id NOT IN (SELECT customer_id FROM customer_versions) GROUP BY customer_id ORDER BY customer_id",
        {"start": month_start.isoformat(), "end": month_end.isoformat(), "names": names},
    ).fetchall()
    return tuple((customer, count) for customer, count in rows)


# The rated_lines columns after run_id, in table order, with their types: the shape of the
# JSON object _record sends for each line.
_STORED = (
    ("line_no", "INTEGER"), ("customer_id", "VARCHAR"), ("currency", "VARCHAR"), ("timezone", "VARCHAR"),
    ("period_start", "DATE"), ("period_end", "DATE"), ("segment_start", "DATE"), ("segment_end", "DATE"),
    ("window_start", "TIMESTAMPTZ"), ("window_end", "TIMESTAMPTZ"), ("plan", "VARCHAR"), ("version", "INTEGER"),
    ("pricebook_hash", "VARCHAR"), ("kind", "VARCHAR"), ("name", "VARCHAR"), ("meter", "VARCHAR"),
    ("dimensions", "VARCHAR"), ("quantity", "DECIMAL(38, 18)"), ("unit_price", "DECIMAL(38, 18)"), ("tiers", "VARCHAR"),
    ("proration", "VARCHAR"), ("precise_amount", "VARCHAR"), ("amount", "DECIMAL(38, 18)"),
    ("amount_minor", "BIGINT"), ("unmeterable", "BIGINT"),
)
_STORED_SHAPE = json.dumps(dict(_STORED))
# One list parameter of JSON objects, each parsed on its own row: linear in the number of
# lines and spread over DuckDB's threads (one document of them all is parsed as one value,
# slower the bigger it is, and inside the memory limit).
_INSERT_LINES = (f"INSERT INTO rated_lines (run_id, {', '.join(name for name, _ in _STORED)}) "
                 "SELECT $run, unnest(from_json_strict(line, $shape)) FROM (SELECT unnest($lines) AS line)")
# Values stored as the hashes encode them (canonical JSON), taken from a line's encoded values;
# the rest are the template's first five.
_OWN = ("line_no", "plan", "version", "dimensions", "tiers")
_REUSED = tuple(name for name, _ in _STORED if name not in _OWN)
_pick_reused = operator.itemgetter(*(_CANONICAL_KEYS.index(name) for name in _REUSED))
_STORED_TEMPLATE = ('{"line_no":%d,"plan":%s,"version":%d,"dimensions":%s,"tiers":%s,'
                    + ",".join(f"{string(name)}:%s" for name in _REUSED) + "}")


def _line_objects(lines: Sequence[RatedLine]) -> list[str]:
    """Each line as the JSON object that _record inserts. Most values are the JSON text the
    hashes already encoded; dimensions and tiers are stored as the text `_sorted` and
    `_plain_json` write, so they go as strings. Decimals are strings, read exactly by
    `from_json_strict`, which fails (rather than giving NULL) on a value too large for its column."""
    template = _STORED_TEMPLATE
    return [
        template % (number, string(line.plan), line.version,
                    string(_sorted(line.dimensions)) if line.dimensions else '"{}"',
                    string(_plain_json([_tier_json(t) for t in line.tiers])) if line.tiers else '"[]"',
                    *_pick_reused(line.__dict__.get("_encoded") or line._encoded_values()))
        for number, line in enumerate(lines, 1)
    ]


def _meters_json(meters: Sequence[Meter]) -> str:
    return json.dumps([m.model_dump(mode="json") for m in meters], sort_keys=True)


def _identical_run(con: duckdb.DuckDBPyConnection, period: str, customers: Sequence[str] | None,
                   lines: Sequence[RatedLine], digest: str, used: Sequence[PricebookVersion],
                   meters: Sequence[Meter], as_of_batch: int) -> int | None:
    """A run of this month and customer filter that holds exactly these lines (same run hash
    and count), priced with the same pricebook versions and meters from the same stored
    events (no ingest since): recording this one would only copy it. The latest such run."""
    return con.execute(
        "SELECT max(r.run_id) FROM rating_runs AS r WHERE r.period = $period "
        "AND CAST(r.customers AS VARCHAR) IS NOT DISTINCT FROM $customers "
        "AND r.run_hash = $hash AND r.line_count = $count AND CAST(r.meters AS VARCHAR) = $meters "
        "AND r.as_of_batch = $as_of_batch "
        "AND (SELECT list_sort(list(p.plan || '@' || CAST(p.version AS VARCHAR))) FROM rating_run_pricebooks AS p "
        "     WHERE p.run_id = r.run_id) = $refs",
        {"period": period, "customers": _customers_json(customers), "hash": digest, "count": len(lines),
         "meters": _meters_json(meters), "refs": sorted(v.ref for v in used), "as_of_batch": as_of_batch},
    ).fetchall()[0][0]


def _customers_json(customers: Sequence[str] | None) -> str | None:
    return json.dumps(sorted(customers)) if customers else None


def _record(con, period, customers, lines, digest, used, meters, as_of_batch, inputs, notes) -> tuple[int, tuple[str, ...]]:
    con.execute("BEGIN TRANSACTION")
    try:
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM rating_runs").fetchall()[0][0]
        before = set(con.execute("SELECT plan || '@' || version FROM pricebook_versions").fetchall())
        freeze(con, used, run_id)
        newly = tuple(v.ref for v in used if (v.ref,) not in before)
        for v in used:
            con.execute("INSERT INTO rating_run_pricebooks VALUES (?, ?, ?)", [run_id, v.plan, v.version])
        con.execute(
            "INSERT INTO rating_runs (run_id, period, customers, run_hash, line_count, meters, as_of_batch, created_at, "
            "inputs_sha256, notes) SELECT $run, $period, $customers, $hash, $count, $meters, $as_of_batch, now(), "
            "$inputs, $notes",
            {"run": run_id, "period": period, "customers": _customers_json(customers), "hash": digest,
             "count": len(lines), "meters": _meters_json(meters), "as_of_batch": as_of_batch, "inputs": inputs,
             "notes": notes},
        )
        try:
            con.execute(_INSERT_LINES, {"run": run_id, "lines": _line_objects(lines), "shape": _STORED_SHAPE})
        except duckdb.InvalidInputException as error:
            raise DataError("a rated line does not fit the store's columns (DECIMAL(38, 18) quantities, prices and "
                            f"amounts; 64-bit minor units): {error}") from None
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return run_id, newly
