"""`meterctl rate` from the command line: its JSON, its errors, and exit 65 when a customer cannot be priced."""

from __future__ import annotations

import json

import pytest

from meterctl.store import open_store
from tests.conftest import event
from tests.tenants import ACME_ON_PRO, SECOND_CUSTOMER, tokens_graduated


def test_rate_command_json_uses_strings_for_decimals(cli, db, config, acme):
    acme(event("c1"), event("c2"), event("c3"))
    result = cli("rate", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    line = next(l for l in document["lines"] if l["meter"] == "api_calls" and l["pricebook"] == "pro@1")
    assert {k: line[k] for k in ("customer_id", "quantity", "amount", "precise_amount", "currency", "dimensions")} == {
        "customer_id": "cus_1", "quantity": "3", "amount": "1.10", "precise_amount": "1.1", "currency": "USD", "dimensions": {}}
    assert document["run_id"] == 1 and len(document["run_hash"]) == 64

def test_rate_command_errors(cli, db, config, acme):
    acme()
    assert cli("rate", "--period", "2026-13", "--db", db, "--pricebooks", config).exit_code == 2
    missing = cli("rate", "--period", "2026-10", "--customer", "cus_404", "--db", db, "--pricebooks", config)
    assert missing.exit_code == 65 and "cus_404" in missing.stderr

def test_rate_and_invoice_exit_65_after_rating_the_others_when_a_customer_cannot_be_priced(cli, db, config, acme):
    tokens_graduated(config)
    acme(event("t1", event_name="llm_tokens", quantity=-5), event("g1", customer_id="cus_2"),
           customers=ACME_ON_PRO + SECOND_CUSTOMER)
    rated = cli("rate", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert rated.exit_code == 65
    document = json.loads(rated.stdout)
    assert {l["customer_id"] for l in document["lines"]} == {"cus_2"}
    assert [u["customer_id"] for u in document["unpriceable"]] == ["cus_1"]
    assert "warning: cus_1 not rated: customer cus_1, meter tokens" in rated.stderr
    assert "1 customer(s) could not be priced and have no lines, so no bill" in rated.stderr
    invoiced = cli("invoice", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert invoiced.exit_code == 65
    assert [i["customer_id"] for i in json.loads(invoiced.stdout)["invoices"]] == ["cus_2"]


@pytest.mark.parametrize("command", ["rate", "invoice", "simulate"])
def test_a_malformed_month_is_said_before_anything_about_customers(cli, db, config, command):
    open_store(db).close()  # a store without customers: simulate only reads one
    extra = ["--pricebook", config / "pro" / "v1.yaml"] if command == "simulate" else []
    for customers in ([], ["--customer", "nobody"]):
        result = cli(command, "--period", "2026-13", "--db", db, "--pricebooks", config, *customers, *extra)
        assert result.exit_code == 2, result.output
        assert result.stderr == "meterctl: --period: invalid month '2026-13': month must be 01 to 12\n"


@pytest.mark.parametrize("command", ["rate", "invoice", "simulate"])
def test_a_month_too_early_to_have_a_billing_period_is_a_usage_error(cli, db, config, command):
    open_store(db).close()
    extra = ["--pricebook", config / "pro" / "v1.yaml"] if command == "simulate" else []
    early = cli(command, "--period", "0001-01", "--db", db, "--pricebooks", config, *extra)
    assert early.exit_code == 2, early.output
    assert "invalid month '0001-01': year out of range" in early.stderr
    # The first month that has one before it: nothing ends in it, which is no bug either.
    second_year = cli(command, "--period", "0002-01", "--db", db, "--pricebooks", config, *extra)
    assert second_year.exit_code in (0, 65) and "internal error" not in second_year.stderr


def test_a_plan_name_typo_in_the_customers_file_bills_everyone_else(cli, db, config, acme, write):
    # Imported with a note; then only that customer is set aside, and the month exits 65 at the end.
    acme(event("c1", customer_id="cus_2"), customers=ACME_ON_PRO.replace("plan: pro", "plan: prro") + SECOND_CUSTOMER)
    invoiced = cli("invoice", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert invoiced.exit_code == 65
    document = json.loads(invoiced.stdout)
    assert [i["customer_id"] for i in document["invoices"]] == ["cus_2"]
    [set_aside] = document["unpriceable"]
    assert set_aside["customer_id"] == "cus_1" and "plan 'prro' has no version in force" in set_aside["reason"]
    assert "warning: cus_1 not rated" in invoiced.stderr


def test_one_event_too_large_to_total_sets_its_customer_aside_and_invoices_the_others(cli, db, config, acme):
    acme(event("t1", event_name="llm_tokens", quantity="99999999999999999999.999999999999999999"),
         event("t2", event_name="llm_tokens", quantity="1"),
         event("g1", customer_id="cus_2"), customers=ACME_ON_PRO + SECOND_CUSTOMER)
    rated = cli("rate", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert rated.exit_code == 65, rated.stderr
    document = json.loads(rated.stdout)
    assert {l["customer_id"] for l in document["lines"]} == {"cus_2"}
    assert [u["customer_id"] for u in document["unpriceable"]] == ["cus_1"]
    assert "sums to 10^20 or more" in document["unpriceable"][0]["reason"]
    invoiced = cli("invoice", "--period", "2026-10", "--db", db, "--pricebooks", config, "--json")
    assert invoiced.exit_code == 65
    assert [i["customer_id"] for i in json.loads(invoiced.stdout)["invoices"]] == ["cus_2"]
