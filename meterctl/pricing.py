"""The charge models of DESIGN.md ("Pricebooks"), as pure functions over Decimal.

Amounts come back exact and unrounded: rounding happens once, per invoice line, with
`round_amount` (DESIGN principle 4). Every computation runs in a local context wide enough
for DECIMAL(38, 18) quantities times prices with 18 decimals, and traps `Inexact`, so a
result that would not fit is an error instead of a silently rounded amount. The global
decimal context is never touched.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import TracebackType
from typing import Literal, Protocol

Rounding = Literal["half_up", "half_even"]

_PRECISION = 100  # 38 + 20 digits is the widest product we must hold exactly; room to spare
_EXACT = Context(prec=_PRECISION, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN,
                 traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}
# _EXACT with the rounding mode of a pricebook and Inexact not trapped: rounding is the point.
_ROUNDING = {name: Context(prec=_PRECISION, rounding=mode, Emax=MAX_EMAX, Emin=MIN_EMIN,
                           traps=[InvalidOperation, DivisionByZero, Overflow])
             for name, mode in _MODES.items()}
_ZERO = Decimal(0)
_NOT_EXACT = f"amount cannot be computed exactly within {_PRECISION} significant digits"


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # inclusive upper bound; None = unbounded (only the last tier)
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


class TierLike(Protocol):
    """What the tiered models read of a tier: a Tier, or a pricebook's tier as loaded."""

    @property
    def up_to(self) -> Decimal | None: ...
    @property
    def unit_price(self) -> Decimal: ...
    @property
    def flat_fee(self) -> Decimal: ...


@dataclass(frozen=True)
class TierUse:
    """One tier's part of a price, so an invoice can show how the amount was built."""

    tier: int  # 1-based
    lower: Decimal  # units above this (exclusive) ...
    up_to: Decimal | None  # ... up to this (inclusive) belong to the tier
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal  # the fee charged (0 if not charged)
    amount: Decimal  # units * unit_price + flat_fee, exact


@dataclass(frozen=True)
class Price:
    amount: Decimal  # exact, unrounded
    unit_price: Decimal | None  # per_unit: the price; volume: the chosen tier's; package: its price; graduated: None
    tiers: tuple[TierUse, ...]  # graduated: every tier with units > 0; volume: the chosen tier; else ()
    billable: Decimal  # the quantity actually priced (package: after free units)
    packages: Decimal | None = None  # package model: number of packages charged


# ---------------------------------------------------------------- charge models


def per_unit(quantity: Decimal, unit_price: Decimal) -> Price:
    """Linear, so a negative quantity (a usage correction) gives a negative amount."""
    quantity = _number(quantity, "quantity")
    unit_price = _number(unit_price, "unit_price")
    try:  # the context passed rather than entered: one multiplication per rated line
        amount = _EXACT.multiply(quantity, unit_price)
    except (Inexact, InvalidOperation):
        raise ValueError(_NOT_EXACT) from None
    return Price(_plain(amount), unit_price, (), _plain(quantity))


def graduated(quantity: Decimal, tiers: Sequence[TierLike]) -> Price:
    """Each tier prices only its own units; its flat fee is due once any unit reaches it."""
    quantity = _non_negative(quantity, "graduated")
    check_tiers(tiers)
    uses: list[TierUse] = []
    with _exact():
        lower = _ZERO
        for number, tier in enumerate(tiers, 1):
            if quantity <= lower:
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = top - lower
            amount = units * tier.unit_price + tier.flat_fee
            uses.append(TierUse(number, lower, tier.up_to, units, tier.unit_price, tier.flat_fee, _plain(amount)))
            if tier.up_to is None:
                break
            lower = tier.up_to
        total = sum((use.amount for use in uses), _ZERO)
    return Price(_plain(total), None, tuple(uses), _plain(quantity))


