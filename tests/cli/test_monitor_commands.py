"""`meterctl metrics` from the command line: to standard output, or atomically to a file."""

from __future__ import annotations

import subprocess

from tests.conftest import event, jsonl
from tests.promtool import promtool
from tests.tenants import ACME_ON_PRO


def test_metrics_to_stdout_and_to_a_textfile(cli, db, config, write, tmp_path):
    assert cli("customers", "import", write("customers.yaml", ACME_ON_PRO), "--db", db).exit_code == 0
    assert cli("ingest", write("e.jsonl", jsonl(event("c1"), "{bad")), "--db", db).exit_code == 0
    printed = cli("metrics", "--db", db, "--pricebooks", config)
    assert printed.exit_code == 0, printed.stderr
    assert 'meterctl_events_total{outcome="dead_letter"} 1.0' in printed.stdout
    target = tmp_path / "node" / "meterctl.prom"
    target.parent.mkdir()
    written = cli("metrics", "--db", db, "--pricebooks", config, "-o", target, "--no-customer-series")
    assert written.exit_code == 0 and written.stdout == ""
    assert b'customer="' not in target.read_bytes()
    assert subprocess.run([promtool(), "check", "metrics"], input=target.read_bytes(), timeout=60).returncode == 0
    assert cli("metrics", "--db", db, "--pricebooks", config, "-o", "-").exit_code == 2
    assert cli("metrics", "--db", db, "--pricebooks", config, "--burn-floor", "0").exit_code == 2
    assert cli("metrics", "--db", tmp_path / "none.duckdb", "--pricebooks", config).exit_code == 66


def test_health_exit_codes_and_json(cli, db, config, write):
    import json

    assert cli("customers", "import", write("customers.yaml", ACME_ON_PRO), "--db", db).exit_code == 0
    assert cli("ingest", write("e.jsonl", jsonl(event("c1"))), "--db", db).exit_code == 0
    # The event is from Oct 5: ingested now, it is weeks late.
    late = cli("health", "--db", db, "--pricebooks", config)
    assert late.exit_code == 65
    assert "FAIL ingest_lag" in late.stdout and "unhealthy: ingest_lag" in late.stderr
    fine = cli("health", "--db", db, "--pricebooks", config, "--max-lag", "1000d", "--json")
    assert fine.exit_code == 0, fine.stdout
    document = json.loads(fine.stdout)
    assert document["ok"] is True and [c["name"] for c in document["checks"]] == [
        "ingest_lag", "dead_letter_ratio", "last_ingest", "reconciliation_gap"]
    assert cli("health", "--db", db, "--pricebooks", config, "--max-lag", "5 minutes").exit_code == 2
