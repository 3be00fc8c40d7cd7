"""Rating: usage × pricebook → rated lines, per billing period segment, deterministically."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from meterctl.config_yaml import ConfigProblems
from meterctl.instants import iso
from meterctl.invoicing import build_invoices
from meterctl.meters import load_meters
from meterctl.pricebook import load_catalog
from meterctl.rating import rate
from tests.conftest import ACME_CUSTOMERS, PRO, SCALE, event, scalar
from tests.tenants import ACME_ON_PRO, SECOND_CUSTOMER, acme_subscribed, pro_billed, tokens_graduated


def run(store, config: Path, period: str = "2026-10", **options):
    meters = load_meters(config)
    return rate(store.events, store.ledger, load_catalog(config, meters), meters, period, **options)


def amounts(result) -> dict:
    return {(l.customer_id, l.plan, l.kind, l.name, tuple(l.dimensions.values())): l.amount for l in result.lines}


def test_a_plan_change_splits_the_period_and_prorates_fees_by_day(store, con, config, acme):
    # Oct 20 local midnight in New York is 04:00 UTC: the 03:59 call is still on pro.
    acme(
        *[event(f"p{i}", timestamp=f"2026-10-0{i + 1}T12:00:00Z") for i in range(5)],
        event("edge-pro", timestamp="2026-10-20T03:59:59Z"),
        event("edge-scale", timestamp="2026-10-20T04:00:00Z"),
        event("s1", timestamp="2026-10-25T12:00:00Z"),
    )
    result = run(store, config)
    found = amounts(result)
    # pro: 19 of 31 days; 6 calls: 2 free, 4 at 0.10 plus the tier's flat fee.
    assert found[("cus_1", "pro", "fee", "Platform fee", ())] == Decimal("19.00")
    assert found[("cus_1", "pro", "usage", "api_calls", ())] == Decimal("1.40")
    # scale: 12 of 31 days of 62.00; 2 calls at 0.05.
    assert found[("cus_1", "scale", "fee", "Scale fee", ())] == Decimal("24.00")
    assert found[("cus_1", "scale", "usage", "api_calls", ())] == Decimal("0.10")
    fee = next(l for l in result.lines if l.kind == "fee" and l.plan == "pro")
    assert (fee.proration, fee.segment_start.isoformat(), fee.segment_end.isoformat()) == ("19/31", "2026-10-01", "2026-10-20")
    assert (iso(fee.window_start), iso(fee.window_end)) == ("2026-10-01T04:00:00Z", "2026-10-20T04:00:00Z")
    assert result.customers_rated == 1 and result.segments == 2


def test_graduated_tier_breakdown_and_price_by_lines(store, con, config, acme):
    customers = ACME_ON_PRO
    acme(
        event("t1", event_name="llm_tokens", quantity=1000, properties={"model": "big"}),
        event("t2", event_name="llm_tokens", quantity=500, properties={"model": "small"}),
        event("t3", event_name="llm_tokens", quantity=250),
        *[event(f"c{i}") for i in range(3)],
        customers=customers,
    )
    result = run(store, config)
    tokens = {tuple(l.dimensions.values()): l for l in result.lines if l.meter == "tokens"}
    # big at its own price; small and the event without a model at the charge's price.
    assert tokens[("big",)].amount == Decimal("10.00") and tokens[("big",)].unit_price == Decimal("0.01")
    assert tokens[("small",)].amount == Decimal("0.50")
    assert tokens[(None,)].amount == Decimal("0.25") and tokens[(None,)].precise_amount == "0.25"
    calls = next(l for l in result.lines if l.meter == "api_calls")
    assert [(t.tier, t.units, t.amount) for t in calls.tiers] == [(1, 2, 0), (2, 1, Decimal("1.10"))]
    assert calls.amount == Decimal("1.10") and calls.quantity == 3


def test_an_anniversary_period_is_rated_in_the_month_it_ends(store, con, config, acme):
    customers = ACME_ON_PRO.replace("billing: calendar", "billing: anniversary")
    acme(event("sep", timestamp="2026-09-20T12:00:00Z"), event("oct", timestamp="2026-10-16T12:00:00Z"), customers=customers)
    october = run(store, config)
    [fee] = [l for l in october.lines if l.kind == "fee"]
    assert (fee.period_start.isoformat(), fee.period_end.isoformat(), fee.amount) == ("2026-09-14", "2026-10-14", Decimal("31.00"))
    calls = next(l for l in october.lines if l.meter == "api_calls")
    assert calls.quantity == 1  # the Oct 16 call belongs to the next period
    november = run(store, config, "2026-11")
    assert next(l for l in november.lines if l.meter == "api_calls").quantity == 1


def test_a_partial_first_calendar_period_pays_its_days(store, con, config, acme):
    customers = ACME_ON_PRO.replace("2026-09-14", "2026-10-08")
    acme(customers=customers)
    [fee] = [l for l in run(store, config).lines if l.kind == "fee"]
    # 24 of October's 31 days: 31.00 × 24/31 = 24.00.
    assert (fee.proration, fee.amount, fee.amount_minor) == ("24/31", Decimal("24.00"), 2400)


def test_a_non_terminating_proration_rounds_once_from_the_exact_fraction(store, con, config, acme):
    (config / "pro" / "v1.yaml").write_text(PRO.replace("amount: 31.00", "amount: 49.00"))
    acme()
    fee = next(l for l in run(store, config).lines if l.kind == "fee" and l.plan == "pro")
    # 49 × 19/31 = 30.032258064516129032258...
    assert fee.amount == Decimal("30.03")
    assert fee.precise_amount == "30.03225806451612903226"


def test_zero_usage_still_gives_a_line_per_charge(store, con, config, acme):
    acme(customers=ACME_ON_PRO)
    lines = run(store, config).lines
    assert [(l.kind, l.meter, l.quantity, l.amount) for l in lines] == [
        ("fee", None, 1, Decimal("31.00")),
        ("usage", "api_calls", 0, 0),
        ("usage", "tokens", 0, 0),
    ]


def test_minimum_tops_up_and_maximum_caps_a_charge(store, con, config, acme):
    (config / "pro" / "v1.yaml").write_text(PRO.replace("    price_by: {model: {big: 0.01}}\n", "    price_by: {model: {big: 0.01}}\n    minimum: 2.00\n")
                                          .replace("      - {up_to: null, unit_price: 0.10, flat_fee: 1}\n",
                                                   "      - {up_to: null, unit_price: 0.10, flat_fee: 1}\n    maximum: 1.20\n"))
    acme(*[event(f"c{i}", timestamp="2026-10-02T00:00:00Z") for i in range(10)],
           event("t", event_name="llm_tokens", quantity=100, properties={"model": "big"}),
           customers=ACME_ON_PRO)
    lines = {(l.kind, l.meter): l.amount for l in run(store, config).lines}
    assert lines[("usage", "api_calls")] == Decimal("1.80")  # 8 × 0.10 + 1
    assert lines[("maximum", "api_calls")] == Decimal("-0.60")
    assert lines[("usage", "tokens")] == Decimal("1.00")
    assert lines[("minimum", "tokens")] == Decimal("1.00")


def test_the_version_in_force_prices_each_period(store, con, config, acme):
    (config / "pro" / "v2.yaml").write_text(PRO.replace("version: 1", "version: 2").replace("2024-01-01", "2026-11-01")
                                          .replace("amount: 31.00", "amount: 60.00"))
    acme(customers=ACME_ON_PRO)
    october, november = run(store, config, "2026-10"), run(store, config, "2026-11")
    assert {l.pricebook for l in october.lines} == {"pro@1"}
    assert {l.pricebook for l in november.lines} == {"pro@2"}
    assert next(l.amount for l in november.lines if l.kind == "fee") == Decimal("60.00")


def test_rating_again_gives_identical_lines_and_run_hash(store, con, config, acme):
    acme(*[event(f"c{i}", timestamp=f"2026-10-{10 + i}T12:00:00Z") for i in range(6)])
    first, second = run(store, config), run(store, config)
    assert (first.run_id, second.run_id) == (1, 2)
    assert first.run_hash == second.run_hash
    assert [l.canonical() for l in first.lines] == [l.canonical() for l in second.lines]
    stored = con.execute("SELECT DISTINCT run_hash FROM rating_runs").fetchall()
    assert stored == [(first.run_hash,)]


def test_stored_lines_match_the_result(store, con, config, acme):
    acme(event("t1", event_name="llm_tokens", quantity="1234.5", properties={"model": "big"}),
           *[event(f"c{i}") for i in range(4)])
    result = run(store, config)
    rows = con.execute(
        "SELECT line_no, customer_id, currency, timezone, period_start, period_end, segment_start, segment_end, "
        "strftime(window_start, '%Y-%m-%dT%H:%M:%SZ'), strftime(window_end, '%Y-%m-%dT%H:%M:%SZ'), plan, version, "
        "pricebook_hash, kind, name, meter, dimensions, quantity, unit_price, tiers, proration, precise_amount, amount, "
        "amount_minor, unmeterable FROM rated_lines WHERE run_id = ? ORDER BY line_no",
        [result.run_id]).fetchall()
    assert [row[0] for row in rows] == list(range(1, len(result.lines) + 1))
    for row, line in zip(rows, result.lines, strict=True):
        assert row[1:] == (
            line.customer_id, line.currency, line.timezone, line.period_start, line.period_end, line.segment_start,
            line.segment_end, iso(line.window_start), iso(line.window_end), line.plan, line.version, line.pricebook_hash,
            line.kind, line.name, line.meter, json.dumps(line.dimensions, sort_keys=True), line.quantity,
            line.unit_price, row[19], line.proration, line.precise_amount, line.amount, line.amount_minor, line.unmeterable)
        tiers = json.loads(row[19])
        assert row[19] == json.dumps(tiers)
        assert [{key: value if key == "tier" or value is None else Decimal(value) for key, value in t.items()} for t in tiers] \
            == [dataclasses.asdict(t) for t in line.tiers]
    assert any(line.tiers for line in result.lines) and any(line.proration for line in result.lines)
    big = next(l for l in result.lines if l.dimensions == {"model": "big"})
    assert (big.precise_amount, big.amount) == ("12.345", Decimal("12.35"))  # half_up tie
    assert scalar(con, "SELECT count(*) FROM pricebook_versions") == 2


# A second customer, on pro all month: whatever stops cus_1 must not stop her bill.
BETA = """  - id: cus_2
    name: Beta
    currency: USD
    timezone: UTC
    subscriptions:
      - {plan: pro, start: 2026-01-01}
