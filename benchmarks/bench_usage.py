"""Usage benchmark for issue #3, as a ratio against a hand-written DuckDB GROUP BY in the same run.

A store with N events (default 2M, from generate_events.py) is aggregated into hourly
windows per customer × meter: once by `meterctl.metering.usage` with one sum meter per event
name, once by the equivalent hand-written GROUP BY (the same rows). Both fetch every row.

    python benchmarks/bench_usage.py [--events 2000000] [--data-dir bench-data] [--repeat 3]

With --history SMALL.duckdb BIG.duckdb (e.g. the empty and full stores that
bench_ingest.py --only history leaves in bench-data/work), it also times one new day's
usage on both: the cost must follow the day's events, not the stored history.
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
from warm_start import use_compiled_bytecode  # noqa: E402

from meterctl.metering import usage  # noqa: E402
from meterctl.meters import Meter  # noqa: E402
from meterctl.store import open_store  # noqa: E402

NAMES = ("api_call", "llm_tokens", "gpu_heartbeat", "storage_report")
# Hours as epoch microseconds, as meterctl fetches window bounds (a TIMESTAMPTZ column would
# need pytz to fetch at all).
BASELINE = """
    SELECT customer_id, event_name, epoch_us(time_bucket(INTERVAL 1 HOUR, ts)) AS hour, sum(quantity)
    FROM events WHERE ts >= ? AND ts < ?
    GROUP BY ALL
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--history", nargs=2, type=Path, metavar=("SMALL_DB", "BIG_DB"))
    args = parser.parse_args()
    use_compiled_bytecode()
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
    store = open_store(db, read_only=True)
    con = store.con  # type: ignore[attr-defined]  # the baseline's own query
    base_times, our_times = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        base_rows = con.execute(BASELINE, [start, end]).fetchall()
        base_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = usage(store.events, meters, window="hour", start=start, end=end)
        our_times.append(time.perf_counter() - t)
    assert len(result.rows) == len(base_rows), (len(result.rows), len(base_rows))
    report = {"usage_hourly": {
        "events": args.events, "rows": len(result.rows), "baseline_s": round(min(base_times), 3),
        "meterctl_s": round(min(our_times), 3), "ratio": round(min(our_times) / min(base_times), 3), "target": 1.5,
    }}
    if args.history:
        day = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
        times = {}
        for path in args.history:
            history = open_store(path, read_only=True)
            stored = history.events.status(0).events

            def new_day(events=history.events) -> object:
                return usage(events, meters, window="hour", start=day[0], end=day[1])

            best = min(_timed(new_day) for _ in range(args.repeat))
            times[path.name] = (stored, best)
            history.close()
        (small, (n_small, t_small)), (big, (n_big, t_big)) = times.items()
        report["new_day_vs_history"] = {"small_store_events": n_small, "big_store_events": n_big,
                                        "small_s": round(t_small, 3), "big_s": round(t_big, 3),
                                        "ratio": round(t_big / t_small, 3)}
    print(json.dumps(report, indent=2))


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
