"""Charge models and money rounding: the DESIGN.md examples, tier boundaries, and properties
checked against small reference implementations written here in a different style."""

from __future__ import annotations

import math
from decimal import Context, Decimal, Subnormal, getcontext, localcontext
from fractions import Fraction
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterctl.pricing import (
    Tier,
    TierUse,
    check_tiers,
    graduated,
    minor_units,
    package,
    per_unit,
    round_amount,
    to_minor_units,
    volume,
)

D = Decimal
UNBOUNDED = None

# DESIGN.md: "15 units over tiers 10@50, ∞@40 cost 10×50 + 5×40" (graduated)
# and "15 units over 10@50, 20@40 cost 15×40" (volume).
GRADUATED = [Tier(D(10), D(50)), Tier(UNBOUNDED, D(40))]
VOLUME = [Tier(D(10), D(50)), Tier(D(20), D(40)), Tier(UNBOUNDED, D(30))]
# A platform fee per tier reached: 100 to start, 30 once past 10 units, 7 once past 20.
WITH_FEES = [Tier(D(10), D(5), D(100)), Tier(D(20), D(4), D(30)), Tier(UNBOUNDED, D(3), D(7))]


def same(actual: Decimal, expected: str) -> bool:
    """Equal in value and written the same way (no '0E-18', no '-0.00')."""
    return actual == D(expected) and str(actual) == expected


# ---------------------------------------------------------------- per_unit


def test_per_unit_prices_fractional_gpu_hours():
    price = per_unit(D("2.5"), D("1.20"))
    assert price.amount == D("3")
    assert price.unit_price == D("1.20")
    assert price.billable == D("2.5")
    assert price.tiers == () and price.packages is None


def test_per_unit_prices_a_usage_correction_linearly():
    assert per_unit(D("-3"), D("0.5")).amount == D("-1.5")


def test_per_unit_zero_quantity_costs_a_plain_zero():
    assert same(per_unit(D("0.000000000000000000"), D("0.000000000000000001")).amount, "0")
    assert same(per_unit(D("-1"), D("0")).amount, "0")  # not "-0"


def test_a_decimal_38_18_quantity_times_an_18_decimal_price_is_exact():
    # (10^20 − 10^-18) × (1 + 10^-18) = 10^20 + 100 − 10^-18 − 10^-36
    quantity = D("99999999999999999999.999999999999999999")
    price = D("1.000000000000000001")
    assert per_unit(quantity, price).amount == D("100000000000000000099.999999999999999998999999999999999999")
    # The default 28-digit context would have rounded it without a word.
    assert quantity * price != per_unit(quantity, price).amount


def test_pricing_leaves_the_callers_decimal_context_alone():
    with localcontext() as ctx:
        ctx.clear_flags()
        graduated(D("12.5"), GRADUATED)
        package(D("7"), size=D("3"), price=D("1"))
        round_amount(D("2.345"), 2, "half_even")
        assert ctx.prec == 28
        assert not any(ctx.flags.values())
    assert getcontext().prec == 28


def test_a_callers_narrow_context_changes_no_result_then_or_later():
    expected = graduated(D("12.5"), GRADUATED).amount
    # A caller working at 1 significant digit, exponents down to -1 (0.01 is subnormal there).
    with localcontext(Context(prec=1, Emin=-1, Emax=5, traps=[Subnormal])):
        assert same(round_amount(D("1.005"), 2, "half_up"), "1.01")
        assert same(round_amount(D("1.00000005"), 7, "half_up"), "1.0000001")  # 7 places: seen here first
        assert graduated(D("12.5"), GRADUATED).amount == expected
    assert same(round_amount(D("1.234"), 2, "half_even"), "1.23")
    assert same(round_amount(D("1.23456784"), 7, "half_even"), "1.2345678")


def test_an_amount_too_wide_to_be_exact_is_an_error_not_a_rounded_number():
    with pytest.raises(ValueError, match="exactly"):
        per_unit(D("1" * 60), D("1" * 50))


