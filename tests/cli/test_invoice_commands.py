"""`meterctl invoice …` and `meterctl explain` from the command line: exit codes, refusals, what is shown."""

from __future__ import annotations

import json

import pytest

from meterctl.audit import explain
from tests.conftest import PRO, event, jsonl
from tests.tenants import TWO_CUSTOMERS, Tenant, events_a


def test_invoice_commands(cli, db, config, write):
    assert cli("customers", "import", write("customers.yaml", TWO_CUSTOMERS), "--db", db).exit_code == 0
    assert cli("ingest", write("a.jsonl", events_a()), "--db", db).exit_code == 0
    built = cli("invoice", "--period", "2026-10", "--finalize", "--db", db, "--pricebooks", config, "--json")
    assert built.exit_code == 0, built.stderr
    assert [o["number"] for o in json.loads(built.stdout)["invoices"]] == ["INV-2026-000001", "INV-2026-000002"]
    listed = json.loads(cli("invoice", "list", "--db", db, "--json").stdout)
    assert [(i["invoice_id"], i["status"]) for i in listed] == [("cus_1-20261001-r1", "finalized"), ("cus_2-20260910-r1", "finalized")]
    shown = json.loads(cli("invoice", "show", "INV-2026-000001", "--db", db, "--json").stdout)
    assert shown["customer"] == {"id": "cus_1", "name": "Acme Corp"} and shown["total_minor"] > 0
    assert cli("invoice", "verify", "INV-2026-000001", "--db", db).exit_code == 0
    out = write("events-of-line.jsonl", "")
    explained = cli("explain", "INV-2026-000001", "--line", "2", "--events", "-o", out, "--db", db)
    assert explained.exit_code == 0, explained.stderr
    traced = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(traced) == 6 and {t["invoice_line"] for t in traced} == {2}
    html_dir = write("html/.keep", "").parent
    exported = cli("invoice", "export", "--format", "html", "-o", html_dir, "--db", db)
    assert exported.exit_code == 0 and sorted(p.name for p in html_dir.glob("*.html")) == ["INV-2026-000001.html", "INV-2026-000002.html"]
    assert cli("invoice", "show", "INV-2099-000001", "--db", db).exit_code == 65
    assert cli("invoice", "export", "--format", "pdf", "-o", html_dir, "--db", db).exit_code == 2
    assert cli("invoice", "--db", db).exit_code == 2

@pytest.mark.parametrize("period", [" 2026-10", "2026-10 ", "\t2026-10", "\u0662\u0660\u0662\u0666-\u0661\u0660"])
def test_a_period_that_is_not_exactly_yyyy_mm_is_refused_before_anything_is_written(cli, db, config, write, period):
    # " 2026-10" used to number a finalized invoice INV-202-000001.
    assert cli("customers", "import", write("customers.yaml", TWO_CUSTOMERS), "--db", db).exit_code == 0
    for command in (["invoice", "--finalize"], ["rate"]):
        result = cli(*command, "--period", period, "--db", db, "--pricebooks", config)
        assert result.exit_code == 2, result.stderr
        assert "expected YYYY-MM" in result.stderr
    assert json.loads(cli("invoice", "list", "--db", db, "--json").stdout) == []

@pytest.mark.parametrize("command", [
    ["invoice", "export", "--format", "json"], ["invoice", "export", "--format", "csv"],
    ["explain", "INV-2026-000001", "--events"], ["usage", "--format", "csv"],
])
@pytest.mark.parametrize("output", ["-", ""])
def test_an_output_that_names_no_file_is_refused(cli, db, config, write, tmp_path, monkeypatch, command, output):
    assert cli("customers", "import", write("customers.yaml", TWO_CUSTOMERS), "--db", db).exit_code == 0
    assert cli("ingest", write("a.jsonl", events_a()), "--db", db).exit_code == 0
    assert cli("invoice", "--period", "2026-10", "--finalize", "--db", db, "--pricebooks", config).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    extra = ["--pricebooks", str(config)] if command[0] == "usage" else []
    result = cli(*command, "-o", output, "--db", db, *extra)
    assert result.exit_code == 2, result.stderr
    assert "-o" in result.stderr
    assert list(empty.iterdir()) == []  # no file named "-", no ./invoices.json

