"""Taxes on invoices: per tax code, the rate applied once to the net after credits and
rounded with the pricebook's rounding mode; several codes add; reverse charge taxes nothing;
an invoice is derived again at the rates it applied.

Each customer is on a flat plan (one monthly fee, no usage) in its own currency, billed in
UTC calendar months: October's invoice is that fee.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from meterctl.config_yaml import ConfigProblems
from meterctl.session import Session

AFTER = datetime(2026, 11, 20, tzinfo=UTC)
TAXES = """taxes:
  - {code: GST, name: GST, rate: 0.05}
  - {code: QST, name: QST, rate: 0.09975}
  - {code: TIE, name: Tie tax, rate: 0.025}
  - {code: JCT, name: Consumption tax, rate: 0.08}
"""


def flat(plan: str, currency: str, fee: str, rounding: str = "half_up") -> str:
    return (f"plan: {plan}\nversion: 1\neffective_from: 2024-01-01\ncurrency: {currency}\nrounding: {rounding}\n"
            f"fees:\n  - {{name: Platform fee, amount: {fee}}}\n")


def customer(customer_id: str, plan: str, currency: str, extra: str = "") -> str:
    return (f"  - id: {customer_id}\n    name: {customer_id}\n    currency: {currency}\n    timezone: UTC\n"
            f"    subscriptions:\n      - {{plan: {plan}, start: 2026-01-01}}\n{extra}")


@pytest.fixture
def billed(tmp_path, config, write):
    """billed(customers, plans) -> a Session with October invoiced (drafts), taxes.yaml in place."""
    (config / "taxes.yaml").write_text(TAXES)
    opened: list[Session] = []

    def _billed(customers: str, plans: dict[str, str], finalize: bool = False) -> Session:
        for plan, text in plans.items():
            (config / plan).mkdir(exist_ok=True)
            (config / plan / "v1.yaml").write_text(text)
        s = Session(tmp_path / "taxes.duckdb", config)
        opened.append(s)
        s.import_customers(write("customers.yaml", "customers:\n" + customers))
        s.invoice("2026-10", now=AFTER, finalize=finalize)
        return s

    yield _billed
    for s in opened:
        s.close()


def taxes_of(s: Session, customer_id: str):
    [invoice] = s.invoices(period="2026-10", customers=[customer_id])
    full = s.get_invoice(invoice.invoice_id)
    return full, [(t.code, t.taxable_minor, t.amount_minor) for t in full.taxes]


def test_several_codes_add_each_rounded_once(billed):
    s = billed(customer("cus_ca", "flat", "USD", "    taxes: [GST, QST]\n"), {"flat": flat("flat", "USD", "100.00")})
    invoice, taxes = taxes_of(s, "cus_ca")
    assert taxes == [("GST", 10000, 500), ("QST", 10000, 998)]  # 9.975 rounds half up to 9.98
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (10000, 1498, 11498)


@pytest.mark.parametrize(("rounding", "expected"), [("half_up", 3), ("half_even", 2)])
def test_a_tie_rounds_by_the_pricebooks_mode(billed, rounding, expected):
    # 2.5% of 1.00 is 0.025: a tie at the cent.
    s = billed(customer("cus_t", "flat", "USD", "    taxes: [TIE]\n"), {"flat": flat("flat", "USD", "1.00", rounding)})
    assert taxes_of(s, "cus_t")[1] == [("TIE", 100, expected)]


def test_taxes_apply_to_what_is_left_after_credits(billed, write):
    s = billed(customer("cus_ca", "flat", "USD", "    taxes: [GST, QST]\n"), {"flat": flat("flat", "USD", "100.00")})
    s.grant("cus_ca", amount="40", effective="2026-10-01", applies_to=["all"], now=AFTER)
    s.invoice("2026-10", now=AFTER)
    invoice, taxes = taxes_of(s, "cus_ca")
    assert taxes == [("GST", 6000, 300), ("QST", 6000, 599)]  # 5.985 → 5.99
    assert (invoice.subtotal_minor, invoice.credits_minor, invoice.tax_minor, invoice.total_minor) == (10000, 4000, 899, 6899)


def test_taxes_in_currencies_of_0_2_and_3_decimals(billed):
    s = billed(customer("cus_jp", "flat_jpy", "JPY", "    taxes: [JCT]\n")
               + customer("cus_us", "flat", "USD", "    taxes: [JCT]\n")
               + customer("cus_kw", "flat_kwd", "KWD", "    taxes: [GST]\n"),
               {"flat_jpy": flat("flat_jpy", "JPY", "999"), "flat": flat("flat", "USD", "9.99"),
                "flat_kwd": flat("flat_kwd", "KWD", "1.235")})
    assert taxes_of(s, "cus_jp")[1] == [("JCT", 999, 80)]  # ¥79.92 → ¥80
    assert taxes_of(s, "cus_us")[1] == [("JCT", 999, 80)]  # $0.7992 → $0.80
    assert taxes_of(s, "cus_kw")[1] == [("GST", 1235, 62)]  # 0.06175 KWD → 0.062


def test_reverse_charge_taxes_nothing(billed):
    s = billed(customer("cus_eu", "flat", "USD", "    tax_id: DE123456789\n    tax_exempt: reverse_charge\n"),
               {"flat": flat("flat", "USD", "100.00")})
    invoice, taxes = taxes_of(s, "cus_eu")
    assert taxes == [] and (invoice.tax_minor, invoice.total_minor) == (0, 10000)


def test_a_tax_code_taxes_yaml_lacks_stops_the_run_before_anything_is_written(billed, tmp_path, config, write):
    s = billed(customer("cus_ca", "flat", "USD", "    taxes: [GST]\n"), {"flat": flat("flat", "USD", "100.00")})
    s.import_customers(write("customers.yaml", "customers:\n" + customer("cus_ca", "flat", "USD", "    taxes: [HST]\n")))
    before = s.invoices(period="2026-10")
    with pytest.raises(ConfigProblems) as caught:
        s.invoice("2026-10", now=AFTER)
    assert caught.value.exit_code == 78 and "tax 'HST' is not in taxes.yaml" in str(caught.value)
    assert s.invoices(period="2026-10") == before


def test_a_taxed_invoice_is_derived_again_at_the_rates_it_applied(billed, config):
    s = billed(customer("cus_ca", "flat", "USD", "    taxes: [GST, QST]\n"), {"flat": flat("flat", "USD", "100.00")},
               finalize=True)
    invoice, _ = taxes_of(s, "cus_ca")
    (config / "taxes.yaml").write_text(TAXES.replace("rate: 0.05", "rate: 0.06"))  # GST goes up later
    verified = s.verify(invoice.number)
    assert verified.identical and verified.derived_total_minor == 11498
    reconciled = s.reconcile("2026-10", now=AFTER)
    assert next(c for c in reconciled.checks if c.name == "invoice_arithmetic").ok


def test_the_json_export_lists_each_tax(billed, tmp_path):
    s = billed(customer("cus_ca", "flat", "USD", "    taxes: [GST, QST]\n"), {"flat": flat("flat", "USD", "100.00")})
    s.export("json", tmp_path / "invoices.json", period="2026-10")
    [document] = json.loads((tmp_path / "invoices.json").read_text())["invoices"]
    assert document["taxes"] == [
        {"code": "GST", "name": "GST", "rate": "0.05", "taxable_minor": 10000, "amount_minor": 500},
        {"code": "QST", "name": "QST", "rate": "0.09975", "taxable_minor": 10000, "amount_minor": 998}]
    assert (document["tax_minor"], document["total_minor"]) == (1498, 11498)
    s.export("html", tmp_path / "pages", period="2026-10")
    page = next((tmp_path / "pages").glob("*.html")).read_text()
    assert "QST 9.975% of 100.00" in page and "9.98" in page
