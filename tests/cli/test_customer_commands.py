"""`meterctl customers …` and `meterctl periods` from the command line: notes, exit codes, option ranges."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ACME_CUSTOMERS as ACME
from tests.conftest import SCALE

MISPRICED = """customers:
  - {id: eu_1, name: Euro GmbH, currency: EUR, timezone: Europe/Berlin, subscriptions: [{plan: pro, start: 2026-10-01}]}
  - {id: new_1, name: Newco, currency: USD, timezone: UTC, subscriptions: [{plan: enterprise, start: 2026-10-01}]}
  - {id: early_1, name: Early, currency: USD, timezone: UTC, subscriptions: [{plan: pro, start: 2023-06-01}]}
  - {id: ok_1, name: Fine, currency: USD, timezone: UTC, subscriptions: [{plan: scale, start: 2026-10-01}]}
  - id: swap_1
    name: Upgrader
    currency: USD
    timezone: UTC
    subscriptions: [{plan: pro, start: 2026-01-01, end: 2026-10-10}, {plan: scale, start: 2026-10-10}]
  - id: long_ago_1
    name: Returning
    currency: USD
    timezone: UTC
    subscriptions: [{plan: pro, start: 2024-01-01, end: 2024-06-01}, {plan: scale, start: 2025-07-01}]
"""


def test_customers_commands(cli, db, write):
    bad = write("bad.yaml", ACME.replace("currency: USD", "currency: dollars"))
    result = cli("customers", "import", "--db", db, bad)
    assert result.exit_code == 78 and "currency" in result.stderr
    assert cli("customers", "import", "--db", db, write("c.yaml", ACME)).exit_code == 0
    [listed] = json.loads(cli("customers", "list", "--db", db, "--json").stdout)
    assert (listed["customer_id"], listed["version"]) == ("cus_1", 1)
    shown = json.loads(cli("customers", "show", "cus_1", "--db", db, "--json").stdout)
    assert shown["customer"]["name"] == "Acme Corp"
    assert cli("customers", "show", "nobody", "--db", db).exit_code == 65

def test_import_names_subscriptions_that_rating_would_refuse_but_imports_them(cli, db, write, config):
    (config / "scale" / "v1.yaml").write_text(SCALE.replace("currency: USD", "currency: USD\nbilling_cycle: quarterly"))
    result = cli("customers", "import", "--db", db, "--pricebooks", config, write("c.yaml", MISPRICED), "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["added"] == 6
    notes = document["plan_notes"]
    assert len(notes) == 4
    # monthly pro until Oct 10, quarterly scale from then: rating would refuse the customer
    assert any("swap_1" in n and "'pro' (monthly)" in n and "'scale' (quarterly, from 2026-10-10)" in n for n in notes)
    assert any("eu_1" in n and "prices in USD" in n and "billed in EUR" in n for n in notes)
    assert any("new_1" in n and "'enterprise'" in n and "no pricebook" in n and "pro, scale" in n for n in notes)
    assert any("early_1" in n and "pro@1" in n and "2024-01-01" in n for n in notes)
    assert not any("ok_1" in n for n in notes)
    shown = cli("customers", "import", "--db", db, "--pricebooks", config, write("c.yaml", MISPRICED))
    assert shown.exit_code == 0 and shown.stderr.count("note: customer") == 4

def test_import_says_when_the_plans_could_not_be_checked(cli, db, write, tmp_path):
    result = cli("customers", "import", "--db", db, "--pricebooks", tmp_path / "missing", write("c.yaml", ACME), "--json")
    assert result.exit_code == 0
    [note] = json.loads(result.stdout)["plan_notes"]
    assert note.startswith("plans not checked:") and "does not exist" in note

@pytest.mark.parametrize("command", [
    ["usage", "--window", "period", "--cycle", "weekly"],
    ["periods", "cus_1", "--from", "9999-01-01", "--to", "9999-12-31"],
    ["dlq", "list", "--limit", "99999999999999999999"],
])
def test_option_values_out_of_range_are_usage_errors(cli, db, config, write, command):
    assert cli("customers", "import", write("c.yaml", ACME), "--db", db).exit_code == 0
    result = cli(*command, "--db", db, *(["--pricebooks", config] if command[0] in ("usage", "periods") else []))
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output


def test_billing_details_are_versioned_and_shown(cli, db, write):
    from tests.unit.test_customer_files import MAPLE

    assert cli("customers", "import", write("c.yaml", MAPLE), "--db", db).exit_code == 0
    again = cli("customers", "import", write("c.yaml", MAPLE), "--db", db)
    assert "0 added, 0 changed, 1 unchanged" in again.stderr
    moved = cli("customers", "import", write("c.yaml", MAPLE.replace("billing@", "invoices@")), "--db", db)
    assert "0 added, 1 changed" in moved.stderr
    shown = cli("customers", "show", "cus_1", "--db", db)
    assert "email: invoices@maple.example" in shown.stdout
    assert "address: 12 Rue Sainte-Catherine / Montréal QC H2X 1Z4" in shown.stdout
    assert "taxes: GST, QST" in shown.stdout and "version 2" in shown.stdout
