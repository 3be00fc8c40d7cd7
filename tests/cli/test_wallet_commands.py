"""`meterctl wallet …`: grants, idempotency keys, voids, balances and the ledger."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ACME_CUSTOMERS
from tests.tenants import SECOND_CUSTOMER


@pytest.fixture
def wallets(cli, db, config, write):
    """Acme (New York) and Globex (UTC), both in USD; `wallet(*args)` runs a wallet command."""
    assert cli("customers", "import", write("customers.yaml", ACME_CUSTOMERS + SECOND_CUSTOMER), "--db", db).exit_code == 0

    def wallet(*args):
        return cli("wallet", *args, "--db", db, *(["--pricebooks", config] if args[0] == "grant" else []))

    return wallet


def granted(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def ok(result) -> None:
    assert result.exit_code == 0, result.stderr


def available(wallet, customer: str, at: str | None = None) -> str:
    shown = granted(wallet("balance", customer, "--json", *(["--at", at] if at else [])))
    return shown[0]["available"]


def test_a_grant_is_recorded_with_its_id_and_shows_in_the_balance(wallets):
    made = granted(wallets("grant", "cus_1", "--amount", "50", "--name", "Top-up", "--effective", "2026-10-01", "--json"))
    assert made["grant_id"] == "cus_1-g1" and made["amount"] == "50" and made["currency"] == "USD"
    assert made["effective"] == "2026-10-01T04:00:00Z"  # midnight in New York
    assert made["applies_to"] == ["usage"] and made["created"] is True
    assert available(wallets, "cus_1") == "50"
    assert available(wallets, "cus_1", "2026-09-30T00:00:00Z") == "0"  # not yet in effect then


def test_credits_at_a_rate_are_worth_credits_times_rate_exactly(wallets):
    made = granted(wallets("grant", "cus_2", "--credits", "100", "--rate", "1.123456", "--json"))
    assert (made["amount"], made["credits"], made["rate"]) == ("112.3456", "100", "1.123456")


def test_the_same_key_and_request_return_the_first_grant_and_grant_nothing_more(wallets):
    first = granted(wallets("grant", "cus_2", "--amount", "20", "--key", "stripe-pi-1", "--json"))
    again = granted(wallets("grant", "cus_2", "--amount", "20", "--key", "stripe-pi-1", "--json"))
    assert again["grant_id"] == first["grant_id"] and again["created"] is False
    assert available(wallets, "cus_2") == "20"


def test_the_same_key_with_other_parameters_is_refused_and_grants_nothing(wallets):
    ok(wallets("grant", "cus_2", "--amount", "20", "--key", "stripe-pi-1"))
    refused = wallets("grant", "cus_2", "--amount", "25", "--key", "stripe-pi-1")
    assert refused.exit_code == 65
    assert "idempotency key 'stripe-pi-1' was used for grant cus_2-g1 with other parameters" in refused.stderr
    assert available(wallets, "cus_2") == "20"


@pytest.mark.parametrize(("args", "code", "message"), [
    (("cus_2", "--amount", "0"), 2, "--amount: 0 must be more than zero"),
    (("cus_2", "--amount", "-5"), 2, "--amount: -5 must be more than zero"),
    (("cus_2", "--amount", "lots"), 2, "--amount: 'lots' is not a decimal number"),
    (("cus_2", "--credits", "100", "--rate", "0"), 2, "--rate: 0 must be more than zero"),
    (("cus_2", "--credits", "-1", "--rate", "0.01"), 2, "--credits: -1 must be more than zero"),
    (("cus_2", "--credits", "100"), 2, "give --amount, or --credits with --rate"),
    (("cus_2", "--amount", "5", "--credits", "100", "--rate", "1"), 2, "not both"),
    (("cus_2", "--amount", "5", "--currency", "EUR"), 2, "--currency: cus_2 is billed in USD, not EUR"),
    (("cus_404", "--amount", "5"), 65, "--customer: no customer 'cus_404'"),
    (("cus_2", "--amount", "5", "--effective", "2026-10-01", "--expires", "2026-10-01"), 2, "--expires:"),
    (("cus_2", "--amount", "5", "--applies-to", "usage", "--applies-to", "api_calls"), 2, "--applies-to:"),
    (("cus_2", "--amount", "5", "--applies-to", "telepathy"), 2, "--applies-to: unknown meter(s) telepathy"),
    (("cus_2", "--amount", "0.0000000000000000001"), 2, "cannot be kept exactly"),
])
def test_a_bad_grant_is_refused_and_nothing_is_recorded(wallets, args, code, message):
    refused = wallets("grant", *args)
    assert refused.exit_code == code, refused.stderr
    assert message in refused.stderr
    assert granted(wallets("balance", "cus_2", "--json"))[0]["grants"] == []


def test_a_void_takes_what_is_left_from_then_on_and_keeps_what_was_before(wallets):
    ok(wallets("grant", "cus_2", "--amount", "30", "--effective", "2026-10-01"))
    voided = granted(wallets("void", "cus_2-g1", "--at", "2026-10-15T00:00:00Z", "--json"))
    assert (voided["voided_at"], voided["released"]) == ("2026-10-15T00:00:00Z", "30")
    assert available(wallets, "cus_2", "2026-10-14T00:00:00Z") == "30"
    assert available(wallets, "cus_2", "2026-10-16T00:00:00Z") == "0"
    again = wallets("void", "cus_2-g1")
    assert again.exit_code == 65 and "was voided already" in again.stderr
    unknown = wallets("void", "cus_2-g9")
    assert unknown.exit_code == 65 and "no grant 'cus_2-g9'" in unknown.stderr


def test_the_ledger_lists_every_entry_with_the_running_balance_and_records_expiries(wallets):
    ok(wallets("grant", "cus_2", "--amount", "10", "--effective", "2026-09-01", "--expires", "2026-10-01",
               "--name", "Promo"))
    ok(wallets("grant", "cus_2", "--amount", "25", "--effective", "2026-09-15", "--name", "Top-up"))
    lines = granted(wallets("ledger", "cus_2", "--json"))
    assert [(l["kind"], l["name"], l["amount"], l["balance"], l["recorded"]) for l in lines] == [
        ("grant", "Promo", "10", "10", True),
        ("grant", "Top-up", "25", "35", True),
        ("expiry", "Promo", "-10", "25", True),  # written by the second grant, the first write after it
    ]
    assert [g["status"] for g in granted(wallets("balance", "cus_2", "--json"))[0]["grants"]] == ["expired", "active"]


GRANTS_YAML = """grants:
  - {customer: cus_1, key: pi_1, amount: 50, name: Top-up, effective: 2026-10-01}
  - {customer: cus_2, key: promo-oct, credits: 1000, rate: 0.01, expires: 2026-12-31, priority: 1}