def test_floats_are_refused():
    with pytest.raises(TypeError, match="Decimal"):
        per_unit(2.5, D("1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        graduated(D(1), [Tier(UNBOUNDED, 0.1)])  # type: ignore[arg-type]


# ---------------------------------------------------------------- graduated


def test_graduated_design_example_15_units():
    price = graduated(D(15), GRADUATED)
    assert price.amount == D(700)  # 10×50 + 5×40
    assert price.unit_price is None
    assert price.billable == D(15)
    assert price.tiers == (
        TierUse(tier=1, lower=D(0), up_to=D(10), units=D(10), unit_price=D(50), flat_fee=D(0), amount=D(500)),
        TierUse(tier=2, lower=D(10), up_to=None, units=D(5), unit_price=D(40), flat_fee=D(0), amount=D(200)),
    )


@pytest.mark.parametrize(("quantity", "amount", "tiers_used"), [
    ("10", "500", 1),               # exactly up_to: all in tier 1
    ("10.000001", "500.00004", 2),  # one millionth of a unit reaches tier 2
    ("9", "450", 1),                # up_to − 1
    ("2.5", "125", 1),              # fractional
    ("1000", "40100", 2),           # 10×50 + 990×40
])
def test_graduated_at_the_boundaries(quantity, amount, tiers_used):
    price = graduated(D(quantity), GRADUATED)
    assert price.amount == D(amount)
    assert len(price.tiers) == tiers_used


def test_graduated_zero_quantity_costs_zero_and_uses_no_tier():
    price = graduated(D(0), WITH_FEES)
    assert same(price.amount, "0")
    assert price.tiers == ()


@pytest.mark.parametrize(("quantity", "amount", "fees_charged"), [
    ("0.5", "102.5", ["100"]),                        # half a unit is enough for tier 1's fee
    ("10", "150", ["100"]),                           # 10×5 + 100; tier 2 not reached
    ("10.000001", "180.000004", ["100", "30"]),       # 150 + 0.000001×4 + 30
    ("20", "220", ["100", "30"]),                     # 150 + 10×4 + 30
    ("25", "242", ["100", "30", "7"]),                # 220 + 5×3 + 7
])
def test_graduated_flat_fee_only_when_a_unit_falls_in_the_tier(quantity, amount, fees_charged):
    price = graduated(D(quantity), WITH_FEES)
    assert price.amount == D(amount)
    assert [u.flat_fee for u in price.tiers] == [D(f) for f in fees_charged]


def test_graduated_tier_breakdown_for_a_fractional_quantity():
    price = graduated(D("12.25"), WITH_FEES)
    assert price.tiers[1] == TierUse(tier=2, lower=D(10), up_to=D(20), units=D("2.25"), unit_price=D(4),
                                     flat_fee=D(30), amount=D(39))
    assert price.amount == D(189)  # 150 + 2.25×4 + 30


# ---------------------------------------------------------------- volume


def test_volume_design_example_15_units():
    price = volume(D(15), VOLUME)
    assert price.amount == D(600)  # 15×40
    assert price.unit_price == D(40)
    assert price.tiers == (
        TierUse(tier=2, lower=D(10), up_to=D(20), units=D(15), unit_price=D(40), flat_fee=D(0), amount=D(600)),
    )


@pytest.mark.parametrize(("quantity", "amount", "tier"), [
    ("10", "500", 1),               # exactly up_to stays in tier 1
    ("10.000001", "400.00004", 2),  # every unit now at 40
    ("9", "450", 1),
    ("2.5", "125", 1),
    ("20", "800", 2),
    ("20.5", "615", 3),             # past the last bound: the unbounded tier
])
def test_volume_at_the_boundaries(quantity, amount, tier):
    price = volume(D(quantity), VOLUME)
    assert price.amount == D(amount)
    assert [u.tier for u in price.tiers] == [tier]


def test_volume_charges_only_the_chosen_tiers_flat_fee():
    tiers = [Tier(D(10), D(5), D(100)), Tier(UNBOUNDED, D(4), D(30))]
    assert volume(D(10), tiers).amount == D(150)   # 10×5 + 100
    assert volume(D(11), tiers).amount == D(74)    # 11×4 + 30: volume pricing can go down
    assert volume(D("0.5"), tiers).amount == D("102.5")


def test_volume_zero_quantity_costs_zero():
    price = volume(D(0), [Tier(D(10), D(5), D(100)), Tier(UNBOUNDED, D(4), D(30))])
    assert same(price.amount, "0")
    assert price.tiers == ()
    assert price.unit_price == D(5)  # the rate the first unit would pay


# ---------------------------------------------------------------- package


@pytest.mark.parametrize(("quantity", "round", "packages", "amount"), [
    ("2500", "up", 3, "6"),
    ("2500", "down", 2, "4"),
    ("3000", "up", 3, "6"),          # an exact multiple of the size
    ("3000", "down", 3, "6"),
    ("1000", "up", 1, "2"),
    ("1000.000001", "up", 2, "4"),   # a started package is a package
    ("1000.000001", "down", 1, "2"),
    ("999", "up", 1, "2"),
    ("999", "down", 0, "0"),
    ("0", "up", 0, "0"),
])
def test_package_of_1000_calls_at_2(quantity, round, packages, amount):
    price = package(D(quantity), size=D(1000), price=D(2), round=round)
    assert price.packages == packages
    assert price.amount == D(amount)
    assert price.unit_price == D(2)
    assert price.tiers == ()


def test_package_after_free_units():
    price = package(D(2500), size=D(1000), price=D(2), free_units=D(600))
    assert (price.billable, price.packages, price.amount) == (D(1900), D(2), D(4))
    assert package(D(2500), size=D(1000), price=D(2), free_units=D(600), round="down").amount == D(2)


def test_package_free_units_above_the_quantity_cost_zero_never_less():
    price = package(D(300), size=D(1000), price=D(2), free_units=D(600))
    assert same(price.amount, "0")
    assert same(price.billable, "0")
    assert price.packages == 0


def test_package_of_fractional_gpu_hours():
    assert package(D("2.5"), size=D(1), price=D(10)).amount == D(30)
    assert package(D("2.5"), size=D(1), price=D(10), round="down").amount == D(20)
    assert package(D("7.5"), size=D("2.5"), price=D("0.99")).amount == D("2.97")


@pytest.mark.parametrize(("options", "message"), [
    ({"size": D(0), "price": D(1)}, "size must be above zero"),
    ({"size": D(-5), "price": D(1)}, "size must be above zero"),
    ({"size": D(5), "price": D(-1)}, "price must not be negative"),
    ({"size": D(5), "price": D(1), "free_units": D(-1)}, "free_units must not be negative"),
    ({"size": D(5), "price": D(1), "round": "nearest"}, "'up' or 'down'"),
])
def test_package_refuses_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        package(D(10), **options)


@pytest.mark.parametrize("price", [
    lambda q: graduated(q, GRADUATED),
    lambda q: volume(q, VOLUME),
    lambda q: package(q, size=D(10), price=D(1)),
], ids=["graduated", "volume", "package"])
def test_tiered_and_package_models_refuse_a_negative_quantity(price):
    with pytest.raises(ValueError, match="negative quantity"):
        price(D("-0.5"))


# ---------------------------------------------------------------- check_tiers


@pytest.mark.parametrize(("tiers", "message"), [
    ([], "at least one tier"),
    ([Tier(D(20), D(1)), Tier(D(10), D(1)), Tier(UNBOUNDED, D(1))],
     r"tier 2: tiers must ascend: up_to 10 is not above the previous tier.s up_to 20"),
    ([Tier(D(10), D(1)), Tier(D(10), D(1)), Tier(UNBOUNDED, D(1))], r"tier 2: tiers must ascend: up_to 10 is not"),
    ([Tier(D(10), D(1)), Tier(UNBOUNDED, D(1)), Tier(UNBOUNDED, D(1))], r"tier 2: only the last tier may be unbounded"),
    ([Tier(D(10), D(1)), Tier(D(20), D(1))], r"tier 2: the last tier must be unbounded"),
    ([Tier(D(10), D(-1)), Tier(UNBOUNDED, D(1))], r"tier 1: unit_price must not be negative"),
    ([Tier(D(10), D(1)), Tier(UNBOUNDED, D(1), D("-0.01"))], r"tier 2: flat_fee must not be negative"),
    ([Tier(D(0), D(1)), Tier(UNBOUNDED, D(1))], r"tier 1: up_to must be above zero"),
    ([Tier(D("NaN"), D(1)), Tier(UNBOUNDED, D(1))], r"tier 1: up_to must be a finite number"),
])
def test_check_tiers_names_the_problem(tiers, message):
    with pytest.raises(ValueError, match=message):
        check_tiers(tiers)


def test_check_tiers_lists_every_problem_of_the_list():
    with pytest.raises(ValueError) as caught:
        check_tiers([Tier(D(10), D(-1)), Tier(D(5), D(1)), Tier(D(20), D(1), D(-2))])
    assert str(caught.value).split("; ") == [
        "tier 1: unit_price must not be negative, got -1",
        "tier 2: tiers must ascend: up_to 5 is not above the previous tier's up_to 10",
        "tier 3: flat_fee must not be negative, got -2",
        "tier 3: the last tier must be unbounded (up_to: null), got up_to 20",
    ]


def test_check_tiers_accepts_a_single_unbounded_tier_and_the_models_call_it():
    check_tiers([Tier(UNBOUNDED, D(0))])
    with pytest.raises(ValueError, match="at least one tier"):
        graduated(D(1), [])
    with pytest.raises(ValueError, match="last tier must be unbounded"):
        volume(D(1), [Tier(D(10), D(1))])


# ---------------------------------------------------------------- rounding and minor units


@pytest.mark.parametrize(("amount", "half_up", "half_even"), [
    ("2.345", "2.35", "2.34"),
    ("2.355", "2.36", "2.36"),
    ("2.3450001", "2.35", "2.35"),  # not a tie
    ("2.3449999", "2.34", "2.34"),
    ("-2.345", "-2.35", "-2.34"),
    ("-0.125", "-0.13", "-0.12"),   # ties go away from zero for negatives too
    ("12", "12.00", "12.00"),
    ("-0.001", "0.00", "0.00"),     # never "-0.00" on an invoice
])
def test_rounding_to_cents(amount, half_up, half_even):
    assert same(round_amount(D(amount), 2, "half_up"), half_up)
    assert same(round_amount(D(amount), 2, "half_even"), half_even)


@pytest.mark.parametrize(("amount", "places", "half_up", "half_even"), [
    ("0.5", 0, "1", "0"),           # JPY
    ("1.5", 0, "2", "2"),
    ("2.5", 0, "3", "2"),
    ("12.4", 0, "12", "12"),
    ("1.0005", 3, "1.001", "1.000"),  # KWD
    ("1.0015", 3, "1.002", "1.002"),
])
def test_rounding_for_currencies_with_0_and_3_minor_digits(amount, places, half_up, half_even):
    assert same(round_amount(D(amount), places, "half_up"), half_up)
    assert same(round_amount(D(amount), places, "half_even"), half_even)


def test_rounding_a_38_digit_amount_needs_no_global_context():
    amount = D("12345678901234567890123456789012345678.125")
    assert same(round_amount(amount, 2, "half_up"), "12345678901234567890123456789012345678.13")


@pytest.mark.parametrize("mode", ["HALF_UP", "half_down", "up", ""])
def test_unknown_rounding_mode(mode):
    with pytest.raises(ValueError, match="rounding mode"):
        round_amount(D("1.005"), 2, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(("amount", "places", "minor"), [
    ("12.35", 2, 1235),
    ("-0.13", 2, -13),
    ("12", 0, 12),
    ("1.001", 3, 1001),
    ("0", 2, 0),
    ("12.3", 2, 1230),  # fewer decimals than the currency has is still a whole number of cents
])
def test_to_minor_units(amount, places, minor):
    assert to_minor_units(D(amount), places) == minor


@pytest.mark.parametrize(("amount", "places"), [("12.345", 2), ("0.5", 0), ("1.0005", 3)])
def test_to_minor_units_refuses_an_unrounded_amount(amount, places):
    with pytest.raises(ValueError, match="not a whole number of minor units"):
        to_minor_units(D(amount), places)


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3)])
def test_minor_units_of_iso_4217_currencies(currency, places):
    assert minor_units(currency) == places


