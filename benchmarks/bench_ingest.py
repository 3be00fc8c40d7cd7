"""Ingest benchmarks for issue #2, as ratios against baselines measured in the same run.

1. 2M events (~400 MB, 2% resends, 0.1% malformed) into an empty store, against plain
   DuckDB loading the same file with one row per event_id:
   CREATE TABLE t AS SELECT DISTINCT ON (event_id) * FROM read_json(...).
2. 1M new events into a store already holding 20M events, against the same file into
   an empty store (the cost of deduplication must not grow with the stored history).
3. Peak memory (max RSS) of `meterctl ingest` on a 10M-event file.
4. (--only floor) Where the time of 1. goes, against the same baseline in each round:
   `floor` reads the file with meterctl's reader and parses and inserts every line in one
   statement, with none of the contract (no validation, dead letters, deduplication or
   conflicts): what this design costs before any of the work issue #2 asks for. Fixed
   costs (start-up, imports, schema, statement binding) are timed on a one-line file.

Every measurement runs in a fresh subprocess. A ratio's two sides are timed in turn, --repeat
rounds: `ratio` is the median of the rounds' ratios (`ratio_each`), `ratio_best` divides the
best timings (what earlier versions reported). Data files are generated once into
--data-dir and reused.

    python benchmarks/bench_ingest.py [--scale 1.0] [--data-dir bench-data] [--only ratio,history,memory,floor]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from meterctl.store.duckdb.connect import migrations  # noqa: E402

BASELINE = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE t AS SELECT DISTINCT ON (event_id) * FROM read_json(?, format='newline_delimited', ignore_errors=true)", [sys.argv[2]])
con.close()
"""

# The least a line-numbered design does: meterctl's reader, one parse per line, one insert
# into a table shaped like `events`, one transaction. Nothing is validated or deduplicated.
FLOOR = """
import duckdb, sys
from pathlib import Path
from meterctl.io.readers import LineReader
from meterctl.io.sources import Source
FIELDS = '{"event_id":"VARCHAR","customer_id":"VARCHAR","event_name":"VARCHAR","timestamp":"VARCHAR","quantity":"VARCHAR","properties":"JSON"}'
con = duckdb.connect(sys.argv[1])
con.execute("SET preserve_insertion_order = false")
con.execute("CREATE TABLE events (event_id VARCHAR, customer_id VARCHAR, event_name VARCHAR, ts TIMESTAMPTZ, "
            "quantity DECIMAL(38, 18), properties JSON, batch_id BIGINT, line_no BIGINT, id_hash UBIGINT)")
con.execute("BEGIN")
reader = LineReader(Source(sys.argv[2], Path(sys.argv[2])))
for chunk, _ in reader.chunks():
    con.register("chunk", chunk)
    con.execute("INSERT INTO events SELECT f.event_id, f.customer_id, f.event_name, TRY_CAST(f.timestamp AS TIMESTAMPTZ), "
                "TRY_CAST(f.quantity AS DECIMAL(38, 18)), f.properties, 1, line_no, hash(f.event_id) "
                "FROM (SELECT line_no, CASE WHEN json_valid(txt) THEN json_transform(txt, ?) END AS f FROM chunk)", [FIELDS])
    con.unregister("chunk")
reader.content_sha256()
con.execute("COMMIT")
con.close()
"""

