"""Monitoring and cron-tick benchmarks (issue #21) on a store holding 20M events.

The store: 20M events of older history (written straight into the table, as bench_ingest
prefills it, with timestamps from 400 to 45 days ago), then 2M recent events (the last 40
days, up to a minute ago) ingested with `meterctl ingest`, 1000 customers on the plans of
bench_rate.py. Built once per --data-dir. Round after round:

- `meterctl metrics` with every series, and with --no-customer-series (target: under 1 s;
  it reads batch records, and for the open and last closed month one pass over their
  events, never the history);
- `meterctl ingest` of a new 10k-event file alone, then `meterctl run --spool` with that
  same file in its spool (on another copy of the store), as a ratio: what a tick costs
  beyond the ingest (rating the open month is the part that grows).

    .venv/bin/python benchmarks/bench_monitoring.py [--history 20000000] [--recent 2000000] [--data-dir bench-data] [--repeat 3]

Prints one JSON object.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_rate import fresh_work, meterctl, month_parser  # noqa: E402
from warm_start import use_compiled_bytecode  # noqa: E402

HISTORY = """
import sys
from pathlib import Path
from meterctl.store.duckdb.connect import connect
from meterctl.store.duckdb.key_hashes import ensure_key_hashes
n = int(sys.argv[2])
con = connect(Path(sys.argv[1]))
con.execute("BEGIN")
con.execute('''INSERT INTO ingest_batches VALUES (1, 'history', NULL, 'jsonl', 'history', 0, NULL,
               now() - INTERVAL 45 DAY, now() - INTERVAL 45 DAY, ?, 0, ?, 0, 0, 0, 'bench')''', [n, n])
con.execute('''
    INSERT INTO events (event_id, customer_id, event_name, ts, quantity, properties, batch_id, line_no, id_hash)
    SELECT 'old_' || lpad(CAST(i AS VARCHAR), 12, '0'), 'cus_' || lpad(CAST(i % 1000 AS VARCHAR), 6, '0'),
           (['api_call', 'llm_tokens', 'gpu_heartbeat', 'storage_report'])[1 + i % 4],
           now() - INTERVAL 400 DAY + to_microseconds(CAST(i AS BIGINT) * (355 * 86400000000 // ?)),
           CAST(1 + i % 5000 AS DECIMAL(38, 18)), CAST('{"model":"embed","region":"eu"}' AS JSON), 1, i + 1, NULL
    FROM range(?) t(i)''', [n, n])
con.execute("COMMIT")
ensure_key_hashes(con)
con.execute("CHECKPOINT")
con.close()
"""

RECENT = """
import sys, duckdb
n, path, prefix, days = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute('''COPY (
    SELECT ? || lpad(CAST(i AS VARCHAR), 12, '0') AS event_id,
           'cus_' || lpad(CAST(i * 7919 % 1000 AS VARCHAR), 6, '0') AS customer_id,
           (['api_call', 'llm_tokens', 'gpu_heartbeat', 'storage_report'])[1 + i % 4] AS event_name,
           strftime(now() - INTERVAL 1 MINUTE - to_microseconds(CAST(i * 1299709 % CAST(? * 86400000000 AS BIGINT) AS BIGINT)),
                    '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
           CAST(1 + i * 31 % 5000 AS BIGINT) AS quantity,
           {'model': (['gpt-large', 'gpt-small', 'embed'])[1 + i % 3], 'region': (['us', 'eu', 'ap'])[1 + i % 5 % 3]}
               AS properties
    FROM range(?) t(i)) TO '{path}' (FORMAT json)'''.replace('{path}', path), [prefix, days, n])
"""


def tick(*args: str) -> float:
    """`meterctl run`, timed: exit 0, or 65 when the generated month has something to say."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "meterctl", "run", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    if done.returncode not in (0, 65):
        raise SystemExit(f"meterctl run {' '.join(args)} exited {done.returncode}")
    return time.perf_counter() - started


def main() -> None:
    parser = month_parser(__doc__)
    parser.add_argument("--history", type=int, default=20_000_000)
    parser.add_argument("--recent", type=int, default=2_000_000)
    args = parser.parse_args()
    use_compiled_bytecode()
    work = args.data_dir / f"monitoring-{args.history}-{args.recent}"
    store = work / "store.duckdb"
    if not store.exists():
        config = fresh_work(work)
        partial = work / "building.duckdb"
        partial.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-c", HISTORY, str(partial), str(args.history)], check=True)
        recent = work / "recent.jsonl"
        subprocess.run([sys.executable, "-c", RECENT, str(args.recent), str(recent), "new_", "40"], check=True)
        meterctl("ingest", "--db", str(partial), str(recent))
        meterctl("customers", "import", "--db", str(partial), str(work / "customers.yaml"))
        recent.unlink()
        partial.rename(store)
    config = work / "pricebooks"
    common = ("--pricebooks", str(config))
    times: dict[str, list[float]] = {name: [] for name in ("metrics", "metrics_bare", "ingest", "run")}
    for round_no in range(args.repeat):
        times["metrics"].append(meterctl("metrics", *common, "--db", str(store), "-o", str(work / "m.prom")))
        times["metrics_bare"].append(meterctl("metrics", *common, "--db", str(store), "--no-customer-series",
                                              "-o", str(work / "m.prom")))
        spool = work / "spool"
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        subprocess.run([sys.executable, "-c", RECENT, "10000", str(spool / "tick.jsonl"), f"tick{round_no}_", "0.01"],
                       check=True)
        for name in ("ingest", "run"):
            copy = work / f"{name}.duckdb"
            shutil.copyfile(store, copy)
            if name == "ingest":
                times[name].append(meterctl("ingest", "--db", str(copy), str(spool / "tick.jsonl")))
            else:
                # A fresh copy has no run for the open month yet: price it once first, as the
                # previous tick would have (the tick then prices it again with the new file).
                tick(*common, "--db", str(copy), "--max-lag", "1000d")
                times[name].append(tick(*common, "--db", str(copy), "--spool", str(spool), "--max-lag", "1000d"))
            copy.unlink()
    each = [r / i for r, i in zip(times["run"], times["ingest"], strict=True)]
    size = sum(line.startswith("meterctl_") for line in (work / "m.prom").read_text().splitlines())
    print(json.dumps({
        "history_events": args.history, "recent_events": args.recent, "customers": 1000,
        "metrics_seconds": round(min(times["metrics"]), 3),
        "metrics_no_customer_series_seconds": round(min(times["metrics_bare"]), 3), "metrics_target_seconds": 1.0,
        "series_without_customers": size,
        "ingest_10k_seconds": round(min(times["ingest"]), 3), "run_tick_10k_seconds": round(min(times["run"]), 3),
        "run_vs_ingest": round(statistics.median(each), 3), "run_vs_ingest_each": [round(r, 3) for r in each],
    }, indent=2))


if __name__ == "__main__":
    main()