@pytest.mark.parametrize("currency", ["ABC", "XAU", "usd", ""])
def test_minor_units_errors_name_the_code(currency):
    with pytest.raises(ValueError, match=repr(currency)):
        minor_units(currency)


# ---------------------------------------------------------------- properties against references

prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
fees = st.one_of(st.just(D(0)), st.decimals(min_value=0, max_value=50, places=2, allow_nan=False, allow_infinity=False))
widths = st.decimals(min_value=D("0.001"), max_value=100, places=3, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=600, places=6, allow_nan=False, allow_infinity=False)
NUDGES = (D(0), D("0.000001"), D("-0.000001"), D(1), D(-1))


@st.composite
def tier_lists(draw) -> list[Tier]:
    bounds = list(accumulate(draw(st.lists(widths, max_size=4))))
    return [Tier(up_to, draw(prices), draw(fees)) for up_to in [*bounds, UNBOUNDED]]


@st.composite
def tiers_and_quantity(draw) -> tuple[list[Tier], Decimal]:
    """Tiers and a quantity that is often on, just above or just below a tier boundary."""
    tiers = draw(tier_lists())
    near = [t.up_to + n for t in tiers if t.up_to is not None for n in NUDGES if t.up_to + n >= 0]
    quantity = draw(st.one_of(quantities, st.just(D(0)), *([st.sampled_from(near)] if near else [])))
    return tiers, quantity


