"""Rated lines and their canonical encoding: what a rating run's hash covers.

A rated line is a segment's context (customer, period, segment, usage window, pricebook
version: the same for every line of one priced segment) and the line's own values (kind,
meter, dimensions, quantity, price, tiers, amounts). Rating makes a line per segment ×
charge × dimension value, so the context is one shared object per segment.

The run hash and the invoice content hash are sha256 over canonical JSON: the text
`json.dumps(line.canonical(), sort_keys=True, separators=(",", ":"))` gives. Stores keep
those hashes, so these bytes must never change. Rating and invoicing hash every line twice;
the JSON text of each value is made once (the context's once per segment) and laid out by
a template, several times faster than json.dumps.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from meterctl.canonical_json import compact, nullable, string
from meterctl.instants import iso
from meterctl.pricing import TierUse, text

Owner = TypeVar("Owner")
Value = TypeVar("Value")


class once(Generic[Owner, Value]):
    """A value derived from frozen fields, computed on first use and kept in the instance's
    __dict__ (which then answers every later read). What functools.cached_property does,
    without the lock Python 3.11 takes on each first read: rating reads it once per line."""

    def __init__(self, compute: Callable[[Owner], Value]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, instance: None, owner: type[Owner]) -> once[Owner, Value]: ...
    @overload
    def __get__(self, instance: Owner, owner: type[Owner]) -> Value: ...

    def __get__(self, instance: Owner | None, owner: type[Owner]) -> once[Owner, Value] | Value:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True)
class LineContext:
    """What every line of one priced segment shares."""

    customer_id: str
    currency: str
    timezone: str
    period_start: date  # the billing period, local dates [start, end)
    period_end: date
    segment_start: date  # the part billed on this plan (a plan change splits a period)
    segment_end: date
    window_start: datetime  # the usage window behind the lines: the segment's instants (UTC)
    window_end: datetime
    plan: str
    version: int
    pricebook_hash: str

    @property
    def pricebook(self) -> str:
        return f"{self.plan}@{self.version}"

    @once
    def encoded(self) -> tuple[str, ...]:
        """The JSON text of the canonical values the lines share (see RatedLine.encoded)."""
        return (
            string(self.currency), string(self.customer_id), string(self.period_end.isoformat()),
            string(self.period_start.isoformat()), string(self.pricebook), string(self.pricebook_hash),
            string(self.segment_end.isoformat()), string(self.segment_start.isoformat()), string(self.timezone),
            string(iso(self.window_end)), string(iso(self.window_start)),
        )


@dataclass(frozen=True)
class RatedLine:
    context: LineContext
    kind: str  # fee | usage | minimum | maximum
    name: str
    meter: str | None
    dimensions: Mapping[str, str | None]  # {"model": "gpt-large"} where the charge prices by it
    quantity: Decimal
    unit_price: Decimal | None
    tiers: tuple[TierUse, ...]
    proration: str | None  # "24/31": segment days / full period days
    precise_amount: str  # exact, unrounded (to 20 places where it does not terminate)
    amount: Decimal  # rounded once, to the currency's minor units
    amount_minor: int
    unmeterable: int = 0  # events in the window whose meter value was unusable

    # The context's values, read as the line's own.
    @property
    def customer_id(self) -> str:
        return self.context.customer_id

    @property
    def currency(self) -> str:
        return self.context.currency

    @property
    def timezone(self) -> str:
        return self.context.timezone

    @property
    def period_start(self) -> date:
        return self.context.period_start

    @property
    def period_end(self) -> date:
        return self.context.period_end

    @property
    def segment_start(self) -> date:
        return self.context.segment_start

    @property
    def segment_end(self) -> date:
        return self.context.segment_end

    @property
    def window_start(self) -> datetime:
        return self.context.window_start

    @property
    def window_end(self) -> datetime:
        """When the usage behind the line stops: its segment's end, which is before the
        period's end when the subscription ended early."""
        return self.context.window_end

    @property
    def plan(self) -> str:
        return self.context.plan

    @property
    def version(self) -> int:
        return self.context.version

    @property
    def pricebook_hash(self) -> str:
        return self.context.pricebook_hash

    @property
    def pricebook(self) -> str:
        return self.context.pricebook

    def canonical(self) -> dict[str, Any]:
        """The line as JSON-ready data, decimals as strings; what the run hash covers."""
        c = self.context
        return {
            "customer_id": c.customer_id, "currency": c.currency, "timezone": c.timezone,
            "period_start": c.period_start.isoformat(), "period_end": c.period_end.isoformat(),
            "segment_start": c.segment_start.isoformat(), "segment_end": c.segment_end.isoformat(),
            "window_start": iso(c.window_start), "window_end": iso(c.window_end),
            "pricebook": c.pricebook, "pricebook_hash": c.pricebook_hash,
            "kind": self.kind, "name": self.name, "meter": self.meter, "dimensions": dict(self.dimensions),
            "quantity": text(self.quantity),
            "unit_price": None if self.unit_price is None else text(self.unit_price),
            "tiers": [tier_json(t) for t in self.tiers],
            "proration": self.proration,
            "precise_amount": self.precise_amount,
            "amount": format(self.amount, "f"),  # at the currency's scale: "1.10", "2" for yen
            "amount_minor": self.amount_minor,
            "unmeterable": self.unmeterable,
        }

    @once
    def encoded(self) -> tuple[str, ...]:
        """The JSON text of each canonical() value, in CANONICAL_KEYS order."""
        (currency, customer_id, period_end, period_start, pricebook, pricebook_hash, segment_end, segment_start,
         timezone, window_end, window_start) = self.context.encoded
        return (
            string(format(self.amount, "f")),  # amount
            str(self.amount_minor),  # amount_minor
            currency,
            customer_id,
            compact(dict(self.dimensions)) if self.dimensions else "{}",  # dimensions
            string(self.kind),  # kind
            nullable(self.meter),  # meter
            string(self.name),  # name
            period_end,
            period_start,
            string(self.precise_amount),  # precise_amount
            pricebook,
            pricebook_hash,
            nullable(self.proration),  # proration
            string(text(self.quantity)),  # quantity
            segment_end,
            segment_start,
            compact([tier_json(t) for t in self.tiers]) if self.tiers else "[]",  # tiers
            timezone,
            "null" if self.unit_price is None else string(text(self.unit_price)),  # unit_price
            str(self.unmeterable),  # unmeterable
            window_end,
            window_start,
        )

    def canonical_json(self, skip: tuple[str, ...] = ()) -> str:
        """`canonical()` as sorted-key compact JSON, without the `skip` keys: the exact text
        `json.dumps(..., sort_keys=True, separators=(",", ":"))` gives."""
        template, pick = _member_layout(skip)
        return template % pick(self.encoded)