# Fill the store with `n` events directly through SQL (setup, not measured). Their ids are
# 'evt_<12 digits>_old': they sort between the benchmark file's 'evt_<12 digits>' ids.
PREFILL = """
import duckdb, sys
from pathlib import Path
from meterctl.store.duckdb.connect import connect
from meterctl.store.duckdb.key_hashes import ensure_key_hashes
n = int(sys.argv[2])
con = connect(Path(sys.argv[1]))
con.execute("BEGIN")
con.execute('''INSERT INTO ingest_batches VALUES (1, 'prefill', NULL, 'jsonl', 'prefill', 0, NULL, now(), now(), ?, 0, ?, 0, 0, 0, 'bench')''', [n, n])
con.execute('''
    INSERT INTO events (event_id, customer_id, event_name, ts, quantity, properties, batch_id, line_no, id_hash)
    SELECT 'evt_' || lpad(CAST(i AS VARCHAR), 12, '0') || '_old', 'cus_' || lpad(CAST(i % 1000 AS VARCHAR), 6, '0'),
           (['api_call', 'llm_tokens', 'gpu_heartbeat', 'storage_report'])[1 + i % 4],
           TIMESTAMPTZ '2026-09-01 00:00:00+00' + to_seconds(i % 2592000),
           CAST(1 + i % 5000 AS DECIMAL(38, 18)), CAST('{"model":"embed","region":"eu"}' AS JSON), 1, i + 1, NULL
    FROM range(?) t(i)''', [n])
con.execute("COMMIT")
ensure_key_hashes(con)  # as ingest leaves them: every key hash set and its probe recorded
con.execute("CHECKPOINT")
con.close()
"""


def run(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def fresh(path: Path) -> Path:
    for suffix in ("", ".wal", ".tmp"):
        p = Path(str(path) + suffix)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return path


def meterctl(db: Path, *files: Path) -> list[str]:
    return [sys.executable, "-m", "meterctl", "ingest", "--db", str(db), "--json", *map(str, files)]


def paired(repeat: int, baseline, ours) -> dict:
    """Time `baseline` and `ours` (each a (prepare, argv_for) pair) in turn, `repeat` rounds.

    Each round's two timings are taken back to back, so their ratio does not measure how
    the speed of a shared machine drifted in between. `ratio` is the median of the rounds'
    ratios, `ratio_best` the ratio of the best timings."""
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for (prepare, argv_for), times in zip((baseline, ours), runs, strict=True):
            times.append(run(argv_for(prepare())))
    base, mine = runs
    each = [m / b for b, m in zip(base, mine, strict=True)]
    return {"baseline_s": round(min(base), 3), "meterctl_s": round(min(mine), 3),
            "ratio": round(statistics.median(each), 3), "ratio_each": [round(r, 3) for r in each],
            "ratio_best": round(min(mine) / min(base), 3)}


def ensure(path: Path, events: int, **kw) -> Path:
    if not path.exists():
        print(f"generating {path} ({events} events)…", file=sys.stderr)
        generate(path, events, **kw)
    return path


def bench_ratio(data: Path, work: Path, scale: float, repeat: int) -> dict:
    events = ensure(data / f"events-{int(2_000_000 * scale)}.jsonl", int(2_000_000 * scale))
    db = work / "ratio.duckdb"
    timed = paired(repeat, (lambda: fresh(db), lambda d: [sys.executable, "-c", BASELINE, str(d), str(events)]),
                   (lambda: fresh(db), lambda d: meterctl(d, events)))
    return {"events": int(2_000_000 * scale), **timed, "target": 1.5}


def bench_floor(data: Path, work: Path, scale: float, repeat: int) -> dict:
    """The baseline, the floor and meterctl, timed in turn each round (see the module doc)."""
    events = ensure(data / f"events-{int(2_000_000 * scale)}.jsonl", int(2_000_000 * scale))
    one = work / "one-line.jsonl"
    one.write_text('{"event_id":"e1","customer_id":"c1","event_name":"api_call","timestamp":"2026-10-01T00:00:00Z"}\n')
    db = work / "floor.duckdb"
    sides = {
        "baseline": lambda f: [sys.executable, "-c", BASELINE, str(fresh(db)), str(f)],
        "floor": lambda f: [sys.executable, "-c", FLOOR, str(fresh(db)), str(f)],
        "meterctl": lambda f: meterctl(fresh(db), f),
    }
    full: dict[str, list[float]] = {name: [] for name in sides}
    fixed: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeat):
        for name, argv_for in sides.items():
            full[name].append(run(argv_for(events)))
            fixed[name].append(run(argv_for(one)))

    def median_ratio(name: str) -> float:
        return round(statistics.median(m / b for m, b in zip(full[name], full["baseline"], strict=True)), 3)

    return {
        "events": int(2_000_000 * scale),
        "seconds": {name: round(min(times), 3) for name, times in full.items()},
        "one_line_seconds": {name: round(min(times), 3) for name, times in fixed.items()},
        "floor_vs_baseline": median_ratio("floor"),
        "meterctl_vs_baseline": median_ratio("meterctl"),
        # Shares of the baseline: what the contract's work (validation, dead letters,
        # deduplication, conflicts) may cost on top of the floor within the 1.5 target,
        # and what it costs now.
        "room_left_for_the_contract": round(1.5 - median_ratio("floor"), 3),
        "contract_now": round(median_ratio("meterctl") - median_ratio("floor"), 3),
    }


