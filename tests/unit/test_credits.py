"""How credits pay an invoice: eligibility at the period end, burn order, whole minor units."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterctl.credits import Grant, PayableLine, WalletEntry, apply_credits, balance, burn_order, due_per_line

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
SEGMENT = "2026-10-01"


def grant(grant_id: str, amount: str, *, priority: int | None = None, effective: datetime = OCT_1,
          expires: datetime | None = None, applies_to: tuple[str, ...] = ("usage",), sequence: int = 0,
          currency: str = "USD", voided: datetime | None = None) -> Grant:
    return Grant(grant_id, "cus_1", currency, f"grant {grant_id}", Decimal(amount), None, None, priority, effective,
                 expires, applies_to, None, None, "command", sequence, effective, voided)


def usage(line_no: int, minor: int, meter: str = "api_calls") -> PayableLine:
    return PayableLine(line_no, "usage", meter, SEGMENT, minor)


def fee(line_no: int, minor: int) -> PayableLine:
    return PayableLine(line_no, "fee", None, SEGMENT, minor)


def paid(applications) -> list[tuple[str, int, int]]:
    return [(a.grant_id, a.line_no, a.applied_minor) for a in applications]


def held(*grants: Grant) -> dict[str, Decimal]:
    return {g.grant_id: g.amount for g in grants}


# ---------------------------------------------------------------- eligibility at the period end


@pytest.mark.parametrize(("effective", "expires", "voided", "eligible"), [
    (OCT_1, None, None, True),
    (NOV_1, None, None, False),  # effective exactly at the end: not for this period
    (datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), None, None, True),
    (OCT_1, NOV_1, None, True),  # expiring exactly at the end still pays this period
    (OCT_1, datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC), None, False),
    (OCT_1, None, NOV_1, True),  # voided at the end: it was there all period
    (OCT_1, None, datetime(2026, 10, 20, tzinfo=UTC), False),
])
def test_a_grant_is_eligible_by_where_it_stands_at_the_period_end(effective, expires, voided, eligible):
    assert grant("g", "10", effective=effective, expires=expires, voided=voided).eligible("USD", NOV_1) is eligible


def test_a_grant_in_another_currency_is_never_eligible():
    assert not grant("g", "10", currency="EUR").eligible("USD", NOV_1)


# ---------------------------------------------------------------- burn order


def test_burn_order_is_priority_then_earliest_expiry_then_earliest_effective_then_creation():
    unset = grant("unset", "1", sequence=1)
    low = grant("p1", "1", priority=1, sequence=2)
    high_late = grant("p0-never", "1", priority=0, sequence=3)
    high_soon = grant("p0-nov", "1", priority=0, expires=NOV_1, sequence=4)
    high_soon_older = grant("p0-nov-older", "1", priority=0, expires=NOV_1, effective=datetime(2026, 9, 1, tzinfo=UTC),
                            sequence=5)
    high_soon_first_made = grant("p0-nov-first", "1", priority=0, expires=NOV_1, sequence=0)
    order = burn_order([unset, low, high_late, high_soon, high_soon_older, high_soon_first_made])
    assert [g.grant_id for g in order] == ["p0-nov-older", "p0-nov-first", "p0-nov", "p0-never", "p1", "unset"]


def test_unset_priorities_burn_by_earliest_expiry_then_effective():
    never = grant("never", "1", sequence=0)
    december = grant("dec", "1", expires=DEC_1, sequence=1)
    november = grant("nov", "1", expires=NOV_1, sequence=2)
    assert [g.grant_id for g in burn_order([never, december, november])] == ["nov", "dec", "never"]


# ---------------------------------------------------------------- paying lines


def test_lines_are_paid_in_order_from_grants_in_burn_order():
    first, second = grant("a", "3.00", priority=1), grant("b", "10.00", priority=2)
    applied = apply_credits([usage(1, 250), usage(2, 400)], [first, second], held(first, second), 2)
    assert paid(applied) == [("a", 1, 250), ("a", 2, 50), ("b", 2, 350)]


def test_usage_credits_leave_fees_alone_and_all_pays_them_too():
    lines = [fee(1, 4900), usage(2, 1000)]
    usage_only = grant("u", "100")
    assert paid(apply_credits(lines, [usage_only], held(usage_only), 2)) == [("u", 2, 1000)]
    everything = grant("all", "100", applies_to=("all",))
    assert paid(apply_credits(lines, [everything], held(everything), 2)) == [("all", 1, 4900), ("all", 2, 1000)]


def test_a_grant_for_named_meters_pays_only_their_lines():
    tokens = grant("t", "100", applies_to=("tokens",))
    lines = [usage(1, 300, "api_calls"), usage(2, 500, "tokens")]
    assert paid(apply_credits(lines, [tokens], held(tokens), 2)) == [("t", 2, 500)]


def test_a_rate_pays_whole_minor_units_and_leaves_the_dust():
    # 100 credits at 1.123456 a credit are worth 112.3456: they pay 112.34 of a larger invoice.
    credits = grant("c", str(Decimal(100) * Decimal("1.123456")))
    applied = apply_credits([usage(1, 50_000)], [credits], held(credits), 2)
    assert paid(applied) == [("c", 1, 11_234)]


@pytest.mark.parametrize(("minor_units", "amount", "line", "expected"), [
    (0, "1000.9", 1500, 1000),  # yen: whole yen only
    (3, "1.2345", 5000, 1234),  # dinar: whole fils only
    (2, "0.009", 100, None),  # less than one cent: nothing to pay with
])
def test_whole_minor_units_in_every_currency(minor_units, amount, line, expected):
    g = grant("g", amount)
    applied = paid(apply_credits([usage(1, line)], [g], held(g), minor_units))
    assert applied == ([] if expected is None else [("g", 1, expected)])


def test_credits_never_pay_more_than_a_capped_charge_asks():
    # 120.00 of usage capped at 100.00 by a maximum line of -20.00: 100.00 is due.
    lines = [usage(1, 12_000, "tokens"), PayableLine(2, "maximum", "tokens", SEGMENT, -2_000)]
    assert due_per_line(lines) == [10_000, 0]
    g = grant("g", "500")
    assert paid(apply_credits(lines, [g], held(g), 2)) == [("g", 1, 10_000)]


def test_what_the_grants_hold_limits_what_they_pay():
    g = grant("g", "100")
    assert paid(apply_credits([usage(1, 9_000)], [g], {"g": Decimal("40")}, 2)) == [("g", 1, 4_000)]


# ---------------------------------------------------------------- balance


def entry(entry_id: int, grant_id: str, kind: str, amount: str, at: datetime) -> WalletEntry:
    return WalletEntry(entry_id, "cus_1", grant_id, kind, Decimal(amount), at, None, at)  # type: ignore[arg-type]


def test_the_available_balance_counts_active_grants_at_the_time_asked():
    promo = grant("promo", "20", expires=NOV_1, sequence=0)
    topup = grant("topup", "50", sequence=1)
    later = grant("later", "30", effective=DEC_1, sequence=2)
    entries = [entry(1, "promo", "grant", "20", OCT_1), entry(2, "topup", "grant", "50", OCT_1),
               entry(3, "later", "grant", "30", DEC_1), entry(4, "topup", "debit", "-12.5", NOV_1)]
    mid_october = balance("cus_1", "USD", [promo, topup, later], entries, datetime(2026, 10, 15, tzinfo=UTC))
    assert mid_october.available == Decimal("70")
    november = balance("cus_1", "USD", [promo, topup, later], entries, datetime(2026, 11, 15, tzinfo=UTC))
    assert november.available == Decimal("37.5")  # the promotion expired, the top-up paid 12.50
    assert {g.grant_id: g.status for g in november.grants} == {"promo": "expired", "topup": "active", "later": "scheduled"}


def test_amounts_of_38_digits_stay_exact():
    # 29 significant digits: Python's default decimal context (28) would round the sum.
    big = "12345678901.123456789012345678"
    g = grant("g", big)
    entries = [entry(1, "g", "grant", big, OCT_1), entry(2, "g", "debit", "-0.000000000000000001", OCT_1)]
    assert balance("cus_1", "USD", [g], entries, NOV_1).available == Decimal("12345678901.123456789012345677")
    assert paid(apply_credits([usage(1, 10**15)], [g], {"g": Decimal(big)}, 2)) == [("g", 1, 1234567890112)]