def reference_graduated(quantity: Decimal, tiers: list[Tier]) -> tuple[Fraction, list[tuple[int, Fraction]]]:
    """Each tier owns the interval (lows[i], highs[i]]; its units are the overlap with (0, quantity]."""
    q = Fraction(quantity)
    highs = [Fraction(t.up_to) if t.up_to is not None else math.inf for t in tiers]
    lows = [Fraction(0), *highs[:-1]]
    total, used = Fraction(0), []
    for number, (low, high, tier) in enumerate(zip(lows, highs, tiers, strict=True), 1):
        units = max(Fraction(0), min(q, high) - low)
        if units > 0:
            total += units * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
            used.append((number, units))
    return total, used


def reference_volume(quantity: Decimal, tiers: list[Tier]) -> tuple[Fraction, int | None]:
    """The chosen tier's index is the number of bounds lying strictly below the quantity."""
    if quantity == 0:
        return Fraction(0), None
    index = sum(1 for t in tiers[:-1] if quantity > t.up_to)
    tier = tiers[index]
    return Fraction(quantity) * Fraction(tier.unit_price) + Fraction(tier.flat_fee), index + 1


def reference_packages(quantity: Decimal, size: Decimal, free: Decimal, round: str) -> int:
    n = max(Fraction(quantity) - Fraction(free), Fraction(0)) / Fraction(size)
    return -(-n.numerator // n.denominator) if round == "up" else n.numerator // n.denominator


def reference_round(amount: Decimal, places: int, mode: str) -> Fraction:
    scaled = abs(Fraction(amount)) * 10**places
    whole = math.floor(scaled)
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and (mode == "half_up" or whole % 2 == 1)):
        whole += 1
    return Fraction(whole if amount >= 0 else -whole, 10**places)


