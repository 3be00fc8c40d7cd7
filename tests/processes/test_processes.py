"""Real processes: a second writer, concurrent ingests, and kill -9 at several moments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from meterctl.session import Session
from tests.conftest import event, jsonl

HOLD_LOCK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()
con.close()
"""


def meterctl(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "meterctl", *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs
    )


def start_meterctl(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "meterctl", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def lock_holder(db):
    with Session(db) as s:
        s.status()  # create and migrate the store first
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    yield holder
    if holder.poll() is None:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)


def test_a_second_writer_gets_one_line_and_exit_75(db, write, lock_holder):
    result = meterctl("ingest", "--db", db, write("a.jsonl", jsonl(event("e1"))))
    assert result.returncode == 75
    assert result.stderr.strip().count("\n") == 0
    assert "locked by another meterctl process" in result.stderr
    assert "Traceback" not in result.stderr


def test_wait_retries_until_the_lock_is_released(db, write, lock_holder):
    waiting = start_meterctl("ingest", "--db", db, "--json", "--wait", "60", write("a.jsonl", jsonl(event("e1"))))
    time.sleep(1.5)
    assert waiting.poll() is None  # still waiting for the lock
    lock_holder.stdin.write("\n")
    lock_holder.stdin.flush()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["accepted"] == 1


def test_a_reader_beside_a_writer_is_told_why_and_can_wait(db, write, lock_holder):
    # DuckDB lets no other process open a file one process writes, not even read-only.
    refused = meterctl("status", "--db", db)
    assert refused.returncode == 75
    assert "not even to read" in refused.stderr and "--wait SECONDS" in refused.stderr
    waiting = start_meterctl("status", "--db", db, "--json", "--wait", "60")
    time.sleep(1.0)
    assert waiting.poll() is None
    lock_holder.stdin.write("\n")
    lock_holder.stdin.flush()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err