def bench_history(data: Path, work: Path, scale: float, repeat: int) -> dict:
    n_new, n_old = int(1_000_000 * scale), int(20_000_000 * scale)
    # Same id prefix as the stored events, so new ids interleave with stored ones (as random
    # ids would) and no zone map can skip the stored history.
    events = ensure(data / f"new-{n_new}.jsonl", n_new, seed=7)
    # The template carries the schema version: a store from an older meterctl would be
    # migrated (and its key hashes computed) inside the measured run.
    template = data / f"store-{n_old}-schema{max(m.version for m in migrations())}.duckdb"
    if not template.exists():
        print(f"prefilling {template} with {n_old} events…", file=sys.stderr)
        subprocess.run([sys.executable, "-c", PREFILL, str(fresh(template)), str(n_old)], check=True)
    empty_db, full_db = work / "empty.duckdb", work / "full.duckdb"

    def copy_template() -> Path:
        fresh(full_db)
        shutil.copyfile(template, full_db)
        return full_db

    timed = paired(repeat, (lambda: fresh(empty_db), lambda d: meterctl(d, events)),
                   (copy_template, lambda d: meterctl(d, events)))
    return {"new_events": n_new, "stored_events": n_old, "empty_store_s": timed.pop("baseline_s"),
            "full_store_s": timed.pop("meterctl_s"), **timed, "target": 1.5}


def bench_memory(data: Path, work: Path, scale: float) -> dict:
    n = int(10_000_000 * scale)
    events = ensure(data / f"events-{n}.jsonl", n, seed=3)
    db = fresh(work / "memory.duckdb")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    seconds = run(meterctl(db, events))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib <= before:
        print("warning: an earlier child had a higher peak; run --only memory alone", file=sys.stderr)
    return {"events": n, "file_mb": round(events.stat().st_size / 2**20), "seconds": round(seconds, 2),
            "peak_rss_mib": round(peak_kib / 1024), "target_mib": 2048}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every event count (e.g. 0.01 for a smoke run)")
    parser.add_argument("--data-dir", type=Path, default=Path("bench-data"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="ratio,history,memory")
    args = parser.parse_args()
    use_compiled_bytecode()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    work = args.data_dir / "work"
    work.mkdir(exist_ok=True)
    wanted = set(args.only.split(","))
    report = {}
    # Memory first: RUSAGE_CHILDREN keeps the largest child seen so far.
    if "memory" in wanted:
        report["memory_10m"] = bench_memory(args.data_dir, work, args.scale)
    if "ratio" in wanted:
        report["ingest_vs_duckdb"] = bench_ratio(args.data_dir, work, args.scale, args.repeat)
    if "history" in wanted:
        report["history_20m"] = bench_history(args.data_dir, work, args.scale, args.repeat)
    if "floor" in wanted:
        report["floor"] = bench_floor(args.data_dir, work, args.scale, args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
