"""Rating and invoicing benchmarks (issues #4 and #5), as shares of `meterctl ingest` in the same run.

2M events (generate_events.py: 1000 customers, four event names) are ingested into a fresh
store with `meterctl ingest`; 1000 customers (calendar and anniversary billing, three plans,
a plan change for every tenth) are imported; then `meterctl rate --period 2026-10` rates
them with pricebooks that use every charge model and price by dimension. Each command runs
as a subprocess (start-up included).

    python benchmarks/bench_rate.py [--events 2000000] [--data-dir bench-data] [--repeat 3]

Also `meterctl invoice --period 2026-10` and `meterctl invoice export` as JSON, each time on
a copy of the store from before any rating run: `invoice` rates the month itself and
records its run, so invoice + export is the whole rate + invoice + export work. HTML (1000
files, each written and fsynced on its own) is timed apart, since it measures the file
system more than meterctl. Also timed: `invoice` on a store where `rate` already ran (it
reuses that run), for rate, invoice and export run as three commands.

Each of the --repeat rounds ingests into a fresh store and times every command right after:
a ratio compares timings taken seconds apart, not minutes apart. On a shared machine whose
speed drifts, that is what keeps a ratio from measuring the drift. The ratios reported are
the median over the rounds (`*_each` lists every round's); `*_best` divides the best
timings of all rounds, as earlier versions of this script did.

`rate_floor_vs_ingest` times the same `rate` command with nothing to rate (a customer that
does not exist): start-up, imports, configuration and store, the part of the command that
does not depend on the data.

Prints one JSON object: seconds for each step (best of the rounds); rate/ingest (target:
under 0.10), for the command (`rate_vs_ingest`, Python start-up included) and for the
library call (`rate_library_vs_ingest`, after imports: what grows with the data); and
(invoice + JSON export)/ingest (target: under 0.5), also both ways, and
`rate_invoice_export_vs_ingest` for rate, invoice and export as three commands.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_events import generate  # noqa: E402
from warm_start import use_compiled_bytecode  # noqa: E402

METERS = """meters:
  - {name: api_calls, event_name: api_call, aggregation: count, group_by: [region]}
  - {name: tokens, event_name: llm_tokens, aggregation: sum, value: quantity, group_by: [model]}
  - {name: gpu_units, event_name: gpu_heartbeat, aggregation: sum, value: quantity}
  - {name: storage, event_name: storage_report, aggregation: max, value: quantity}
"""

PLANS = {
    "basic": """plan: basic
version: 1
effective_from: 2024-01-01
currency: USD
fees: [{name: Basic fee, amount: 19.00}]
charges:
  - {meter: api_calls, model: per_unit, unit_price: 0.002}
  - meter: tokens
    model: per_unit
    unit_price: 0.000002
    price_by: {model: {gpt-large: 0.00001, embed: 0.0000002}}
  - {meter: gpu_units, model: package, package_size: 60, package_price: 0.05, free_units: 600}
  - meter: storage
    model: volume
    tiers: [{up_to: 100, unit_price: 0.1}, {up_to: null, unit_price: 0.08}]
""",
    "team": """plan: team
version: 1
effective_from: 2024-01-01
currency: USD
fees: [{name: Team fee, amount: 49.00}]
charges:
  - meter: api_calls
    model: graduated
    tiers: [{up_to: 100, unit_price: 0}, {up_to: 1000, unit_price: 0.0015, flat_fee: 1}, {up_to: null, unit_price: 0.001}]
  - {meter: tokens, model: per_unit, unit_price: 0.0000015, minimum: 1.00}
  - {meter: gpu_units, model: package, package_size: 60, package_price: 0.04, free_units: 3600}
  - meter: storage
    model: volume
    tiers: [{up_to: 50, unit_price: 0}, {up_to: null, unit_price: 0.06}]
""",
    "scale": """plan: scale
version: 1
effective_from: 2024-01-01
currency: USD
rounding: half_even
fees: [{name: Scale fee, amount: 499.00}, {name: Support, amount: 150.00}]
charges:
  - meter: api_calls
    model: volume
    tiers: [{up_to: 1000, unit_price: 0.001}, {up_to: null, unit_price: 0.0005}]
    price_by: {region: {ap: {tiers: [{up_to: null, unit_price: 0.002}]}}}
  - meter: tokens
    model: graduated
    tiers: [{up_to: 1000000, unit_price: 0.000001}, {up_to: null, unit_price: 0.0000008, flat_fee: 5}]
    maximum: 500
  - {meter: gpu_units, model: per_unit, unit_price: 0.0005}
  - {meter: storage, model: per_unit, unit_price: 0.05, free_units: 100}