def test_two_concurrent_ingests_both_finish_with_wait(db, write):
    a = write("a.jsonl", jsonl(*[event(f"a{i}") for i in range(2000)], event("shared")))
    b = write("b.jsonl", jsonl(*[event(f"b{i}") for i in range(2000)], event("shared")))
    procs = [start_meterctl("ingest", "--db", db, "--json", "--wait", "60", p) for p in (a, b)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    documents = [json.loads(out) for out, _ in outputs]
    assert sum(d["accepted"] for d in documents) == 4001
    assert sum(d["duplicates"] for d in documents) == 1


def _make_files(directory: Path, count: int = 4, per_file: int = 6_000) -> list[Path]:
    directory.mkdir()
    files = []
    for k in range(count):
        records = [event(f"f{k}-{i}", quantity=i % 97, properties={"model": "embed"}) for i in range(per_file)]
        records += [event(f"f{(k + 1) % count}-{i}", quantity=i % 97, properties={"model": "embed"}) for i in range(0, 500)]
        records += ["{truncated", event(f"f{k}-0", quantity=12345)]
        path = directory / f"part-{k}.jsonl"
        path.write_text(jsonl(*records))
        files.append(path)
    return files


def _snapshot(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "ingest_batches" not in tables:
            return {"schema": "not yet created"}  # killed while the store was being made: it holds nothing
        per_batch = con.execute(
            "SELECT b.source, b.accepted, (SELECT count(*) FROM events e WHERE e.batch_id = b.batch_id) FROM ingest_batches b"
        ).fetchall()
        # Atomicity: what a batch says it accepted is exactly what it left in the store.
        assert all(claimed == stored for _, claimed, stored in per_batch), per_batch
        return {
            "events": con.execute("SELECT count(*), count(DISTINCT event_id), sum(quantity) FROM events").fetchall(),
            "dead": con.execute("SELECT count(*) FROM dead_letters").fetchall(),
            "conflicts": con.execute("SELECT count(*) FROM conflicts").fetchall(),
            "totals": con.execute(
                "SELECT sum(lines_read), sum(accepted), sum(duplicates), sum(conflicts), sum(dead_lettered) FROM ingest_batches"
            ).fetchall(),
            "orphans": con.execute(
                "SELECT count(*) FROM events WHERE batch_id NOT IN (SELECT batch_id FROM ingest_batches)"
            ).fetchall(),
        }
    finally:
        con.close()


def test_kill_9_at_any_moment_then_rerun_reaches_the_same_totals(tmp_path):
    files = _make_files(tmp_path / "in")
    reference_db = tmp_path / "reference.duckdb"
    started = time.monotonic()
    assert meterctl("ingest", "--db", reference_db, *files).returncode == 0
    took = time.monotonic() - started
    reference = _snapshot(reference_db)
    assert reference["orphans"] == [(0,)]

    # Moments spread over a whole run however fast this machine is right now: from start-up
    # (before the store exists) through the files' transactions to their last commit.
    for share in (0.05, 0.25, 0.45, 0.65, 0.85, 0.97):
        db = tmp_path / f"killed-{share}.duckdb"
        proc = start_meterctl("ingest", "--db", db, *files)
        time.sleep(took * share)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if db.exists():
            partial = _snapshot(db)  # whole files only, never part of one
            assert partial.get("orphans", [(0,)]) == [(0,)]
        rerun = meterctl("ingest", "--db", db, *files)
        assert rerun.returncode == 0, rerun.stderr
        assert _snapshot(db) == reference, f"after kill at {share:.0%} of a run"
    # A store killed while it was created was never in place, and the next run cleared it.
    assert not list(tmp_path.glob(".*.new-*"))


def test_kill_9_during_an_html_export_leaves_the_earlier_export_or_none(tmp_path):
    from tests.conftest import REPO, SAMPLE

    db = tmp_path / "sample.duckdb"
    with Session(db, config=REPO / "pricebooks") as s:
        s.import_customers(SAMPLE / "customers.yaml")
        s.ingest([SAMPLE / "events-2026-10.jsonl"])
        s.invoice("2026-10")
    reference = tmp_path / "reference"
    started = time.monotonic()
    assert meterctl("invoice", "export", "--format", "html", "-o", reference, "--db", db).returncode == 0
    took = time.monotonic() - started
    pages = {p.name: p.read_bytes() for p in reference.iterdir()}
    assert len(pages) == 50

    out = tmp_path / "invoices"
    for share in (0.3, 0.6, 0.8, 0.9, 0.97):
        proc = start_meterctl("invoice", "export", "--format", "html", "-o", out, "--db", db)
        time.sleep(took * share)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if out.exists():  # all 50 pages, or no directory at all: never a part of them
            assert {p.name: p.read_bytes() for p in out.iterdir()} == pages, f"after kill at {share:.0%}"
    rerun = meterctl("invoice", "export", "--format", "html", "-o", out, "--db", db)
    assert rerun.returncode == 0, rerun.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == pages
    assert not [name for name in os.listdir(tmp_path) if name.endswith("-export")]  # no temporaries survive


def _finalized_and_debited(db: Path) -> tuple[int, int, int]:
    """(finalized invoices, their credits in minor units, debits in the wallet ledger in cents)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        numbered, credited = con.execute(
            "SELECT count(*), coalesce(sum(credits_minor), 0) FROM invoices WHERE status = 'finalized'").fetchall()[0]
        debited = con.execute("SELECT coalesce(CAST(-sum(amount) * 100 AS BIGINT), 0) FROM wallet_entries "
                              "WHERE kind = 'debit' AND grant_id NOT LIKE 'cus_000026%'").fetchall()[0][0]
        yen = con.execute("SELECT coalesce(CAST(-sum(amount) AS BIGINT), 0) FROM wallet_entries "
                          "WHERE kind = 'debit' AND grant_id LIKE 'cus_000026%'").fetchall()[0][0]
        return numbered, credited, debited + yen
    finally:
        con.close()


def test_kill_9_during_finalize_with_credits_leaves_all_debits_and_numbers_or_none(tmp_path):
    from tests.conftest import REPO, SAMPLE

    reference = tmp_path / "reference.duckdb"
    with Session(reference, config=REPO / "pricebooks") as s:
        s.import_customers(SAMPLE / "customers.yaml")
        s.import_grants(SAMPLE / "grants.yaml")
        s.ingest([SAMPLE / "events-2026-10.jsonl"])
    started = time.monotonic()
    ready = tmp_path / "ready.duckdb"
    ready.write_bytes(reference.read_bytes())
    assert meterctl("invoice", "--period", "2026-10", "--finalize", "--db", ready).returncode == 0
    took = time.monotonic() - started
    numbered, credited, debited = _finalized_and_debited(ready)
    assert numbered == 50 and credited == debited > 0

    for share in (0.3, 0.5, 0.7, 0.85, 0.95):
        db = tmp_path / f"killed-{share}.duckdb"
        db.write_bytes(reference.read_bytes())
        proc = start_meterctl("invoice", "--period", "2026-10", "--finalize", "--db", db)
        time.sleep(took * share)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _finalized_and_debited(db) in ((0, 0, 0), (numbered, credited, debited)), f"after kill at {share:.0%}"
        rerun = meterctl("invoice", "--period", "2026-10", "--finalize", "--db", db)
        assert rerun.returncode == 0, rerun.stderr
        assert _finalized_and_debited(db) == (numbered, credited, debited)
