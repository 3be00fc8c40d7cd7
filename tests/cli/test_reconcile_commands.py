"""`meterctl reconcile`, and the unbilled block of `rate` and `invoice` with --strict."""

from __future__ import annotations

import json

import pytest

from tests.conftest import METERS, event, jsonl
from tests.tenants import ACME_ON_PRO


@pytest.fixture
def month(cli, db, config, write):
    """Acme's October (3 calls, 1,000 tokens) and these events, ingested."""

    def _month(*extra: dict) -> None:
        assert cli("customers", "import", write("customers.yaml", ACME_ON_PRO), "--db", db).exit_code == 0
        events = write("october.jsonl", jsonl(event("c1"), event("c2"), event("c3"),
                                              event("t1", event_name="llm_tokens", quantity=1000), *extra))
        assert cli("ingest", events, "--db", db).exit_code == 0

    return _month


def run(cli, db, config, *args: str):
    return cli(*args, "--period", "2026-10", "--db", db, "--pricebooks", config)


def test_invoice_json_carries_the_unbilled_block_and_strict_makes_it_exit_65(cli, db, config, month):
    month(event("x1", customer_id="cus_ghost", quantity=4), event("x2", customer_id="cus_ghost", quantity=6),
          event("p1", event_name="page_view"))
    lenient = run(cli, db, config, "invoice", "--json")
    assert lenient.exit_code == 0, lenient.stderr
    unbilled = json.loads(lenient.stdout)["unbilled"]
    assert unbilled["unknown_customer"] == {"events": 2, "quantity": "10", "customers": ["cus_ghost"],
                                            "customer_count": 1, "first_event_id": "x1"}
    assert unbilled["no_meter"]["events"] == 1 and unbilled["outside_subscription"]["events"] == 0
    assert "unknown_customer" in lenient.stderr and "import these customers" in lenient.stderr
    strict = run(cli, db, config, "invoice", "--json", "--strict")
    assert strict.exit_code == 65
    assert json.loads(strict.stdout)["unbilled"]["unknown_customer"]["events"] == 2  # the document still comes out
    assert "3 event(s) in 2026-10 are not billed (1 no_meter; 2 unknown_customer)" in strict.stderr
    assert run(cli, db, config, "rate", "--strict").exit_code == 65


def test_strict_passes_a_month_whose_only_unbilled_events_are_ignored(cli, db, config, month):
    (config / "meters.yaml").write_text(METERS + "ignore_events: [login]\n")
    month(event("l1", event_name="login"))
    rated = run(cli, db, config, "rate", "--json", "--strict")
    assert rated.exit_code == 0, rated.stderr
    assert json.loads(rated.stdout)["unbilled"]["ignored"]["events"] == 1


def test_reconcile_json_and_exit_codes_through_the_close_of_a_month(cli, db, config, month, write):
    month()
    assert run(cli, db, config, "invoice", "--finalize").exit_code == 0
    clean = run(cli, db, config, "reconcile", "--json")
    assert clean.exit_code == 0, clean.stdout
    document = json.loads(clean.stdout)
    assert set(document) >= {"period", "ok", "events", "unbilled", "late", "checks"}
    assert (document["period"], document["ok"]) == ("2026-10", True)
    assert (document["events"]["in_period"], document["events"]["billed"]) == (4, 4)
    assert document["late"] == {"events": 0, "absorbed_events": 0, "invoices": [], "drafts_behind": []}
    assert document["events"]["by_event_name"] == {"api_call": 3, "llm_tokens": 1}
    assert all({"name", "ok", "expected", "actual", "gap"} <= set(c) for c in document["checks"])
    # A straggler: 500 more tokens at 0.001 after INV-2026-000001 was sent.
    late = write("late.jsonl", jsonl(event("t2", event_name="llm_tokens", quantity=500)))
    assert cli("ingest", late, "--db", db).exit_code == 0
    found = run(cli, db, config, "reconcile", "--json")
    assert found.exit_code == 65
    late_block = json.loads(found.stdout)["late"]
    assert late_block["events"] == 1
    [invoice] = late_block["invoices"]
    assert (invoice["number"], invoice["customer_id"], invoice["delta_minor"]) == ("INV-2026-000001", "cus_1", 50)
    human = run(cli, db, config, "reconcile")
    assert human.exit_code == 65
    assert human.stdout.startswith("2026-10 does NOT reconcile: 5 event(s)")
    assert "late_events" in human.stdout and "INV-2026-000001 (cus_1): 1 late event(s)" in human.stdout
    assert "meterctl invoice --period 2026-10" in human.stdout
    assert run(cli, db, config, "invoice", "--finalize").exit_code == 0
    assert run(cli, db, config, "reconcile").exit_code == 0


def test_reconcile_names_the_unbilled_and_what_to_run(cli, db, config, month):
    month(event("x1", customer_id="cus_ghost"))
    assert run(cli, db, config, "invoice").exit_code == 0
    result = run(cli, db, config, "reconcile")
    assert result.exit_code == 65
    assert "1 unbilled" in result.stdout.splitlines()[0]
    assert "unknown_customer" in result.stdout and "meterctl customers import" in result.stdout
    assert "does not reconcile: 1 unbilled event(s)" in result.stderr


def test_reconcile_errors(cli, db, config, month):
    month()
    assert run(cli, db, config, "reconcile", "--customer", "cus_404").exit_code == 65
    assert cli("reconcile", "--period", "2026-13", "--db", db, "--pricebooks", config).exit_code == 2
    assert cli("reconcile", "--period", "2026-10", "--db", db.with_name("none.duckdb"),
               "--pricebooks", config).exit_code == 66


def test_ignore_events_is_checked_against_the_meters(cli, config):
    (config / "meters.yaml").write_text(METERS + "ignore_events: [api_call, login, login]\n")
    result = cli("config", "validate", "--pricebooks", config)
    assert result.exit_code == 78
    path = config / "meters.yaml"
    assert f"{path}:5 ignore_events[0]: 'api_call' is selected by meter 'api_calls'" in result.stderr
    assert f"{path}:5 ignore_events[2]: 'login' is listed twice (first as ignore_events[1])" in result.stderr