""",
}


def customers_yaml(count: int = 1000) -> str:
    lines = ["customers:"]
    plans = ("basic", "team", "scale")
    for i in range(count):
        plan = plans[i % 3]
        billing = "anniversary" if i % 5 == 0 else "calendar"
        start = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
        lines += [f"  - id: cus_{i:06d}", f"    name: Customer {i}", "    currency: USD",
                  f"    timezone: {('UTC', 'America/New_York', 'Europe/Berlin', 'Asia/Tokyo')[i % 4]}",
                  f"    billing: {billing}", "    subscriptions:", f"      - {{plan: {plan}, start: {start}}}"]
        if i % 10 == 3:
            lines.append(f"      - {{plan: {plans[(i + 1) % 3]}, start: 2026-10-{10 + i % 15}}}")
    return "\n".join(lines) + "\n"


# `rate` as a library call, timed after imports and configuration loading: the part that
# depends on the data, without the interpreter's start-up.
IN_PROCESS = """
import sys, time
from pathlib import Path
from meterctl import Session
config, db, repeat = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with Session(db=db, config=config) as session:
    session.configuration()
    session.store  # opened before the clock starts, as the data-dependent part is timed
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.rate("2026-10")
        times.append(time.perf_counter() - started)
print(min(times))
"""

INVOICE_IN_PROCESS = """
import shutil, sys, time
from pathlib import Path
from meterctl import Session
config, unrated, scratch, out, repeat = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
times = []
for _ in range(repeat):
    shutil.copyfile(unrated, scratch)
    with Session(db=scratch, config=config) as session:
        session.configuration()
        session.store  # opened, as the rating call above finds it
        started = time.perf_counter()
        session.invoice("2026-10")
        session.export("json", out / "invoices.json", period="2026-10")
        times.append(time.perf_counter() - started)
print(min(times))
"""


def fresh_work(work: Path, plan_extra: str = "") -> Path:
    """An empty `work` directory with the benchmark's configuration (each plan followed by
    `plan_extra`) and its customers.yaml; returns the configuration directory."""
    shutil.rmtree(work, ignore_errors=True)
    config = work / "pricebooks"
    config.mkdir(parents=True)
    (config / "meters.yaml").write_text(METERS)
    for plan, text in PLANS.items():
        (config / plan).mkdir()
        (config / plan / "v1.yaml").write_text(text + plan_extra)
    (work / "customers.yaml").write_text(customers_yaml())
    return config


def meterctl(*args: str, exit_code: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "meterctl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != exit_code:
        raise SystemExit(f"meterctl {' '.join(args)} exited {done.returncode}, not {exit_code}")
    return time.perf_counter() - started


def month_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark on the 2M-event month takes."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--repeat", type=int, default=3)
    return parser


def month_events(args: argparse.Namespace) -> Path:
    """The benchmark's events file (generated the first time), with meterctl run from bytecode."""
    use_compiled_bytecode()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    events = args.data_dir / f"events-{args.events}.jsonl"
    if not events.exists():
        generate(events, args.events)
    return events