def volume(quantity: Decimal, tiers: Sequence[TierLike]) -> Price:
    """The tier holding the whole quantity prices every unit; a boundary quantity stays in the lower tier."""
    quantity = _non_negative(quantity, "volume")
    check_tiers(tiers)
    if quantity == 0:
        # Nothing is charged, not even a flat fee; the unit price shown is the rate the first unit would pay.
        return Price(_ZERO, tiers[0].unit_price, (), _ZERO)
    lower = _ZERO
    for number, tier in enumerate(tiers, 1):  # noqa: B007 - the tier found is used after the loop
        if tier.up_to is None or quantity <= tier.up_to:
            break
        lower = tier.up_to
    with _exact():
        amount = _plain(quantity * tier.unit_price + tier.flat_fee)
    use = TierUse(number, lower, tier.up_to, quantity, tier.unit_price, tier.flat_fee, amount)
    return Price(amount, tier.unit_price, (use,), quantity)


def package(quantity: Decimal, *, size: Decimal, price: Decimal, round: Literal["up", "down"] = "up",
            free_units: Decimal = Decimal(0)) -> Price:
    """Whole packages only: a started package is charged ("up") or only full ones ("down")."""
    quantity = _non_negative(quantity, "package")
    size = _number(size, "package size")
    price = _number(price, "package price")
    free_units = _number(free_units, "free_units")
    if size <= 0:
        raise ValueError(f"package size must be above zero, got {size}")
    if price < 0:
        raise ValueError(f"package price must not be negative, got {price}")
    if free_units < 0:
        raise ValueError(f"free_units must not be negative, got {free_units}")
    if round not in ("up", "down"):
        raise ValueError(f"package round must be 'up' or 'down', got {round!r}")
    with _exact():
        billable = max(quantity - free_units, _ZERO)
        packages, rest = divmod(billable, size)
        if rest and round == "up":
            packages += 1
        amount = packages * price
    return Price(_plain(amount), price, (), _plain(billable), _plain(packages))


def after_free_units(quantity: Decimal, free_units: Decimal) -> Decimal:
    """The units left to price once `free_units` are taken off (never below zero), exactly."""
    quantity = _number(quantity, "quantity")
    free_units = _number(free_units, "free_units")
    try:
        return max(_EXACT.subtract(quantity, free_units), _ZERO)
    except (Inexact, InvalidOperation):
        raise ValueError(_NOT_EXACT) from None


def check_tiers(tiers: Sequence[TierLike]) -> None:
    """Reject tier lists whose meaning would be ambiguous, with the tier number (1-based) in
    the message; every problem of the list at once, separated by '; '."""
    if not tiers:
        raise ValueError("tiers: at least one tier is required")
    problems: list[str] = []
    previous: Decimal | None = None
    last = len(tiers)
    for number, tier in enumerate(tiers, 1):
        for name in ("unit_price", "flat_fee"):
            try:
                value = _number(getattr(tier, name), f"tier {number}: {name}")
            except ValueError as error:
                problems.append(str(error))
                continue
            if value < 0:
                problems.append(f"tier {number}: {name} must not be negative, got {value}")
        if tier.up_to is None:
            if number != last:
                problems.append(f"tier {number}: only the last tier may be unbounded (up_to: null); it is tier {number} of {last}")
            continue
        try:
            up_to = _number(tier.up_to, f"tier {number}: up_to")
        except ValueError as error:
            problems.append(str(error))
            continue
        if number == last:
            problems.append(f"tier {number}: the last tier must be unbounded (up_to: null), got up_to {up_to}")
        if up_to <= 0:
            problems.append(f"tier {number}: up_to must be above zero, got {up_to}")
        elif previous is not None and up_to <= previous:
            problems.append(f"tier {number}: tiers must ascend: up_to {up_to} is not above the previous tier's up_to {previous}")
        previous = up_to if previous is None else max(previous, up_to)
    if problems:
        raise ValueError("; ".join(problems))


# ---------------------------------------------------------------- money