"""


def test_an_amount_too_large_for_the_store_sets_the_customer_aside_and_rates_the_others(store, con, config, acme):
    (config / "pro" / "v1.yaml").write_text(PRO.replace("price_by: {model: {big: 0.01}}", "price_by: {model: {big: 100000000000000}}"))
    acme(event("t1", event_name="llm_tokens", quantity="10000000", properties={"model": "big"}),
         event("b1", customer_id="cus_2"), customers=ACME_CUSTOMERS + BETA)
    result = run(store, config)
    [(customer, why)] = result.unpriceable
    assert customer == "cus_1" and "beyond what an invoice line holds" in why
    assert {line.customer_id for line in result.lines} == {"cus_2"}
    assert scalar(con, "SELECT count(DISTINCT customer_id) FROM rated_lines") == 1
    assert result.refusal(len(result.lines), "nothing rated").exit_code == 65


def test_a_run_of_many_lines_is_recorded_within_a_small_memory_limit(store, con, config, acme):
    # Each line is parsed on its own row: one document of all of them was parsed as one value,
    # inside the memory limit (a run of 450,000 lines failed at the default 1 GB).
    acme(*[event(f"t{i}", event_name="llm_tokens", quantity=i, properties={"model": f"m{i}"}) for i in range(30000)])
    con.execute("SET memory_limit = '48MB'")
    result = run(store, config)
    assert len(result.lines) > 30000
    assert scalar(con, "SELECT count(*) FROM rated_lines WHERE run_id = ?", [result.run_id]) == len(result.lines)


def test_one_customers_usage_beyond_what_a_total_holds_does_not_stop_the_others(store, con, config, acme):
    # One event of the largest quantity an event may carry: with any other, the month's sum of
    # the customer's tokens no longer fits a DECIMAL(38, 18).
    acme(event("t1", event_name="llm_tokens", quantity="99999999999999999999.999999999999999999", properties={"model": "big"}),
         event("t2", event_name="llm_tokens", quantity="5", properties={"model": "big"}),
         event("b1", customer_id="cus_2", event_name="llm_tokens", quantity="1000", properties={"model": "big"}),
         customers=ACME_CUSTOMERS + BETA)
    result = run(store, config)
    [(customer, why)] = result.unpriceable
    assert customer == "cus_1" and "the usage of meter tokens sums to 10^20 or more" in why
    beta_tokens = [line for line in result.lines if line.customer_id == "cus_2" and line.meter == "tokens"]
    assert [(line.quantity, line.amount) for line in beta_tokens] == [(Decimal(1000), Decimal("10.00"))]
    assert {line.customer_id for line in result.lines} == {"cus_2"}
    refusal = result.refusal(len(result.lines), "nothing rated")
    assert refusal is not None and refusal.exit_code == 65 and "cus_1" in str(refusal)


def test_an_invoice_total_too_large_for_the_store_sets_the_customer_aside(store, con, config, acme):
    # Each line fits the store (about 6.1e18 cents); their sum does not fit 64 bits.
    (config / "pro" / "v1.yaml").write_text(PRO.replace("unit_price: 0.001", "unit_price: 999999999999999").replace(
        "price_by: {model: {big: 0.01}}", "price_by: {model: {big: 999999999999999}}"))
    acme(event("t1", event_name="llm_tokens", quantity="61", properties={"model": "big"}),
         event("t2", event_name="llm_tokens", quantity="61", properties={"model": "small"}),
         customers=ACME_CUSTOMERS + BETA)
    meters = load_meters(config)
    invoiced = build_invoices(store.events, store.ledger, load_catalog(config, meters), meters, "2026-10")
    [(customer, why)] = invoiced.rating.unpriceable
    assert customer == "cus_1" and "would total more than 9223372036854775807 minor units of USD" in why
    assert [o.customer_id for o in invoiced.outcomes] == ["cus_2"]
    assert scalar(con, "SELECT count(*) FROM invoices WHERE customer_id = 'cus_1'") == 0


def test_an_edited_frozen_pricebook_stops_rating_and_names_the_file(store, con, config, acme):
    acme(event("c1"))
    run(store, config)
    path = config / "pro" / "v1.yaml"
    path.write_text(PRO.replace("0.10", "0.11"))
    with pytest.raises(ConfigProblems) as caught:
        run(store, config)
    message = str(caught.value)
    assert str(path) in message and "pro@1 was edited after it rated usage" in message and "version: 2" in message
    assert caught.value.exit_code == 78
    # Comments and layout are not edits.
    path.write_text("# reviewed by finance\n" + PRO.replace("amount: 31.00", "amount: 31.0"))
    assert run(store, config).lines


def test_a_customer_in_another_currency_than_the_plan_is_set_aside_naming_the_pricebook(store, con, config, acme):
    acme(event("b1", customer_id="cus_2"), customers=ACME_CUSTOMERS.replace("currency: USD", "currency: EUR") + BETA)
    result = run(store, config)
    [(customer, why)] = result.unpriceable
    assert customer == "cus_1"
    assert why.startswith(f"{config / 'pro' / 'v1.yaml'}:4 currency: pro@1 prices in USD but customer cus_1 is billed in EUR")
    assert {line.customer_id for line in result.lines} == {"cus_2"}


def test_a_plan_name_no_pricebook_defines_sets_the_customer_aside(store, con, config, acme):
    # A typo in the customers file: that customer has no bill, the others do, and the run says why.
    acme(event("b1", customer_id="cus_2"), customers=ACME_CUSTOMERS.replace("plan: scale", "plan: enterprise") + BETA)
    result = run(store, config)
    [(customer, why)] = result.unpriceable
    assert customer == "cus_1" and "plan 'enterprise' has no version in force on 2026-10-20" in why
    assert {line.customer_id for line in result.lines} == {"cus_2"}
    assert scalar(con, "SELECT count(DISTINCT customer_id) FROM rated_lines") == 1


def test_simulate_still_refuses_a_plan_no_pricebook_defines(store, con, config, acme):
    # A comparison with a customer left out would show a difference that is not there.
    from meterctl.simulate import simulate

    acme(customers=ACME_CUSTOMERS.replace("plan: scale", "plan: enterprise"))
    meters = load_meters(config)
    catalog = load_catalog(config, meters)
    with pytest.raises(ConfigProblems, match="plan 'enterprise' has no version in force on 2026-10-20"):
        simulate(store.events, store.ledger, catalog, meters, catalog.get("pro", 1), "2026-10")


def test_unmeterable_events_are_reported_and_not_billed(store, con, config, acme):
    acme(event("s1", event_name="storage_report", properties={"gb": "lots"}),
           customers=ACME_ON_PRO)
    (config / "pro" / "v1.yaml").write_text(PRO + "  - {meter: storage_gb, model: per_unit, unit_price: 1}\n")
    result = run(store, config)
    storage = next(l for l in result.lines if l.meter == "storage_gb")
    assert (storage.quantity, storage.amount, storage.unmeterable) == (0, 0, 1)
    assert [(u.customer_id, u.meter, u.events) for u in result.unmeterable] == [("cus_1", "storage_gb", 1)]


def test_yen_lines_round_to_whole_yen(store, con, config, acme):
    (config / "yen").mkdir()
    (config / "yen" / "v1.yaml").write_text(
        "plan: yen\nversion: 1\neffective_from: 2024-01-01\ncurrency: JPY\nfees: [{name: Fee, amount: 1000}]\n"
        "charges:\n  - {meter: api_calls, model: per_unit, unit_price: 0.5}\n")
    customers = ACME_ON_PRO.replace("currency: USD", "currency: JPY").replace("plan: pro", "plan: yen")
    acme(*[event(f"c{i}") for i in range(3)], customers=customers)
    lines = {l.kind: l for l in run(store, config).lines}
    assert (lines["usage"].precise_amount, lines["usage"].amount, lines["usage"].amount_minor) == ("1.5", Decimal("2"), 2)
    assert lines["fee"].amount_minor == 1000






def test_the_last_partial_period_of_an_ended_subscription_is_rated_once(store, con, config, acme):
    # Anniversary periods run from the 15th; the subscription ends Oct 20, inside the
    # period [Oct 15, Nov 15): that period is rated once, for its 5 days.
    customers = acme_subscribed("{plan: pro, start: 2025-01-15, end: 2026-10-20}", billing="anniversary")
    acme(customers=customers)
    fees = {month: [(l.segment_start.isoformat(), l.segment_end.isoformat(), l.proration, l.amount)
                    for l in run(store, config, month).lines if l.kind == "fee"]
            for month in ("2026-10", "2026-11", "2026-12")}
    # The last, partial period is billed when the subscription ends: in October, with the
    # full period before it.
    assert fees == {
        "2026-10": [("2026-09-15", "2026-10-15", None, Decimal("31.00")), ("2026-10-15", "2026-10-20", "5/31", Decimal("5.00"))],
        "2026-11": [],
        "2026-12": [],
    }


def test_a_quarterly_plan_that_ends_mid_quarter_is_rated_when_it_ends(store, con, config, acme):
    pro_billed(config, "quarterly")
    customers = acme_subscribed("{plan: pro, start: 2025-01-01, end: 2026-11-10}")
    acme(event("oct", timestamp="2026-10-15T12:00:00Z"), customers=customers)
    assert run(store, config, "2026-10").lines == () and run(store, config, "2026-12").lines == ()
    # The subscription ends Nov 10, inside Q4: the quarter is billed in November, for the 40
    # of its 92 days the subscription covers (Oct 1 to Nov 9).
    november = run(store, config, "2026-11").lines
    fee = next(l for l in november if l.kind == "fee")
    assert (fee.period_start.isoformat(), fee.period_end.isoformat(), fee.proration) == ("2026-10-01", "2027-01-01", "40/92")
    assert next(l for l in november if l.meter == "api_calls").quantity == 1


def test_a_prorated_minimum_brings_the_rounded_total_exactly_to_the_rounded_minimum(store, con, config, acme):
    # September has 30 days; the subscription ends Sep 4: 3/30 of 0.15 is 0.015, which rounds
    # half-even to 0.02. Usage is 0.01, so the top-up is 0.01 (rounding 0.015 − 0.01 = 0.005
    # on its own would give 0.00 and bill a cent short).
    (config / "scale" / "v1.yaml").write_text(SCALE.replace("unit_price: 0.05", "unit_price: 0.01\n    minimum: 0.15"))
    customers = acme_subscribed("{plan: scale, start: 2025-01-01, end: 2026-09-04}")
    acme(event("c1", timestamp="2026-09-02T12:00:00Z"), customers=customers)
    lines = {l.kind: l for l in run(store, config, "2026-09").lines if l.meter == "api_calls"}
    assert (lines["usage"].amount, lines["minimum"].amount) == (Decimal("0.01"), Decimal("0.01"))
    assert (lines["minimum"].proration, lines["minimum"].precise_amount) == ("3/30", "0.01")


def test_a_prorated_maximum_line_is_its_precise_amount_rounded(store, con, config, acme):
    # 3/30 of a 0.25 cap is 0.025: half-up, 0.03. Usage is 0.05, so the cap line is -0.02,
    # and its precise amount says -0.02 too (not -0.025, which would round to -0.03).
    (config / "scale" / "v1.yaml").write_text(
        SCALE.replace("half_even", "half_up").replace("unit_price: 0.05", "unit_price: 0.05\n    maximum: 0.25"))
    acme(event("c1", timestamp="2026-09-02T12:00:00Z"),
           customers=acme_subscribed("{plan: scale, start: 2025-01-01, end: 2026-09-04}"))
    lines = run(store, config, "2026-09").lines
    cap = next(l for l in lines if l.kind == "maximum")
    assert (cap.amount, cap.precise_amount, cap.proration) == (Decimal("-0.02"), "-0.02", "3/30")
    for line in lines:
        assert Decimal(line.precise_amount).quantize(Decimal("0.01"), ROUND_HALF_UP) == line.amount, line


def test_a_customer_whose_usage_cannot_be_priced_gets_no_lines_and_the_others_are_rated(store, con, config, acme):
    # A correction larger than the month's usage leaves a negative total, which graduated
    # tiers cannot price: that customer is set aside, not the whole month.
    tokens_graduated(config)
    acme(event("t1", event_name="llm_tokens", quantity=200), event("t2", event_name="llm_tokens", quantity=-500),
           event("g1", customer_id="cus_2"), customers=ACME_ON_PRO + SECOND_CUSTOMER)
    result = run(store, config)
    assert {l.customer_id for l in result.lines} == {"cus_2"}
    assert [c for c, _ in result.unpriceable] == ["cus_1"]
    assert "customer cus_1, meter tokens" in result.unpriceable[0][1] and "negative quantity (-300" in result.unpriceable[0][1]
    assert result.customers_rated == 1 and result.run_id is not None
    again = run(store, config)
    assert (again.run_hash, again.unpriceable) == (result.run_hash, result.unpriceable)




def test_events_of_customers_never_imported_are_reported_not_silently_unbilled(store, con, config, acme):
    acme(event("c1"), event("x1", customer_id="cus_ghost"), event("x2", customer_id="cus_ghost"),
           event("x3", customer_id="cus_ghost", timestamp="2026-11-02T00:00:00Z"))
    ghosts = run(store, config).unbilled["unknown_customer"]
    assert (ghosts.events, ghosts.customers, ghosts.first_event_id) == (2, ("cus_ghost",), "x1")
    assert run(store, config, customers=["cus_1"]).unbilled["unknown_customer"].events == 0


def test_the_unbilled_event_checks_keep_to_utc_whatever_the_machine_time_zone(store, con, db, config, acme):
    # 02:00 UTC on Oct 1 is still September in New York; the month the checks cover is the UTC
    # month whatever zone the machine is in (their second connection once took the machine's).
    acme(event("c1"), event("x1", customer_id="cus_ghost", timestamp="2026-10-01T02:00:00Z"))
    store.close()  # the subprocess needs the store
    result = subprocess.run([sys.executable, "-m", "meterctl", "rate", "--period", "2026-10", "--db", str(db),
                             "--pricebooks", str(config), "--json"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TZ": "America/New_York"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["unbilled"]["unknown_customer"]["events"] == 1
    assert "unknown_customer" in result.stderr


def test_events_outside_every_subscription_are_reported(store, con, config, acme):
    # Subscribed from Oct 8 (New York): a call on Oct 7 local time is before the subscription.
    customers = ACME_ON_PRO.replace("2026-09-14", "2026-10-08")
    acme(event("early", timestamp="2026-10-08T03:59:59Z"), event("on-time", timestamp="2026-10-08T04:00:00Z"),
           customers=customers)
    result = run(store, config)
    outside = result.unbilled["outside_subscription"]
    assert (outside.events, outside.customers, outside.first_event_id) == (1, ("cus_1",), "early")
    assert next(l for l in result.lines if l.meter == "api_calls").quantity == 1


def test_a_meter_priced_by_dimension_on_one_plan_and_whole_on_another(store, con, config, acme):
    # pro prices tokens by model; scale (from Oct 20) takes them whole: one read of the
    # events serves both, and the whole quantity is the sum over every model.
    (config / "scale" / "v1.yaml").write_text(SCALE + "  - {meter: tokens, model: per_unit, unit_price: 0.1}\n")
    acme(event("t0", event_name="llm_tokens", quantity=100, properties={"model": "big"}),
           event("t1", event_name="llm_tokens", quantity=10, properties={"model": "big"}, timestamp="2026-10-25T12:00:00Z"),
           event("t2", event_name="llm_tokens", quantity=5, properties={"model": "small"}, timestamp="2026-10-26T12:00:00Z"),
           event("t3", event_name="llm_tokens", quantity="2.5", timestamp="2026-10-27T12:00:00Z"))
    tokens = [(l.plan, l.dimensions, l.quantity, l.amount) for l in run(store, config).lines if l.meter == "tokens"]
    assert tokens == [("pro", {"model": "big"}, 100, Decimal("1.00")), ("scale", {}, Decimal("17.5"), Decimal("1.75"))]


def test_a_cancelled_yearly_subscription_is_billed_in_the_month_it_ends(store, con, config, acme):
    pro_billed(config, "yearly", **{"amount: 31.00": "amount: 365.00"})
    customers = acme_subscribed("{plan: pro, start: 2025-03-10, end: 2026-06-10}", billing="anniversary")
    acme(customers=customers)
    june = [(l.period_start.isoformat(), l.period_end.isoformat(), l.proration, l.amount) for l in run(store, config, "2026-06").lines
            if l.kind == "fee"]
    # Mar 10 2026 to Jun 9: 92 of the period's 365 days, invoiced in June, not next March.
    assert june == [("2026-03-10", "2027-03-10", "92/365", Decimal("92.00"))]
    assert run(store, config, "2027-03").lines == ()


def test_a_quarterly_plan_is_rated_in_the_month_its_quarter_ends(store, con, config, acme):
    pro_billed(config, "quarterly")
    customers = acme_subscribed("{plan: pro, start: 2025-01-01}")
    acme(event("oct", timestamp="2026-10-15T12:00:00Z"), customers=customers)
    assert run(store, config, "2026-10").lines == () and run(store, config, "2026-11").lines == ()
    december = run(store, config, "2026-12").lines
    fee = next(l for l in december if l.kind == "fee")
    assert (fee.period_start.isoformat(), fee.period_end.isoformat(), fee.proration, fee.amount) == (
        "2026-10-01", "2027-01-01", None, Decimal("31.00"))


def test_every_rated_lines_canonical_json_is_what_json_dumps_writes(store, con, config, acme):
    # Rating encodes the values a segment's lines share once, per segment: the hashes must
    # still cover exactly each line's own canonical() document.
    (config / "pro" / "v1.yaml").write_text(PRO.replace("    price_by: {model: {big: 0.01}}\n",
                                                        "    price_by: {model: {big: 0.01}}\n    minimum: 5\n"))
    acme(event("c1", timestamp="2026-10-02T12:00:00Z"), event("c2", timestamp="2026-10-25T12:00:00Z"),
           event("t1", event_name="llm_tokens", quantity=7, properties={"model": "big"}))
    result = run(store, config)
    assert {l.kind for l in result.lines} == {"fee", "usage", "minimum"} and {l.plan for l in result.lines} == {"pro", "scale"}
    for line in result.lines:
        assert line.canonical_json() == json.dumps(line.canonical(), sort_keys=True, separators=(",", ":"))


def test_free_units_per_day_are_taken_off_each_day(store, con, config, acme):
    # Flexprice's daily reset: 10 free calls a day; days of 15, 3 and 12 calls at 0.02 bill
    # 5 + 0 + 2 = 7 calls, 0.14 (one allowance for the month would have billed 20, 0.40).
    (config / "pro" / "v1.yaml").write_text(PRO.replace(
        """  - meter: api_calls
    model: graduated
    tiers:
      - {up_to: 2, unit_price: 0}
      - {up_to: null, unit_price: 0.10, flat_fee: 1}""",
        """  - meter: api_calls
    model: per_unit
    unit_price: 0.02
    free_units: 10
    free_units_per: day"""))
    days = {"2026-10-05": 15, "2026-10-06": 3, "2026-10-07": 12}
    acme(*[event(f"{day}-{i}", timestamp=f"{day}T15:00:00Z") for day, count in days.items() for i in range(count)],
         customers=ACME_ON_PRO)
    result = run(store, config)
    [calls] = [line for line in result.lines if line.meter == "api_calls"]
    assert (calls.quantity, calls.amount) == (Decimal(30), Decimal("0.14"))


def test_free_units_per_window_follow_the_customers_days_and_dimensions(store, con, config, acme):
    # New York days: 12 calls on the 5th (three of them at 03:00Z on the 6th, still the 5th
    # there), 4 on the 6th; per model, 10 free a day each: big 12 → 2, small 4 → 0.
    (config / "pro" / "v1.yaml").write_text(PRO.replace(
        "    price_by: {model: {big: 0.01}}", "    price_by: {model: {big: 0.01}}\n    free_units: 1000\n    free_units_per: day"))
    records = [event(f"a{i}", event_name="llm_tokens", quantity=100, properties={"model": "big"},
                     timestamp="2026-10-05T15:00:00Z") for i in range(9)]
    records += [event(f"b{i}", event_name="llm_tokens", quantity=100, properties={"model": "big"},
                      timestamp="2026-10-06T03:00:00Z") for i in range(3)]
    records += [event(f"c{i}", event_name="llm_tokens", quantity=100, properties={"model": "big"},
                      timestamp="2026-10-06T15:00:00Z") for i in range(4)]
    records += [event(f"d{i}", event_name="llm_tokens", quantity=100, properties={"model": "small"},
                      timestamp="2026-10-06T15:00:00Z") for i in range(4)]
    acme(*records, customers=ACME_ON_PRO)
    result = run(store, config)
    tokens = {line.dimensions.get("model"): line for line in result.lines if line.meter == "tokens"}
    # big: 1,200 tokens on the 5th (200 over 1,000), 400 on the 6th (none over): 200 × 0.01.
    assert (tokens["big"].quantity, tokens["big"].amount) == (Decimal(1600), Decimal("2.00"))
    assert (tokens["small"].quantity, tokens["small"].amount) == (Decimal(400), Decimal(0))


def test_a_week_allowance_starts_on_monday_in_the_customers_time_zone():
    from meterctl.rating.price import allowance_windows

    start, end = datetime(2026, 10, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC)  # October in New York
    weeks = allowance_windows("week", start, end, "America/New_York")
    assert weeks[0] == (start, datetime(2026, 10, 5, 4, tzinfo=UTC))  # cut at the segment's start: a Thursday
    assert weeks[1][0] == datetime(2026, 10, 5, 4, tzinfo=UTC) and len(weeks) == 5  # ... to the 26th, cut at Nov 1
    assert weeks[-1][1] == end
    days = allowance_windows("day", datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 3, 5, tzinfo=UTC),
                             "America/New_York")
    assert days[0] == (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))  # 25 hours
