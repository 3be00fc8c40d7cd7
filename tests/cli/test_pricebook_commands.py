"""`meterctl pricebook …` and `meterctl simulate` from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import ACME_CUSTOMERS, PRO, event, jsonl


@pytest.fixture
def tenant(cli, db, write):
    """Customers and events loaded through the command line (a CLI test holds no connection)."""

    def _setup(*records, customers: str = ACME_CUSTOMERS):
        assert cli("customers", "import", write("customers.yaml", customers), "--db", db).exit_code == 0
        if records:
            assert cli("ingest", write("events.jsonl", jsonl(*records)), "--db", db).exit_code == 0

    return _setup

ONE_PLAN = ACME_CUSTOMERS.replace("      - {plan: scale, start: 2026-10-20}\n", "")
SECOND = ACME_CUSTOMERS.replace("cus_1", "cus_2").replace("Acme Corp", "Globex").replace("customers:\n", "")


def test_list_show_and_diff(cli, db, config):
    (config / "pro" / "v2.yaml").write_text(PRO.replace("version: 1", "version: 2").replace("2024-01-01", "2026-11-01")
                                          .replace("unit_price: 0.10", "unit_price: 0.08"))
    listed = cli("pricebook", "list", "--pricebooks", config, "--db", db, "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [(r["pricebook"], r["effective_from"], r["frozen"]) for r in json.loads(listed.stdout)] == [
        ("pro@1", "2024-01-01", False), ("pro@2", "2026-11-01", False), ("scale@1", "2024-01-01", False)]
    shown = cli("pricebook", "show", "pro", "--pricebooks", config, "--json")
    assert json.loads(shown.stdout)["pricebook"] == "pro@2"
    table = cli("pricebook", "show", "pro@1", "--pricebooks", config)
    assert "31.00 per period" in table.stdout and "≤ 2: 0; above: 0.10 + 1" in table.stdout
    diff = json.loads(cli("pricebook", "diff", "pro@1", "pro@2", "--pricebooks", config, "--json").stdout)
    assert {(c["key"], c["from"], c["to"]) for c in diff["changes"]} == {
        ("effective_from", "2024-01-01", "2026-11-01"),
        ("charges.api_calls.tiers[1].unit_price", "0.1", "0.08"),
    }
    assert cli("pricebook", "show", "pro@7", "--pricebooks", config).exit_code == 65
    # Defaults count as written, a null is not an absent key, and fees are compared by name.
    (config / "pro" / "v3.yaml").write_text(
        PRO.replace("version: 1", "version: 3").replace("2024-01-01", "2026-12-01")
        .replace("currency: USD", "currency: USD\nrounding: half_even").replace("31.00}", "31.00}\n  - {name: Support, amount: 5}"))
    diff = json.loads(cli("pricebook", "diff", "pro@1", "pro@3", "--pricebooks", config, "--json").stdout)
    assert {(c["key"], c["from"], json.dumps(c["to"])) for c in diff["changes"]} == {
        ("effective_from", "2024-01-01", '"2026-12-01"'), ("rounding", "half_up", '"half_even"'),
        ("fees.Support", None, '{"name": "Support", "amount": "5"}')}
    table = cli("pricebook", "diff", "pro@1", "pro@3", "--pricebooks", config).stdout
    assert [line.split()[:2] for line in table.splitlines() if line.startswith("fees.Support")] == [["fees.Support", "-"]]
    assert cli("pricebook", "show", "pro@x", "--pricebooks", config).exit_code == 2


def test_validate_reports_edited_frozen_versions(cli, db, config, tenant):
    tenant(event("c1"))
    assert cli("pricebook", "validate", "--pricebooks", config, "--db", db).exit_code == 0
    assert cli("rate", "--period", "2026-10", "--pricebooks", config, "--db", db).exit_code == 0
    listed = json.loads(cli("pricebook", "list", "--pricebooks", config, "--db", db, "--json").stdout)
    assert [r["frozen"] for r in listed] == [True, True]
    (config / "pro" / "v1.yaml").write_text(PRO.replace("31.00", "32.00"))
    result = cli("pricebook", "validate", "--pricebooks", config, "--db", db)
    assert result.exit_code == 78
    assert f"{config / 'pro' / 'v1.yaml'}: pro@1 was edited after it rated usage" in result.stderr
    rated = cli("rate", "--period", "2026-10", "--pricebooks", config, "--db", db)
    assert rated.exit_code == 78 and "publish the change as a new version" in rated.stderr
    # What the edited file says is not what was billed: show and diff refuse it too.
    for command in (("show", "pro@1"), ("diff", "pro@1", "pro@1")):
        refused = cli("pricebook", *command, "--pricebooks", config, "--db", db)
        assert refused.exit_code == 78 and "pro@1 was edited after it rated usage" in refused.stderr, command
    assert cli("pricebook", "show", "scale@1", "--pricebooks", config, "--db", db).exit_code == 0


def test_config_validate_lists_meter_and_pricebook_problems_together(cli, config):
    (config / "meters.yaml").write_text((config / "meters.yaml").read_text().replace("aggregation: count", "aggregation: cnt"))
    (config / "scale" / "v1.yaml").write_text((config / "scale" / "v1.yaml").read_text().replace("currency: USD", "currency: US"))
    # Every command that reads the configuration reports both, not just the first file's.
    for command in (("config", "validate"), ("pricebook", "validate"), ("rate", "--period", "2026-10")):
        result = cli(*command, "--pricebooks", config)
        assert result.exit_code == 78, command
        assert "meters.yaml:2 meters[0].aggregation" in result.stderr, command
        assert "scale/v1.yaml:4 currency" in result.stderr, command
    # With --json the validate commands also give them on stdout, one object each.
    for command in (("config", "validate"), ("pricebook", "validate")):
        result = cli(*command, "--pricebooks", config, "--json")
        assert result.exit_code == 78, command
        found = {(Path(p["file"]).name, p["line"], p["key"]) for p in json.loads(result.stdout)["problems"]}
        assert found == {("meters.yaml", 2, "meters[0].aggregation"), ("v1.yaml", 4, "currency")}, found


def test_simulate_compares_current_and_candidate_without_writing(cli, db, config, tenant, tmp_path):
    tenant(*[event(f"c{i}") for i in range(12)], event("g1", customer_id="cus_2"),
           customers=ONE_PLAN + SECOND.replace("      - {plan: scale, start: 2026-10-20}\n", ""))
    candidate = tmp_path / "pro-v2-draft.yaml"
    candidate.write_text(PRO.replace("version: 1", "version: 2").replace("unit_price: 0.10", "unit_price: 0.20"))
    result = cli("simulate", "--pricebook", candidate, "--period", "2026-10", "--pricebooks", config, "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {r["customer_id"]: r for r in document["rows"]}
    # cus_1: 12 calls, 10 past the free tier: 1 + 10 × 0.10 = 2.00 now, 1 + 10 × 0.20 = 3.00 under the candidate.
    assert (rows["cus_1"]["current"], rows["cus_1"]["candidate"], rows["cus_1"]["difference"]) == ("33.00", "34.00", "1.00")
    assert (rows["cus_2"]["current"], rows["cus_2"]["difference"]) == ("31.00", "0.00")
    assert rows["cus_1"]["current_pricebook"] == "pro@1" and rows["cus_1"]["candidate_pricebook"] == "pro@2"
    assert [(t["currency"], t["difference_minor"]) for t in document["totals"]] == [("USD", 100)]
    as_csv = cli("simulate", "--pricebook", candidate, "--period", "2026-10", "--pricebooks", config, "--db", db, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["customer_id"], r["difference"]) for r in parsed] == [("cus_1", "1.00"), ("cus_2", "0.00"), ("TOTAL", "1.00")]
    table = cli("simulate", "--pricebook", candidate, "--period", "2026-10", "--pricebooks", config, "--db", db)
    assert "total" in table.stdout and "1.00" in table.stdout
    listed = json.loads(cli("pricebook", "list", "--pricebooks", config, "--db", db, "--json").stdout)
    assert not any(r["frozen"] for r in listed)  # nothing was rated for real, so nothing froze


def test_simulate_rejects_a_bad_candidate_naming_its_file(cli, db, config, tenant, tmp_path):
    tenant()
    candidate = tmp_path / "draft.yaml"
    candidate.write_text(PRO.replace("unit_price: 0.001", "unit_prise: 0.001"))
    result = cli("simulate", "--pricebook", candidate, "--period", "2026-10", "--pricebooks", config, "--db", db)
    assert result.exit_code == 78
    assert f"{candidate}:" in result.stderr and "unit_prise: unknown key" in result.stderr