def round_amount(amount: Decimal, minor_units: int, mode: Rounding) -> Decimal:
    """Round to the currency's minor units; half_up sends ties away from zero, negatives included."""
    context = _ROUNDING.get(mode)
    if context is None:
        raise ValueError(f"unknown rounding mode {mode!r} (expected 'half_up' or 'half_even')")
    amount = _number(amount, "amount")
    _check_places(minor_units)
    # The context is passed, not installed: the caller's context is never touched, and
    # rating rounds every line, where entering a local context costs more than the rounding.
    rounded = amount.quantize(_quantum(minor_units), context=context)
    # -0.001 rounds to -0.00; an invoice line should never read "-0.00".
    return rounded.copy_abs() if rounded.is_zero() else rounded


def to_minor_units(amount: Decimal, minor_units: int) -> int:
    """Exports carry integer minor units; anything finer than a minor unit means rounding was skipped."""
    amount = _number(amount, "amount")
    _check_places(minor_units)
    with _exact():
        scaled = amount.scaleb(minor_units)
    whole = int(scaled)
    if whole != scaled:
        raise ValueError(f"amount {amount} is not a whole number of minor units at {minor_units} decimal places "
                         "(round it first)")
    return whole


def minor_units(currency: str) -> int:
    """ISO 4217 exponent: how many decimals an amount in this currency is rounded to."""
    if currency in _MINOR_UNITS:
        return _MINOR_UNITS[currency]
    from iso4217 import Currency  # its table takes a few milliseconds to load: only when a currency is met

    try:
        if not isinstance(currency, str) or currency != currency.upper():
            raise ValueError
        exponent = Currency(currency).exponent
    except ValueError:
        raise ValueError(f"unknown currency {currency!r}: expected an upper-case ISO 4217 code such as 'USD'") from None
    if exponent is None:
        raise ValueError(f"currency {currency!r} has no minor unit, so amounts in it cannot be rounded for an invoice")
    _MINOR_UNITS[currency] = exponent
    return exponent


_MINOR_UNITS: dict[str, int] = {}


# ---------------------------------------------------------------- helpers


class _exact:
    """Arithmetic in the _EXACT context; a result it cannot hold exactly is a ValueError.

    A class rather than a @contextmanager generator: rating enters it for every line."""

    __slots__ = ("_manager",)

    def __enter__(self) -> None:
        self._manager = localcontext(_EXACT)
        self._manager.__enter__()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> Literal[False]:
        self._manager.__exit__(kind, error, trace)
        if kind is not None and issubclass(kind, (Inexact, InvalidOperation)):
            raise ValueError(_NOT_EXACT) from None
        return False


@functools.cache
def _quantum(places: int) -> Decimal:
    """1E-places, built from its digits: no decimal context (the caller's least of all) is involved."""
    return Decimal((0, (1,), -places))


def _number(value: Decimal | int, what: str) -> Decimal:
    """Money must never pass through float (DESIGN principle 4), so only Decimal and int are accepted."""
    if type(value) is Decimal and value.is_finite():  # the usual case, checked first (rating's hot path)
        return value
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


def _non_negative(quantity: Decimal, model: str) -> Decimal:
    quantity = _number(quantity, "quantity")
    if quantity < 0:
        raise ValueError(f"{model} pricing cannot price a negative quantity ({quantity})")
    return quantity


def _check_places(places: int) -> None:
    if isinstance(places, bool) or not isinstance(places, int) or places < 0:
        raise ValueError(f"minor units must be a whole number >= 0, got {places!r}")


def _plain(value: Decimal) -> Decimal:
    """A zero result reads "0", not "0E-36" or "-0.00"."""
    return _ZERO if value.is_zero() else value


def major(minor: int, places: int) -> str:
    """Integer minor units as text at the currency's scale: (1234, 2) → '12.34', (5, 0) → '5'."""
    return format(Decimal(minor).scaleb(-places), "f")


def text(value: Decimal) -> str:
    """A decimal as plain text without trailing zeros: '0.4936', '49', never '4.9E+1'."""
    # String work rather than normalize(): exact at any precision (normalize rounds to the
    # context's 28 digits), and cheap.
    plain = format(value, "f")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return "0" if plain in ("-0", "") else plain
