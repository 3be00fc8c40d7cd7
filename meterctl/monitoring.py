"""meterctl's own health, as Prometheus reads it (`meterctl metrics`) and as cron reads it
(`meterctl health`).

Everything comes from what the store records, never from the whole event history: the
ingest batches (outcomes, and for the last 24 hours the lag of the events they accepted),
the ledger (last runs, invoices, wallets), and for the open and the last closed month the
one-pass tally of their events (unbilled events, and the difference late events would make
to finalized invoices).

Per-customer series (usage so far, burn rate, wallets, entitlements) number customers ×
meters (or features, or currencies); `customer_series=False` leaves them out for tenants
too many for a Prometheus to keep.

Burn-rate deviation: a customer's usage of a meter over the last 24 hours, divided by its
daily mean over the 7 days before, or by `burn_floor` when that mean is smaller, so that a
customer going from 2 calls a day to 10 does not page anyone; 1 is a usual day, 3 a spike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from meterctl.billing_terms import Tax
from meterctl.customers import CustomerVersion, billing_segments
from meterctl.cycles import add_months, zone
from meterctl.errors import DataError, MeterctlError
from meterctl.meters import Meter
from meterctl.pricebook import Catalog
from meterctl.rating.plan import customer_cycle
from meterctl.reconcile import LateInvoice, Watch
from meterctl.store.ports import EventStore, IngestReadings, Ledger
from meterctl.unbilled import Unbilled
from meterctl.usage import BillingWindow, UsageQuery

RECENT = timedelta(hours=24)
BURN_DAYS = 7
BURN_FLOOR = Decimal(10)


@dataclass(frozen=True)
class CustomerValue:
    customer_id: str
    key: str  # the meter, feature or currency
    value: Decimal


@dataclass(frozen=True)
class Readings:
    at: datetime
    ingest: IngestReadings
    last_success: dict[str, datetime]  # per command: ingest, rate, invoice, finalize
    months: tuple[str, str]  # the open month, the last closed one
    unbilled: tuple[Unbilled, ...]  # of those months
    late: tuple[tuple[str, LateInvoice], ...]  # (month, invoice) that late events would change
    customer_series: bool
    usage: tuple[CustomerValue, ...] = ()  # each meter over the billing period open at `at`, so far
    burn_rate_deviation: tuple[CustomerValue, ...] = ()
    wallet_available: tuple[CustomerValue, ...] = ()
    entitlement_usage_ratio: tuple[CustomerValue, ...] = ()

    @property
    def duplicate_ratio(self) -> Decimal:
        """Duplicates / lines read, over the ingests of the last 24 hours (0 when none)."""
        return _ratio(self.ingest.recent_duplicates, self.ingest.recent_lines)

    @property
    def dead_letter_ratio(self) -> Decimal:
        return _ratio(self.ingest.recent_dead_lettered, self.ingest.recent_lines)

    def gap_minor(self) -> dict[tuple[str, str], int]:
        """(month, currency) → Σ the differences late events would make to finalized invoices."""
        found: dict[tuple[str, str], int] = {(month, invoice.currency): 0 for month, invoice in self.late}
        for month, invoice in self.late:
            found[(month, invoice.currency)] += invoice.delta_minor or 0
        return found


@dataclass(frozen=True)
class Metrics:
    readings: Readings
    text: bytes  # the Prometheus exposition
    output: str | None = None  # where it was written


def _ratio(part: int, whole: int) -> Decimal:
    return Decimal(part) / Decimal(whole) if whole else Decimal(0)


def months_watched(at: datetime) -> tuple[str, str]:
    """The month of `at` (UTC) and the one before."""
    day = at.date()
    before = add_months(day.replace(day=1), -1)
    return f"{day:%Y-%m}", f"{before:%Y-%m}"


def read(events: EventStore, ledger: Ledger, catalog: Catalog, meters: Sequence[Meter], at: datetime, *,
         ignored: Sequence[str] = (), customer_series: bool = True, burn_floor: Decimal = BURN_FLOOR,
         taxes: Mapping[str, Tax] | None = None) -> Readings:
    ingest = events.ingest_readings(at - RECENT, at)
    last = dict(ledger.last_successes())
    if ingest.last_ingest_at is not None:
        last["ingest"] = ingest.last_ingest_at
    customers = ledger.latest_customers()
    months = months_watched(at)
    # Both months' events are tallied in the background while the rest is read.
    watches: list[Watch] = []
    try:
        for month in months if customers else ():
            watches.append(Watch(events, ledger, catalog, meters, month, ignored=ignored, now=at, taxes=taxes))
        per_customer: tuple[tuple[CustomerValue, ...], ...] = ((), (), (), ())
        if customer_series and customers:
            usage, burn = _usage(events, catalog, meters, customers, at, burn_floor)
            per_customer = (usage, burn, _wallets(ledger, customers, at),
                            _entitlements(events, catalog, meters, customers, at))
        unbilled: list[Unbilled] = []
        late: list[tuple[str, LateInvoice]] = []
        for month, watched in zip(months, watches, strict=False):
            found, changed = watched.result()
            unbilled.append(found)
            late += [(month, invoice) for invoice in changed]
    except BaseException:
        for watched in watches:
            watched.cancel()
        raise
    return Readings(at, ingest, last, months, tuple(unbilled), tuple(late), customer_series, *per_customer)


def _usage(events: EventStore, catalog: Catalog, meters: Sequence[Meter], customers: Sequence[CustomerVersion],
           at: datetime, burn_floor: Decimal) -> tuple[tuple[CustomerValue, ...], tuple[CustomerValue, ...]]:
    """Each customer × meter: usage over its open billing period so far, and the burn-rate
    deviation; one aggregation over every customer's windows (no dimensions: a meter's whole)."""
    windows: list[BillingWindow] = []
    period_start: dict[str, datetime] = {}
    # The last 24 hours, then the 7 days before: the same windows for every customer.
    days = [(at - (n + 1) * timedelta(days=1), at - n * timedelta(days=1)) for n in range(BURN_DAYS + 1)]
    for customer in customers:
        day = at.astimezone(zone(customer.timezone)).date()
        try:
            segments = billing_segments([customer], cycle=customer_cycle(customer, catalog), start=day,
                                        end=day + timedelta(days=1))
        except (MeterctlError, ValueError):
            segments = ()  # a plan no pricebook defines: no period to follow
        if segments:
            start = segments[0][1].period.start_at
            if start < at:
                period_start[customer.customer_id] = start
                windows.append(BillingWindow(customer.customer_id, start, at))
        windows += [BillingWindow(customer.customer_id, start, end) for start, end in days]
    whole = tuple(m.model_copy(update={"group_by": ()}) for m in meters)
    start = min(w.start for w in windows)
    rows, _ = events.aggregate(UsageQuery(whole, "period", start, at, "UTC", None, tuple(windows), None))
    day_of = {start: n for n, (start, _) in enumerate(days)}
    in_period: dict[tuple[str, str], Decimal] = {}
    daily: dict[tuple[str, str], list[Decimal]] = {}
    for index, customer_id, w_start, w_end, _, value, _ in rows:
        if value is None:
            continue
        key = (customer_id, whole[index].name)
        if w_end == at and period_start.get(customer_id) == w_start:
            in_period[key] = value
        n = day_of.get(w_start)
        if n is not None and w_end == days[n][1]:
            daily.setdefault(key, [Decimal(0)] * len(days))[n] = value
    usage, burn = [], []
    nothing = [Decimal(0)] * len(days)
    for customer in customers:
        cid = customer.customer_id
        for meter in whole:
            key = (cid, meter.name)
            if cid in period_start:
                usage.append(CustomerValue(cid, meter.name, in_period.get(key, Decimal(0))))
            found = daily.get(key, nothing)
            mean = sum(found[1:], Decimal(0)) / BURN_DAYS
            burn.append(CustomerValue(cid, meter.name, found[0] / max(mean, burn_floor)))
    return tuple(usage), tuple(burn)


def _wallets(ledger: Ledger, customers: Sequence[CustomerVersion], at: datetime) -> tuple[CustomerValue, ...]:
    from meterctl.wallets import balances

    with_grants = {g.customer_id for g in ledger.wallet_grants()}
    chosen = [c for c in customers if c.customer_id in with_grants]
    return tuple(CustomerValue(b.customer_id, b.currency, b.available) for b in balances(ledger, chosen, at)) \
        if chosen else ()


def _entitlements(events: EventStore, catalog: Catalog, meters: Sequence[Meter], customers: Sequence[CustomerVersion],
                  at: datetime) -> tuple[CustomerValue, ...]:
    from meterctl.entitlements import states

    return tuple(CustomerValue(s.answer.customer_id, s.answer.feature, s.percent / 100)
                 for s in states(events, catalog, {m.name: m for m in meters}, customers, at)
                 if s.percent is not None)


# ---------------------------------------------------------------- health

DEFAULT_MAX_LAG = timedelta(minutes=5)
DEFAULT_MAX_DEAD_LETTER_RATIO = Decimal("0.01")
DEFAULT_MAX_AGE_LAST_INGEST = timedelta(hours=1)
@dataclass(frozen=True)
class HealthCheck:
    name: str
    ok: bool
    limit: str
    value: str
    detail: str

    def document(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "limit": self.limit, "value": self.value, "detail": self.detail}


@dataclass(frozen=True)
class Health:
    at: datetime
    checks: tuple[HealthCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def document(self) -> dict[str, object]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "ok": self.ok,
                "checks": [check.document() for check in self.checks]}

    def refusal(self) -> DataError | None:
        failing = [check for check in self.checks if not check.ok]
        if not failing:
            return None
        return DataError("unhealthy: " + "; ".join(f"{check.name}: {check.detail}" for check in failing))


def health(readings: Readings, *, max_lag: timedelta = DEFAULT_MAX_LAG,
           max_dead_letter_ratio: Decimal = DEFAULT_MAX_DEAD_LETTER_RATIO,
           max_age_last_ingest: timedelta = DEFAULT_MAX_AGE_LAST_INGEST) -> Health:
    """The thresholds of the shipped alert rules, as checks cron can act on."""
    ingest = readings.ingest
    lag = ingest.lag_seconds[1] if ingest.lag_seconds is not None else None  # the 99th percentile
    limit = Decimal(int(max_lag.total_seconds()))
    checks = [HealthCheck(
        "ingest_lag", lag is None or lag <= limit, f"{limit}s", "none" if lag is None else f"{lag}s",
        "no event ingested in the last 24 hours" if lag is None else
        f"99% of the last 24 hours' events were ingested within {lag}s of their time (at most {limit}s)")]
    ratio = readings.dead_letter_ratio
    checks.append(HealthCheck(
        "dead_letter_ratio", ratio <= max_dead_letter_ratio, str(max_dead_letter_ratio), f"{ratio:.6f}",
        f"{ingest.recent_dead_lettered} of {ingest.recent_lines} lines of the last 24 hours were dead-lettered "
        "(see 'meterctl dlq list')"))
    age_limit = int(max_age_last_ingest.total_seconds())
    if ingest.last_ingest_at is None:
        checks.append(HealthCheck("last_ingest", False, f"{age_limit}s", "never", "nothing was ever ingested"))
    else:
        age = int((readings.at - ingest.last_ingest_at).total_seconds())
        checks.append(HealthCheck("last_ingest", age <= age_limit, f"{age_limit}s", f"{age}s",
                                  f"the last ingest ran {age}s ago (at most {age_limit}s)"))
    gaps = {key: minor for key, minor in readings.gap_minor().items() if minor}
    checks.append(HealthCheck(
        "reconciliation_gap", not gaps, "0", str(sum(abs(m) for m in gaps.values())),
        "; ".join(f"{month} {currency}: late events would change finalized invoices by {minor} minor units "
                  f"(see 'meterctl reconcile --period {month}')" for (month, currency), minor in sorted(gaps.items()))
        or "no late event changes a finalized invoice"))
    return Health(readings.at, tuple(checks))