@settings(max_examples=200, deadline=None)
@given(tiers_and_quantity())
def test_graduated_matches_the_reference(case):
    tiers, quantity = case
    price = graduated(quantity, tiers)
    expected, used = reference_graduated(quantity, tiers)
    assert Fraction(price.amount) == expected
    assert [(u.tier, Fraction(u.units)) for u in price.tiers] == used


@settings(max_examples=200, deadline=None)
@given(tiers_and_quantity())
def test_graduated_is_the_sum_of_its_tiers(case):
    tiers, quantity = case
    price = graduated(quantity, tiers)
    assert price.amount == sum((u.amount for u in price.tiers), D(0))
    assert sum((u.units for u in price.tiers), D(0)) == quantity
    for use in price.tiers:
        assert use.units > 0
        assert use.amount == use.units * use.unit_price + use.flat_fee
        assert use.up_to is None or use.lower < use.up_to


@settings(max_examples=200, deadline=None)
@given(tier_lists(), quantities, quantities)
def test_graduated_never_costs_less_for_more_units(tiers, a, b):
    low, high = sorted((a, b))
    assert graduated(low, tiers).amount <= graduated(high, tiers).amount


@settings(max_examples=200, deadline=None)
@given(tiers_and_quantity())
def test_volume_matches_the_reference(case):
    tiers, quantity = case
    price = volume(quantity, tiers)
    expected, tier = reference_volume(quantity, tiers)
    assert Fraction(price.amount) == expected
    assert [u.tier for u in price.tiers] == ([] if tier is None else [tier])
    if price.tiers:
        [chosen] = price.tiers
        assert price.amount == price.billable * chosen.unit_price + chosen.flat_fee
        assert chosen.lower < quantity and (chosen.up_to is None or quantity <= chosen.up_to)
        assert price.unit_price == chosen.unit_price


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=D("0.001"), max_value=1000, places=3, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False),
    st.one_of(st.just(D(0)), st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)),
    st.sampled_from(["up", "down"]),
    st.data(),
)
def test_package_matches_the_reference(size, unit, free, round, data):
    multiple = st.integers(0, 50).map(lambda k: free + k * size)  # exact multiples of the size after free units
    quantity = data.draw(st.one_of(quantities, multiple))
    price = package(quantity, size=size, price=unit, round=round, free_units=free)
    packages = reference_packages(quantity, size, free, round)
    assert price.packages == packages
    assert Fraction(price.amount) == packages * Fraction(unit)
    assert price.amount >= 0


