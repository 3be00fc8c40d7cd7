"""`meterctl metrics` from the command line: to standard output, or atomically to a file."""

from __future__ import annotations

import subprocess

from tests.conftest import event, jsonl
from tests.promtool import promtool
from tests.tenants import ACME_ON_PRO


def test_metrics_to_stdout_and_to_a_textfile(cli, db, config, write, tmp_path):
    assert cli("customers", "import", write("customers.yaml", ACME_ON_PRO), "--db", db).exit_code == 0
    assert cli("ingest", write("e.jsonl", jsonl(event("c1"), "{bad")), "--db", db).exit_code == 0
    printed = cli("metrics", "--db", db, "--pricebooks", config, "--at", "2026-11-10T12:00:00Z")
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
