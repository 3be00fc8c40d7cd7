"""Reconciliation benchmark (issue #20), against `meterctl rate` in the same run.

The store of bench_rate.py (2M events of generate_events.py, 1000 customers on three plans)
is built once and October is invoiced and finalized on a copy. Round after round, back to
back:

- `meterctl rate --period 2026-10` on a fresh copy of the store before any run;
- `meterctl reconcile --period 2026-10` on the invoiced copy (target: at most 1.0 × rate:
  one pass over the month's events, where rate reads them once per meter);
- the same after a late file (one event for each of 20 customers, ingested after the
  finalization), which makes reconcile price those customers again for the revision each
  calls for.

    .venv/bin/python benchmarks/bench_reconcile.py [--events 2000000] [--data-dir bench-data] [--repeat 3]

Prints one JSON object: seconds (best of the rounds) and the median ratios to rate.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_rate import fresh_work, meterctl, month_events, month_parser  # noqa: E402


def _exit_code(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "meterctl", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


def main() -> None:
    parser = month_parser(__doc__)
    args = parser.parse_args()
    events = month_events(args)
    work = args.data_dir / "reconcile-work"
    config = fresh_work(work)
    db = work / "store.duckdb"
    meterctl("ingest", "--db", str(db), str(events))
    meterctl("customers", "import", "--db", str(db), str(work / "customers.yaml"))
    month = ("--period", "2026-10", "--pricebooks", str(config))
    invoiced = work / "invoiced.duckdb"
    shutil.copyfile(db, invoiced)
    meterctl("invoice", "--finalize", *month, "--db", str(invoiced))
    late = work / "late.duckdb"
    shutil.copyfile(invoiced, late)
    stragglers = work / "late.jsonl"
    stragglers.write_text("".join(
        json.dumps({"event_id": f"late-{n}", "customer_id": f"cus_{n:06d}", "event_name": "llm_tokens",
                    "timestamp": "2026-10-20T12:00:00Z", "quantity": 1000, "properties": {"model": "gpt-large"}}) + "\n"
        for n in range(1, 21)))
    meterctl("ingest", "--db", str(late), str(stragglers))
    # Each store's exit code is taken as it is (0: the generated month reconciles; 65 once the
    # late file is in), and must be the same every round.
    clean_code = _exit_code("reconcile", *month, "--db", str(invoiced))
    late_code = _exit_code("reconcile", *month, "--db", str(late))
    result = json.loads(subprocess.run([sys.executable, "-m", "meterctl", "reconcile", "--json", *month, "--db", str(late)],
                                       capture_output=True, text=True).stdout)

    times: dict[str, list[float]] = {name: [] for name in ("rate", "reconcile", "reconcile_late")}
    for _ in range(args.repeat):
        scratch = work / "rated.duckdb"
        shutil.copyfile(db, scratch)  # rate records a run: on a copy, so every round rates afresh
        times["rate"].append(meterctl("rate", *month, "--db", str(scratch)))
        times["reconcile"].append(meterctl("reconcile", *month, "--db", str(invoiced), exit_code=clean_code))
        times["reconcile_late"].append(meterctl("reconcile", *month, "--db", str(late), exit_code=late_code))

    def ratio(name: str) -> tuple[float, list[float]]:
        each = [t / r for t, r in zip(times[name], times["rate"], strict=True)]
        return round(statistics.median(each), 3), [round(r, 3) for r in each]

    reconcile_ratio, reconcile_each = ratio("reconcile")
    late_ratio, late_each = ratio("reconcile_late")
    print(json.dumps({
        "events": args.events, "customers": 1000, "in_period": result["events"]["in_period"],
        "late_invoices": len(result["late"]["invoices"]), "reconcile_exit": clean_code,
        "rate_seconds": round(min(times["rate"]), 3), "reconcile_seconds": round(min(times["reconcile"]), 3),
        "reconcile_late_seconds": round(min(times["reconcile_late"]), 3),
        "reconcile_vs_rate": reconcile_ratio, "reconcile_vs_rate_each": reconcile_each,
        "reconcile_late_vs_rate": late_ratio, "reconcile_late_vs_rate_each": late_each, "target": 1.0,
    }, indent=2))


if __name__ == "__main__":
    main()
