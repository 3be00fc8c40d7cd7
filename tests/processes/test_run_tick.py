"""`meterctl run`, the cron tick: twice in a row, with new spool files between, with files
moved away, finalizing in time, two at once, and killed mid-way.

Acme is on pro from Sep 14 (New York, calendar months). The ticks run on 2026-11-10, so
October is the closed month and November the open one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from meterctl.session import Session
from tests.conftest import event, jsonl
from tests.tenants import ACME_ON_PRO

AT = "2026-11-10T12:00:00Z"


def meterctl(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meterctl", *map(str, args)], capture_output=True, text=True,
                          timeout=180, **kwargs)


@pytest.fixture
def spool(tmp_path, db, config, write):
    """An empty spool directory, with Acme imported into the store."""
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO))
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory


def tick(cli, db, config, spool, *extra):
    # The events are from weeks before the tick: no lag alarm here.
    result = cli("run", "--spool", spool, "--db", db, "--pricebooks", config, "--at", AT, "--json", "--max-lag", "100d",
                 *extra)
    return result, json.loads(result.stdout) if result.stdout.startswith("{") else None


def test_a_second_tick_with_nothing_new_changes_nothing_and_says_so(cli, db, config, spool):
    (spool / "a.jsonl").write_text(jsonl(event("c1", timestamp="2026-10-10T12:00:00Z"),
                                         event("t1", event_name="llm_tokens", quantity=500,
                                               timestamp="2026-11-05T12:00:00Z")))
    (spool / "b.jsonl.part").write_text("still being written\n")
    first, done = tick(cli, db, config, spool)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert done["changed"] is True and done["ingest"]["new_files"] == 1 and done["ingest"]["accepted"] == 2
    assert done["invoice"] == {"period": "2026-10", "invoices": 1, "actions": {"created": 1}, "finalized": False}
    assert done["rate"]["period"] == "2026-11" and done["rate"]["lines"] > 0
    assert done["reconcile"]["ok"] is True and done["health"]["ok"] is True
    second, again = tick(cli, db, config, spool)
    assert second.exit_code == 0 and again["changed"] is False
    assert again["ingest"]["new_files"] == 0 and again["invoice"]["actions"] == {"unchanged": 1}
    assert again["rate"]["run_id"] == done["rate"]["run_id"]  # the same run, not a copy
    human = cli("run", "--spool", spool, "--db", db, "--pricebooks", config, "--at", AT, "--max-lag", "100d")
    assert human.exit_code == 0 and human.stdout.startswith("nothing new")
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM rating_runs WHERE period = '2026-11'").fetchall() == [(1,)]
    con.close()
    with Session(db, config, read_only=True) as s:
        text = s.metrics(at=AT, customer_series=False).text.decode()
    assert 'meterctl_last_success_timestamp_seconds{command="run"} 1.794312e+09' in text  # AT, as Unix time


def test_new_files_between_ticks_are_ingested_and_moved(cli, db, config, spool, tmp_path):
    done_dir = tmp_path / "done"
    (spool / "a.jsonl").write_text(jsonl(event("c1", timestamp="2026-10-10T12:00:00Z")))
    first, done = tick(cli, db, config, spool, "--move-to", done_dir)
    assert first.exit_code == 0 and done["ingest"]["moved"] == ["a.jsonl"]
    assert not (spool / "a.jsonl").exists() and (done_dir / "a.jsonl").exists()
    (spool / "b.jsonl").write_text(jsonl(event("c2", timestamp="2026-10-11T12:00:00Z")))
    second, again = tick(cli, db, config, spool, "--move-to", done_dir)
    assert again["ingest"]["new_files"] == 1 and again["invoice"]["actions"] == {"regenerated": 1}
    with Session(db, config, read_only=True) as s:
        [invoice] = s.invoices(period="2026-10")
        assert invoice.status == "draft"
        assert next(line for line in s.get_invoice(invoice.invoice_id).lines if line.meter == "api_calls").quantity == 2


def test_the_closed_month_is_finalized_once_its_grace_is_over(cli, db, config, spool):
    (spool / "a.jsonl").write_text(jsonl(event("c1", timestamp="2026-10-10T12:00:00Z")))
    # October ended on Nov 1 (at the latest at 14:00 UTC somewhere); 10 days of grace end Nov 11.
    early, done = tick(cli, db, config, spool, "--finalize-after", "10d")
    assert early.exit_code == 0 and done["invoice"]["finalized"] is False
    later = cli("run", "--spool", spool, "--db", db, "--pricebooks", config, "--at", "2026-11-12T00:00:00Z",
                "--finalize-after", "10d", "--json", "--max-lag", "100d")
    assert later.exit_code == 0, later.stdout
    assert json.loads(later.stdout)["invoice"] == {"period": "2026-10", "invoices": 1, "actions": {"finalized": 1},
                                                   "finalized": True}
    with Session(db, config, read_only=True) as s:
        assert s.invoices(period="2026-10")[0].number == "INV-2026-000001"


def test_metrics_and_the_entitlement_snapshot_are_written(cli, db, config, spool, tmp_path):
    (spool / "a.jsonl").write_text(jsonl(event("c1", timestamp="2026-11-09T12:00:00Z")))
    metrics, snapshot = tmp_path / "meterctl.prom", tmp_path / "entitlements.json"
    result, done = tick(cli, db, config, spool, "--metrics", metrics, "--entitlements", snapshot)
    assert result.exit_code == 0, result.stdout
    assert 'meterctl_events_total{outcome="accepted"} 1.0' in metrics.read_text()
    assert done["metrics"] == str(metrics) and done["entitlements"]["snapshot"]["path"] == str(snapshot)
    assert json.loads(snapshot.read_text())["entitlements"] == []  # pro has no features


def test_a_month_that_does_not_reconcile_is_exit_65_but_every_step_runs(cli, db, config, spool, tmp_path):
    (spool / "a.jsonl").write_text(jsonl(event("g1", customer_id="cus_ghost", timestamp="2026-10-10T12:00:00Z")))
    metrics = tmp_path / "meterctl.prom"
    result, done = tick(cli, db, config, spool, "--metrics", metrics)
    assert result.exit_code == 65
    assert done["reconcile"]["ok"] is False and done["reconcile"]["unbilled"] == 1
    assert metrics.exists()
    assert "2026-10 does not reconcile" in result.stderr


def test_a_store_without_customers_still_gets_its_metrics(cli, db, config, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "a.jsonl").write_text(jsonl(event("c1", timestamp="2026-11-09T12:00:00Z")))
    metrics = tmp_path / "meterctl.prom"
    result = cli("run", "--spool", spool, "--db", db, "--pricebooks", config, "--at", AT, "--metrics", metrics)
    assert result.exit_code == 65
    assert "no customers imported yet" in result.stderr
    assert 'meterctl_events_total{outcome="accepted"} 1.0' in metrics.read_text()
    assert cli("run", "--spool", tmp_path / "nope", "--db", db, "--pricebooks", config).exit_code == 66


def test_two_ticks_at_once_the_second_is_told_75(db, config, spool):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, duckdb\ncon = duckdb.connect(sys.argv[1])\n"
                               "print('locked', flush=True)\nsys.stdin.readline()", str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = meterctl("run", "--spool", spool, "--db", db, "--pricebooks", config)
        assert second.returncode == 75 and "locked by another meterctl process" in second.stderr
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)


def test_a_tick_killed_mid_way_is_finished_by_the_next(tmp_path, db, config, spool):
    records = [event(f"e{i}", quantity=i % 7, timestamp=f"2026-10-{1 + i % 28:02d}T12:00:00Z") for i in range(60_000)]
    (spool / "big.jsonl").write_text(jsonl(*records))
    reference_db = tmp_path / "reference.duckdb"
    with Session(reference_db, config) as s:
        s.import_customers(tmp_path / "customers.yaml")
    started = time.monotonic()
    args = ("run", "--spool", spool, "--pricebooks", config, "--at", AT, "--json", "--max-lag", "100d")
    assert meterctl(*args, "--db", reference_db).returncode == 0
    took = time.monotonic() - started
    with Session(reference_db, config, read_only=True) as s:
        expected = [(i.customer_id, i.total_minor) for i in s.invoices(period="2026-10")]
    for share in (0.3, 0.6, 0.9):
        killed = tmp_path / f"killed-{share}.duckdb"
        with Session(killed, config) as s:
            s.import_customers(tmp_path / "customers.yaml")
        proc = subprocess.Popen([sys.executable, "-m", "meterctl", *map(str, args), "--db", str(killed)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(took * share)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        again = meterctl(*args, "--db", killed)
        assert again.returncode == 0, again.stdout + again.stderr
        with Session(killed, config, read_only=True) as s:
            assert [(i.customer_id, i.total_minor) for i in s.invoices(period="2026-10")] == expected
            assert s.status().events == 60_000


def test_the_spool_skips_files_being_written(tmp_path):
    from meterctl.tick import spool_files

    for name in ("b.jsonl", "a.ndjson.gz", "c.jsonl.part", ".hidden.tmp", "d.parquet"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in spool_files(tmp_path)] == ["a.ndjson.gz", "b.jsonl", "d.parquet"]


def test_a_bad_threshold_is_refused_before_the_tick_does_anything(cli, config, tmp_path):
    db = tmp_path / "never.duckdb"
    for option, value in (("--max-lag", "5min"), ("--max-dead-letter-ratio", "lots"), ("--finalize-after", "soon")):
        refused = cli("run", "--db", db, "--pricebooks", config, option, value)
        assert refused.exit_code == 2 and option in refused.stderr
    assert not db.exists()