def main() -> None:
    args = month_parser(__doc__).parse_args()
    events = month_events(args)
    work = args.data_dir / "rate-work"
    config = fresh_work(work)
    customers = work / "customers.yaml"

    db = work / "store.duckdb"
    unrated = work / "unrated.duckdb"  # ingested, customers imported, never rated
    scratch = work / "invoiced.duckdb"
    out = work / "out"
    out.mkdir()
    steps = ("ingest", "rate", "rate_floor", "invoice", "export", "html", "invoice_after_rate")
    times: dict[str, list[float]] = {step: [] for step in steps}
    for _ in range(args.repeat):
        for leftover in (db, Path(f"{db}.wal")):
            leftover.unlink(missing_ok=True)
        times["ingest"].append(meterctl("ingest", "--db", str(db), str(events)))
        meterctl("customers", "import", "--db", str(db), str(customers))
        shutil.copyfile(db, unrated)
        # `invoice` rates and records its own run (after `rate`, it would reuse rate's run).
        shutil.copyfile(unrated, scratch)
        times["invoice"].append(meterctl("invoice", "--db", str(scratch), "--pricebooks", str(config), "--period", "2026-10"))
        times["export"].append(meterctl("invoice", "export", "--db", str(scratch), "--period", "2026-10", "--format", "json",
                                        "-o", str(out / "invoices.json")))
        times["html"].append(meterctl("invoice", "export", "--db", str(scratch), "--period", "2026-10", "--format", "html",
                                      "-o", str(out / "html")))
        # The same command with nothing to rate (a customer that does not exist, exit 65): what
        # `rate` costs before any usage is read (start-up, imports, configuration, store).
        times["rate_floor"].append(meterctl("rate", "--db", str(db), "--pricebooks", str(config), "--period", "2026-10",
                                            "--customer", "no-such-customer", exit_code=65))
        times["rate"].append(meterctl("rate", "--db", str(db), "--pricebooks", str(config), "--period", "2026-10"))
        shutil.copyfile(db, scratch)  # where `rate` ran: invoice reuses its run
        times["invoice_after_rate"].append(meterctl("invoice", "--db", str(scratch), "--pricebooks", str(config), "--period", "2026-10"))
    in_process = float(subprocess.run([sys.executable, "-c", IN_PROCESS, str(config), str(db), str(args.repeat)],
                                      capture_output=True, text=True, check=True).stdout)
    invoice_library = float(subprocess.run(
        [sys.executable, "-c", INVOICE_IN_PROCESS, str(config), str(unrated), str(scratch), str(out), str(args.repeat)],
        capture_output=True, text=True, check=True).stdout)
    lines = subprocess.run([sys.executable, "-c", (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute('SELECT count(*) FROM rated_lines WHERE run_id = 1').fetchall()[0][0])"), str(db)],
        capture_output=True, text=True, check=True).stdout.strip()

    def ratios(*parts: str) -> dict:
        """The share of ingest, per round and as the median; and from the best timings."""
        each = [sum(times[p][i] for p in parts) / times["ingest"][i] for i in range(args.repeat)]
        best = sum(min(times[p]) for p in parts) / min(times["ingest"])
        return {"median": round(statistics.median(each), 4), "each": [round(r, 4) for r in each], "best": round(best, 4)}

    ingest_s = min(times["ingest"])
    rate, invoice_export, three = ratios("rate"), ratios("invoice", "export"), ratios("rate", "invoice_after_rate", "export")
    floor = ratios("rate_floor")
    print(json.dumps({
        "events": args.events, "customers": 1000, "rated_lines_per_run": int(lines),
        "ingest_seconds": round(ingest_s, 3), "rate_seconds": round(min(times["rate"]), 3),
        "rate_vs_ingest": rate["median"], "rate_vs_ingest_each": rate["each"], "rate_vs_ingest_best": rate["best"],
        "target": 0.10,
        "rate_floor_seconds": round(min(times["rate_floor"]), 3), "rate_floor_vs_ingest": floor["median"],
        "rate_floor_vs_ingest_each": floor["each"],
        "rate_library_seconds": round(in_process, 3), "rate_library_vs_ingest": round(in_process / ingest_s, 4),
        "invoice_seconds": round(min(times["invoice"]), 3), "export_json_seconds": round(min(times["export"]), 3),
        "export_html_seconds": round(min(times["html"]), 3),
        "invoice_export_vs_ingest": invoice_export["median"], "invoice_export_vs_ingest_each": invoice_export["each"],
        "invoice_export_vs_ingest_best": invoice_export["best"],
        "invoice_after_rate_seconds": round(min(times["invoice_after_rate"]), 3),
        "rate_invoice_export_vs_ingest": three["median"], "rate_invoice_export_vs_ingest_each": three["each"],
        "invoice_export_library_seconds": round(invoice_library, 3),
        "invoice_export_library_vs_ingest": round(invoice_library / ingest_s, 4), "invoice_target": 0.5,
        **{f"{step}_runs": [round(t, 3) for t in times[step]] for step in steps},
    }, indent=2))


if __name__ == "__main__":
    main()