# canonical()'s keys, sorted: the order of RatedLine.encoded (a test holds them together).
CANONICAL_KEYS = (
    "amount", "amount_minor", "currency", "customer_id", "dimensions", "kind", "meter", "name", "period_end",
    "period_start", "precise_amount", "pricebook", "pricebook_hash", "proration", "quantity", "segment_end",
    "segment_start", "tiers", "timezone", "unit_price", "unmeterable", "window_end", "window_start",
)


@functools.cache
def _member_layout(skip: tuple[str, ...]) -> tuple[str, Callable[[tuple[str, ...]], tuple[str, ...]]]:
    """A %-template of the object with the kept keys ('{"amount":%s,...}'), and a picker of
    their values: one formatting operation per line instead of a join of pairs."""
    kept = [i for i, key in enumerate(CANONICAL_KEYS) if key not in skip]
    template = "{" + ",".join(string(CANONICAL_KEYS[i]).replace("%", "%%") + ":%s" for i in kept) + "}"
    if len(kept) == len(CANONICAL_KEYS):
        return template, lambda values: values
    if len(kept) < 2:  # itemgetter of one index gives the value itself, not a 1-tuple
        return template, lambda values: tuple(values[i] for i in kept)
    return template, operator.itemgetter(*kept)


def tier_json(t: TierUse) -> dict[str, Any]:
    return {"tier": t.tier, "lower": text(t.lower), "up_to": None if t.up_to is None else text(t.up_to),
            "units": text(t.units), "unit_price": text(t.unit_price), "flat_fee": text(t.flat_fee), "amount": text(t.amount)}


def tier_use(stored: Mapping[str, object]) -> TierUse:
    """A tier breakdown as stored (tier_json) back as a TierUse (decimals compare by value)."""
    def number(key: str) -> Decimal | None:
        value = stored[key]
        return None if value is None else Decimal(str(value))

    return TierUse(int(str(stored["tier"])), number("lower"), number("up_to"), number("units"),  # type: ignore[arg-type]
                   number("unit_price"), number("flat_fee"), number("amount"))  # type: ignore[arg-type]


def run_hash(period: str, customers: Sequence[str] | None, lines: Sequence[RatedLine]) -> str:
    """sha256 of {"customers": ..., "lines": [...], "period": ...} as canonical JSON. The
    document is hashed in three pieces (keys in sorted order) rather than built whole:
    the lines make megabytes, and every concatenation would copy them."""
    digest = hashlib.sha256(('{"customers":' + compact(sorted(customers) if customers else None) + ',"lines":[').encode())
    digest.update(",".join([line.canonical_json() for line in lines]).encode())
    digest.update(('],"period":' + string(period) + "}").encode())
    return digest.hexdigest()


# The text the ledger stores for dimensions and tiers (json.dumps with sorted keys, and as written).
stored_dimensions = json.JSONEncoder(sort_keys=True).encode
stored_tiers = json.JSONEncoder().encode
