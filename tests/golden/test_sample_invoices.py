"""The sample tenant, invoiced with the bundled pricebooks, against facts worked out here."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from meterctl.session import Session
from tests.conftest import REPO, SAMPLE

PER_CUSTOMER = json.loads((SAMPLE / "events-2026-10.expected.json").read_text())["per_customer"]


@pytest.fixture
def october(db):
    with Session(db=db, config=REPO / "pricebooks") as session:
        session.import_customers(SAMPLE / "customers.yaml")
        session.ingest([SAMPLE / "events-2026-10.jsonl"])
        session.invoice("2026-10")
        yield session


def cents(amount: Fraction | Decimal) -> int:
    return int((Decimal(amount.numerator) / Decimal(amount.denominator) if isinstance(amount, Fraction) else amount)
               .quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)


def test_every_customer_with_a_period_ending_in_october_has_one_invoice(october):
    invoices = [october.get_invoice(i.invoice_id) for i in october.invoices()]
    assert len(invoices) == len({i.customer_id for i in invoices}) == 50
    for invoice in invoices:
        assert invoice.subtotal_minor == sum(line.amount_minor for line in invoice.lines) == invoice.total_minor


def test_a_utc_calendar_customer_is_billed_for_exactly_its_october_events(october):
    facts = PER_CUSTOMER["cus_000041"]  # pro, UTC, calendar: the period is the UTC month
    invoice = october.get_invoice("cus_000041-20261001-r1")
    lines = {(l.meter, tuple(l.dimensions.values())): l for l in invoice.lines if l.kind == "usage"}
    calls = facts["api_call"]["events"]
    assert lines[("api_calls", ())].quantity == calls
    # pro@1: the first 100 calls free, then 0.0015 each up to 1000 with a 1.00 flat fee.
    assert lines[("api_calls", ())].amount_minor == cents(Decimal(1) + (min(calls, 1000) - 100) * Decimal("0.0015"))
    tokens = sum(l.quantity for (meter, _), l in lines.items() if meter == "tokens")
    assert tokens == Decimal(facts["llm_tokens"]["quantity_sum"])
    assert lines[("active_users", ())].quantity == facts["login"]["distinct_user_id"]
    assert lines[("storage_gb", ())].quantity == Decimal(facts["storage_report"]["max_gb"])


def test_the_plan_change_and_the_new_customer_pay_fees_by_day(october):
    change = october.get_invoice("cus_000017-20261001-r1")  # starter until Oct 14, pro from Oct 15
    fees = [(l.name, l.amount_minor) for l in change.lines if l.kind == "fee"]
    assert fees == [("Starter platform fee", cents(Fraction(1900, 100) * Fraction(14, 31))),
                    ("Pro platform fee", cents(Fraction(4900, 100) * Fraction(17, 31)))]
    new = october.get_invoice("cus_000044-20261020-r1")  # starts Oct 20: 12 of 31 days
    assert [l.amount_minor for l in new.lines if l.kind == "fee"] == [cents(Fraction(19) * Fraction(12, 31))]
    idle = october.get_invoice("cus_000049-20261001-r1")  # no events: the fee alone
    assert idle.total_minor == 1900 and all(l.amount_minor == 0 for l in idle.lines if l.kind != "fee")


def test_yen_invoices_have_no_minor_unit(october):
    yen = [i for i in [october.get_invoice(i.invoice_id) for i in october.invoices()] if i.currency == "JPY"]
    assert len(yen) == 2
    for invoice in yen:
        assert all(line.amount == line.amount_minor for line in invoice.lines)
        assert next(l for l in invoice.lines if l.kind == "fee").amount_minor == 2900


def test_the_sample_grants_show_on_their_customers_invoices(october):
    october.import_grants(SAMPLE / "grants.yaml")
    october.invoice("2026-10")
    by_customer = {i.customer_id: october.get_invoice(i.invoice_id) for i in october.invoices()}
    acme = by_customer["cus_000001"]  # a 10.00 top-up for usage: its usage lines come to more
    assert sum(l.amount_minor for l in acme.lines if l.meter) > 1000
    assert (acme.credits_minor, acme.total_minor) == (1000, acme.subtotal_minor - 1000)
    globex = by_customer["cus_000002"]
    # The promotion (1,000 credits × 0.05 = 50.00, fees too, priority 1) takes its 50.00 from
    # the first line, the platform fee; the 100.00 top-up then pays usage lines.
    assert globex.credits_by_grant() == [("cus_000002-g1", "October promotion", 5000), ("cus_000002-g2", "Top-up", 10000)]
    assert globex.credits[0].line_no == 1 and globex.lines[0].kind == "fee"
    tokens_only = by_customer["cus_000017"]  # 1.00 of token credits: pays its token lines, nothing else
    token_lines = sum(l.amount_minor for l in tokens_only.lines if l.meter == "tokens")
    assert tokens_only.credits_minor == min(100, token_lines)
    assert {tokens_only.lines[c.line_no - 1].meter for c in tokens_only.credits} == {"tokens"}
    yen = by_customer["cus_000026"]  # 500 yen, whole yen
    assert (yen.credits_minor, yen.currency) == (500, "JPY")
    untouched = [i for c, i in by_customer.items() if c not in ("cus_000001", "cus_000002", "cus_000017", "cus_000026")]
    assert all(i.credits_minor == 0 for i in untouched)
