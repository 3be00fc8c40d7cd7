"""Generate a large synthetic usage-event log for benchmarks.

The file is JSONL in the meterctl event contract with a given share of identical
resends and malformed (truncated) lines, written by DuckDB so that millions of
events take seconds. Deterministic for a given --seed.
"""
from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import duckdb


def generate(path: Path, events: int, *, resend_share: float = 0.02,
             malformed_share: float = 0.001, seed: int = 1, id_prefix: str = "evt") -> None:
    """Write `events` unique events plus resends and malformed lines to `path`."""
    tmp = path.with_suffix(path.suffix + ".part")
    con = duckdb.connect()
    con.execute("SELECT setseed(?)", [seed / 1000.0])
    resends = int(events * resend_share)
    con.execute(
        """
        CREATE TEMP TABLE ev AS
        SELECT
            ? || '_' || lpad(CAST(i AS VARCHAR), 12, '0') AS event_id,
            'cus_' || lpad(CAST(i * 7919 % 1000 AS VARCHAR), 6, '0') AS customer_id,
            (['api_call', 'llm_tokens', 'gpu_heartbeat', 'storage_report'])[1 + i % 4] AS event_name,
            strftime(TIMESTAMP '2026-10-01' + to_microseconds(CAST(i * 1299709 % 2678400000000 AS BIGINT)),
                     '%Y-%m-%dT%H:%M:%S.%fZ') AS "timestamp",
            CAST(1 + i * 31 % 5000 AS BIGINT) AS quantity,
            {'model': (['gpt-large', 'gpt-small', 'embed'])[1 + i % 3],
             'region': (['us', 'eu', 'ap'])[1 + i % 5 % 3]} AS properties
        FROM range(?) t(i)
        """,
        [id_prefix, events],
    )
    # Resends: exact copies of random earlier events, shuffled into the stream.
    con.execute(
        """
        CREATE TEMP TABLE stream AS
        SELECT * FROM (
            SELECT *, random() AS pos FROM ev
            UNION ALL
            SELECT *, random() AS pos FROM (SELECT * FROM ev ORDER BY hash(event_id, ?) LIMIT ?)
        ) ORDER BY pos
        """,
        [seed, resends],
    )
    con.execute(f"COPY (SELECT * EXCLUDE (pos) FROM stream) TO '{tmp}' (FORMAT json)")
    con.close()
    _inject_malformed(tmp, path, malformed_share, seed)
    os.unlink(tmp)


def _inject_malformed(src: Path, dst: Path, share: float, seed: int) -> None:
    """Truncate roughly `share` of the lines, so they are no longer valid JSON."""
    rng = random.Random(seed)
    every = max(1, round(1 / share)) if share > 0 else 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            block = fin.readlines(64 << 20)
            if not block:
                break
            if every:
                for k in range(rng.randrange(every), len(block), every):
                    line = block[k]
                    block[k] = line[: max(1, len(line) // 2)] + b"\n"
            fout.writelines(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--resend-share", type=float, default=0.02)
    parser.add_argument("--malformed-share", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--id-prefix", default="evt")
    args = parser.parse_args()
    generate(args.path, args.events, resend_share=args.resend_share,
             malformed_share=args.malformed_share, seed=args.seed, id_prefix=args.id_prefix)


if __name__ == "__main__":
    main()
