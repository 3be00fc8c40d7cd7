"""Prepaid credits benchmark (issue #18): what wallets add to `meterctl invoice`.

The store of bench_rate.py (2M events of generate_events.py, 1000 customers on three plans)
is built once. Two copies are invoiced in turn, round after round: one without grants, and
one where every customer has three (a top-up for usage, a promotion that pays fees too and
expires mid-November, token credits for one meter), imported with `meterctl wallet import`.
Both run `meterctl invoice --period 2026-10` as a subprocess (start-up included), then
`--finalize` (the debits are written with the numbers). The ratio with grants to without
is the median over the rounds (target: at most 1.1).

Then `meterctl wallet balance CUSTOMER` with its ongoing balance (the customer's open
October period rated from its events) on that store, and, with --history STORE (such as
the 20M-event store bench_ingest.py builds), on a copy of that bigger store that also holds
the same October: the ratio shows whether the balance reads the customer's open period or
the whole history (it should stay near 1).

    .venv/bin/python benchmarks/bench_credits.py [--events 2000000] [--data-dir bench-data] [--repeat 3] [--history STORE]

Prints one JSON object.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_rate import fresh_work, meterctl, month_events, month_parser  # noqa: E402


def grants_yaml(count: int = 1000) -> str:
    lines = ["grants:"]
    for i in range(count):
        customer = f"cus_{i:06d}"
        lines += [
            f"  - {{customer: {customer}, key: topup-{i}, amount: {5 + i % 40}, name: Top-up, effective: 2025-12-01}}",
            f"  - {{customer: {customer}, key: promo-{i}, credits: 1000, rate: 0.01, name: Promotion, priority: 1, "
            f"applies_to: [all], effective: 2026-09-01, expires: 2026-11-15}}",
            f"  - {{customer: {customer}, key: tokens-{i}, credits: 250000, rate: 0.00001, name: Token credits, "
            f"applies_to: [tokens], effective: 2026-01-01}}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = month_parser(__doc__)
    parser.add_argument("--history", type=Path, help="a bigger store of older events, to time wallet balance on")
    args = parser.parse_args()
    events = month_events(args)
    work = args.data_dir / "credits-work"
    config = fresh_work(work)
    (work / "grants.yaml").write_text(grants_yaml())

    plain, granted = work / "plain.duckdb", work / "granted.duckdb"
    meterctl("ingest", "--db", str(plain), str(events))
    meterctl("customers", "import", "--db", str(plain), str(work / "customers.yaml"))
    shutil.copyfile(plain, granted)
    meterctl("wallet", "import", "--db", str(granted), "--pricebooks", str(config), str(work / "grants.yaml"))

    times: dict[str, list[float]] = {name: [] for name in ("plain", "granted", "plain_final", "granted_final")}
    for _ in range(args.repeat):
        for name, source in (("plain", plain), ("granted", granted)):
            copy = work / f"{name}-round.duckdb"
            shutil.copyfile(source, copy)
            times[name].append(meterctl("invoice", "--db", str(copy), "--pricebooks", str(config), "--period", "2026-10"))
            times[f"{name}_final"].append(meterctl("invoice", "--db", str(copy), "--pricebooks", str(config), "--period",
                                                   "2026-10", "--finalize"))

    balance = ("wallet", "balance", "cus_000001", "--at", "2026-10-20T00:00:00Z", "--pricebooks", str(config))
    times["balance"] = [meterctl(*balance, "--db", str(granted)) for _ in range(args.repeat)]
    history_events = None
    if args.history is not None:
        big = work / "history.duckdb"
        shutil.copyfile(args.history, big)
        meterctl("ingest", "--db", str(big), str(events))
        meterctl("customers", "import", "--db", str(big), str(work / "customers.yaml"))
        meterctl("wallet", "import", "--db", str(big), "--pricebooks", str(config), str(work / "grants.yaml"))
        times["balance_history"] = [meterctl(*balance, "--db", str(big)) for _ in range(args.repeat)]
        import duckdb  # the stored history's size, for the report

        with duckdb.connect(str(big), read_only=True) as con:
            history_events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]

    def ratio(a: str, b: str) -> dict:
        each = [x / y for x, y in zip(times[a], times[b], strict=True)]
        return {"median": round(statistics.median(each), 3), "each": [round(r, 3) for r in each]}

    draft, final = ratio("granted", "plain"), ratio("granted_final", "plain_final")
    print(json.dumps({
        "events": args.events, "customers": 1000, "grants_per_customer": 3,
        "invoice_plain_seconds": round(min(times["plain"]), 3),
        "invoice_granted_seconds": round(min(times["granted"]), 3),
        "invoice_granted_vs_plain": draft["median"], "invoice_granted_vs_plain_each": draft["each"],
        "finalize_plain_seconds": round(min(times["plain_final"]), 3),
        "finalize_granted_seconds": round(min(times["granted_final"]), 3),
        "finalize_granted_vs_plain": final["median"], "finalize_granted_vs_plain_each": final["each"],
        "target": 1.1,
        "balance_seconds": round(min(times["balance"]), 3),
        **({"history_events": history_events, "balance_history_seconds": round(min(times["balance_history"]), 3),
            "balance_history_vs_balance": round(min(times["balance_history"]) / min(times["balance"]), 3)}
           if history_events is not None else {}),
    }, indent=2))


if __name__ == "__main__":
    main()