big = st.decimals(min_value=-(10**20) + 1, max_value=10**20 - 1, places=18, allow_nan=False, allow_infinity=False)
small = st.decimals(min_value=-1000, max_value=1000, places=6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(big, big)
def test_per_unit_is_exact_for_decimal_38_18(quantity, unit_price):
    assert Fraction(per_unit(quantity, unit_price).amount) == Fraction(quantity) * Fraction(unit_price)


@settings(max_examples=200, deadline=None)
@given(small, small, st.decimals(min_value=-100, max_value=100, places=4, allow_nan=False, allow_infinity=False))
def test_per_unit_is_additive(a, b, unit_price):
    assert per_unit(a + b, unit_price).amount == per_unit(a, unit_price).amount + per_unit(b, unit_price).amount


@st.composite
def amounts_and_places(draw) -> tuple[Decimal, int]:
    """Any amount, or an exact tie (…5 just past the last kept digit) at the chosen scale."""
    places = draw(st.sampled_from([0, 2, 3]))
    tie = st.integers(-(10**6), 10**6).map(lambda k: (D(k) + D("0.5")).scaleb(-places))
    return draw(st.one_of(small, tie)), places


@settings(max_examples=200, deadline=None)
@given(amounts_and_places(), st.sampled_from(["half_up", "half_even"]))
def test_round_amount_matches_the_reference(case, mode):
    amount, places = case
    rounded = round_amount(amount, places, mode)
    assert Fraction(rounded) == reference_round(amount, places, mode)
    assert rounded.as_tuple().exponent == -places
    assert to_minor_units(rounded, places) == Fraction(rounded) * 10**places
