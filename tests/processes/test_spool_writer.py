"""meterctl.spool.Writer: events appended at the source, from threads and processes, rotated
into closed files that `meterctl run --spool` ingests, and nothing torn after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest

from meterctl.session import Session
from meterctl.spool import CLOSED_SUFFIX, OPEN_SUFFIX, Writer


def lines_of(spool) -> list[dict]:
    return [json.loads(line) for path in sorted(spool.glob(f"*{CLOSED_SUFFIX}")) for line in path.read_text().splitlines()]


def test_threads_write_whole_lines_that_ingest_as_they_were_written(tmp_path, db):
    spool = tmp_path / "spool"
    with Writer(spool, max_bytes=50_000) as writer:
        def produce(n: int) -> None:
            for i in range(1000):
                writer.write(f"cus_{n}", "api_call", quantity=i % 5, properties={"thread": n, "i": i})

        threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    found = lines_of(spool)
    assert len(found) == 4000 and len({line["event_id"] for line in found}) == 4000
    assert len(list(spool.glob(f"*{CLOSED_SUFFIX}"))) > 1  # rotated by size
    assert not list(spool.glob(f"*{OPEN_SUFFIX}"))
    with Session(db) as s:
        result = s.ingest([str(spool)])
    assert (result.accepted, result.dead_lettered) == (4000, 0)


def test_values_are_written_exactly(tmp_path):
    spool = tmp_path / "spool"
    with Writer(spool) as writer:
        writer.write("cus_1", "llm_tokens", quantity=Decimal("0.000000000000000001"), event_id="e1",
                     timestamp="2026-11-10T12:00:00Z", properties={"price": Decimal("1.10"), "model": "big"})
        writer.write("cus_1", "llm_tokens", quantity=0.1, event_id="e2", timestamp="2026-11-10T12:00:00Z")
        for wrong in ({"customer_id": ""}, {"event_name": " "}, {"quantity": float("nan")}, {"quantity": True}):
            arguments = {"customer_id": "cus_1", "event_name": "x", **wrong}
            with pytest.raises(ValueError):
                writer.write(arguments.pop("customer_id"), arguments.pop("event_name"), **arguments)
    text = next(spool.glob(f"*{CLOSED_SUFFIX}")).read_text().splitlines()
    assert text[0] == ('{"event_id":"e1","customer_id":"cus_1","event_name":"llm_tokens","timestamp":"2026-11-10T12:00:00Z",'
                       '"quantity":0.000000000000000001,"properties":{"price":"1.10","model":"big"}}')
    assert '"quantity":0.1}' in text[1]


def test_an_idle_file_is_closed_by_age(tmp_path):
    spool = tmp_path / "spool"
    writer = Writer(spool, max_seconds=0.2, flush_seconds=0.05)
    writer.write("cus_1", "api_call")
    deadline = time.monotonic() + 10
    while not list(spool.glob(f"*{CLOSED_SUFFIX}")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(lines_of(spool)) == 1  # closed without close(): run can take it
    writer.close()


PRODUCER = """
import sys, time
from meterctl.spool import Writer
writer = Writer(sys.argv[1], flush_seconds=0.02)
print("ready", flush=True)
n = 0
while True:
    writer.write("cus_" + sys.argv[2], "api_call", quantity=1, properties={"n": n, "pad": "x" * 200})
    n += 1
    if n % 50 == 0:
        time.sleep(0.001)
"""


def test_processes_killed_mid_write_leave_nothing_torn(tmp_path, db):
    spool = tmp_path / "spool"
    spool.mkdir()
    producers = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(spool), str(n)], stdout=subprocess.PIPE,
                                  text=True) for n in range(2)]
    for producer in producers:
        assert producer.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    for producer in producers:
        os.kill(producer.pid, signal.SIGKILL)
        producer.wait(timeout=30)
    # A torn append, as a crash in the middle of one would leave it.
    [torn, *_] = sorted(spool.glob(f"*{OPEN_SUFFIX}"))
    with open(torn, "ab") as handle:
        handle.write(b'{"event_id":"half","customer_id":"cus_0","event_na')
    assert len(list(spool.glob(f"*{OPEN_SUFFIX}"))) == 2  # each process wrote its own file
    recovered = Writer(spool).recovered  # the next writer on this host closes the dead ones' files
    assert len(recovered) == 2 and not list(spool.glob(f"*{OPEN_SUFFIX}"))
    found = lines_of(spool)
    assert found and {line["customer_id"] for line in found} == {"cus_0", "cus_1"}
    assert "half" not in {line["event_id"] for line in found}
    with Session(db) as s:
        result = s.ingest([str(spool)])
    assert (result.accepted, result.dead_lettered) == (len(found), 0)


def test_run_takes_the_closed_files_and_leaves_the_open_one(tmp_path, db, config, cli):
    spool = tmp_path / "spool"
    writer = Writer(spool)
    writer.write("cus_1", "api_call", event_id="first")
    writer.flush()  # appended, but the file is still open
    assert not list(spool.glob(f"*{CLOSED_SUFFIX}"))
    tick = ("run", "--spool", spool, "--db", db, "--pricebooks", config, "--json", "--max-lag", "1d")
    assert json.loads(cli(*tick).stdout)["ingest"] is None  # the open file is left for later
    writer.close()
    assert json.loads(cli(*tick).stdout)["ingest"]["accepted"] == 1


def test_the_writer_imports_nothing_heavy():
    done = subprocess.run([sys.executable, "-c", "import sys, meterctl.spool\n"
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                           "('duckdb', 'pyarrow', 'pydantic', 'numpy', 'rich', 'typer')))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