"""


def test_a_grants_file_is_imported_once_whatever_the_reruns(wallets, write):
    path = write("grants.yaml", GRANTS_YAML)
    first = granted(wallets("import", path, "--json"))
    assert (first["grants"], first["created"]) == (2, 2)
    again = granted(wallets("import", path, "--json"))
    assert (again["grants"], again["created"]) == (2, 0)
    assert (available(wallets, "cus_1"), available(wallets, "cus_2")) == ("50", "10")


def test_a_grants_csv_reads_like_the_yaml(wallets, write):
    path = write("grants.csv", "customer,key,amount,credits,rate,name,applies_to\n"
                               "cus_1,pi_1,50,,,Top-up,usage\ncus_2,promo,,1000,0.01,Promo,all\n")
    assert granted(wallets("import", path, "--json"))["created"] == 2
    shown = granted(wallets("balance", "cus_2", "--json"))[0]["grants"]
    assert [(g["name"], g["remaining"]) for g in shown] == [("Promo", "10")]


def test_a_bad_grants_file_names_every_problem_and_grants_nothing(wallets, write):
    path = write("grants.yaml", "grants:\n"
                                "  - {customer: cus_1, key: a, amount: -5}\n"
                                "  - {customer: cus_404, key: b, amount: 5}\n"
                                "  - {customer: cus_2, amount: 5}\n"
                                "  - {customer: cus_2, key: c, amount: 5, colour: blue}\n")
    refused = wallets("import", path)
    assert refused.exit_code == 78
    assert f"{path}:2 grants[0]: amount: -5 must be more than zero" in refused.stderr
    assert f"{path}:3 grants[1]: customer: no customer 'cus_404'" in refused.stderr
    assert f"{path}:4 grants[2].key: missing" in refused.stderr
    assert f"{path}:5 grants[3].colour: unknown key" in refused.stderr
    assert available(wallets, "cus_1") == "0" and available(wallets, "cus_2") == "0"


def test_a_key_reused_with_other_parameters_stops_the_whole_file(wallets, write):
    ok(wallets("grant", "cus_1", "--amount", "50", "--key", "pi_1"))
    path = write("grants.yaml", GRANTS_YAML)  # pi_1 there says effective 2026-10-01 and a name
    refused = wallets("import", path)
    assert refused.exit_code == 65 and f"{path}:2:" in refused.stderr and "nothing of the file was granted" in refused.stderr
    assert available(wallets, "cus_2") == "0"
