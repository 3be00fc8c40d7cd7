"""Usage benchmark for issue #3, as a ratio against a hand-written DuckDB GROUP BY in the same run.

A store with N events (default 2M, from generate_events.py) is aggregated into hourly
windows per customer × meter: once by `meterctl.usage.usage` with one sum meter per event
name, once by the equivalent hand-written GROUP BY (the same rows). Both fetch every row.

    python benchmarks/bench_usage.py [--events 2000000] [--data-dir bench-data] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_events import generate  # noqa: E402

from meterctl import store  # noqa: E402
from meterctl.meters import Meter  # noqa: E402
from meterctl.usage import usage  # noqa: E402

NAMES = ("api_call", "llm_tokens", "gpu_heartbeat", "storage_report")
BASELINE = """
    SELECT customer_id, event_name, time_bucket(INTERVAL 1 HOUR, ts) AS hour, sum(quantity)
    FROM events WHERE ts >= ? AND ts < ?
    GROUP BY ALL
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    db = args.data_dir / f"usage-{args.events}.duckdb"
    if not db.exists():
        events = args.data_dir / f"events-{args.events}.jsonl"
        if not events.exists():
            generate(events, args.events)
        subprocess.run([sys.executable, "-m", "meterctl", "ingest", "--db", str(db), "--json", str(events)],
                       check=True, stdout=subprocess.DEVNULL)
    meters = [Meter(name=f"{n}_sum", event_name=n, aggregation="sum", value="quantity") for n in NAMES]
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    con = store.connect(db, read_only=True)
    base_times, our_times = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        base_rows = con.execute(BASELINE, [start, end]).fetchall()
        base_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = usage(con, meters, window="hour", start=start, end=end)
        our_times.append(time.perf_counter() - t)
    assert len(result.rows) == len(base_rows), (len(result.rows), len(base_rows))
    print(json.dumps({"usage_hourly": {
        "events": args.events, "rows": len(result.rows), "baseline_s": round(min(base_times), 3),
        "meterctl_s": round(min(our_times), 3), "ratio": round(min(our_times) / min(base_times), 3), "target": 1.5,
    }}, indent=2))


if __name__ == "__main__":
    main()