def test_names_are_shown_as_written_never_as_markup(cli, db, config, write):
    customers = TWO_CUSTOMERS.replace("Acme Corp", "Slash [/b] Acme [legacy] GmbH")
    assert cli("customers", "import", write("customers.yaml", customers), "--db", db).exit_code == 0
    assert cli("invoice", "--period", "2026-10", "--db", db, "--pricebooks", config).exit_code == 0
    shown = cli("invoice", "show", "cus_1-20261001-r1", "--db", db)
    assert shown.exit_code == 0 and "Slash [/b] Acme [legacy] GmbH" in shown.stdout

def test_options_before_an_invoice_subcommand_are_refused(cli, db):
    result = cli("invoice", "--db", db, "list")
    assert result.exit_code == 2 and "after the subcommand" in result.stderr

def test_explain_marks_the_events_a_meter_could_not_read(tmp_path, config, write, cli):
    (config / "pro" / "v1.yaml").write_text(PRO + "  - {meter: storage_gb, model: per_unit, unit_price: 1}\n")
    files = [write("c.yaml", TWO_CUSTOMERS), write("s.jsonl", jsonl(
        event("s1", event_name="storage_report", properties={"gb": 5}),
        event("s2", event_name="storage_report", properties={"gb": "lots"})))]
    tenant = Tenant(tmp_path / "s.duckdb", config, files)
    tenant.invoice()
    result = explain(tenant.events, tenant.ledger, "cus_1-20261001-r1", with_events=True)
    storage = next(x for x in result.lines if x.line.meter == "storage_gb")
    assert [(e.event_id, e.meterable) for e in storage.events] == [("s1", True), ("s2", False)]
    assert storage.line.quantity == 5 and storage.line.unmeterable == 1
    # The command opens a connection of its own: the macro that reads the value must be there too.
    tenant.store.close()
    shown = cli("explain", "cus_1-20261001-r1", "--line", str(storage.line.line_no), "--events", "--json",
                "--db", tmp_path / "s.duckdb")
    assert shown.exit_code == 0, shown.stderr
    assert "s2" in shown.stdout

def test_a_month_with_no_billing_period_is_nothing_to_do(cli, db, config, write):
    assert cli("customers", "import", write("customers.yaml", TWO_CUSTOMERS), "--db", db).exit_code == 0
    for command in (("rate",), ("invoice",)):
        result = cli(*command, "--period", "2026-07", "--db", db, "--pricebooks", config, "--json")
        assert result.exit_code == 65 and "no billing period ends in 2026-07" in result.stderr
    import duckdb

    with duckdb.connect(str(db), read_only=True) as check:
        assert check.execute("SELECT count(*) FROM rating_runs").fetchall() == [(0,)]

def test_export_with_nothing_to_export_says_what_to_do(cli, db, config, write, tmp_path):
    assert cli("customers", "import", write("customers.yaml", TWO_CUSTOMERS), "--db", db).exit_code == 0
    none_yet = cli("invoice", "export", "--format", "json", "-o", tmp_path / "x.json", "--db", db)
    assert none_yet.exit_code == 65 and "no invoices yet: run 'meterctl invoice --period YYYY-MM' first" in none_yet.stderr
    assert cli("ingest", write("a.jsonl", events_a()), "--db", db).exit_code == 0
    assert cli("invoice", "--period", "2026-10", "--db", db, "--pricebooks", config).exit_code == 0
    unmatched = cli("invoice", "export", "--format", "json", "-o", tmp_path / "x.json", "--db", db,
                    "--period", "2026-10", "--status", "finalized")
    assert unmatched.exit_code == 65
    assert "no invoices match --period 2026-10 --status finalized (see 'meterctl invoice list')" in unmatched.stderr
    assert not (tmp_path / "x.json").exists()
