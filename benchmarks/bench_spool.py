"""The spool writer (issue #21): events written per second from 4 threads, and the time a
`write` call adds to a request (target: well under 50 µs per event).

    .venv/bin/python benchmarks/bench_spool.py [--events 200000] [--threads 4] [--dir DIR]

Each thread writes events/threads events with two properties, as an API would after each
request; the writer flushes in the background and rotates files by size. Latency per call
is measured around each `write` in one thread of the same run (median and 99th
percentile), throughput as all events over the wall time until `close` returns (every
line on disk, every file closed). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from meterctl.spool import Writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    spool = args.dir or Path(tempfile.mkdtemp(prefix="meterctl-spool-"))
    per_thread = args.events // args.threads
    latencies: list[float] = []

    def produce(n: int, timed: bool) -> None:
        clock = time.perf_counter_ns
        for i in range(per_thread):
            if timed:
                started = clock()
                writer.write(f"cus_{i % 1000:06d}", "api_call", quantity=1, properties={"endpoint": "/v1/orders", "n": i})
                latencies.append((clock() - started) / 1000)
            else:
                writer.write(f"cus_{i % 1000:06d}", "api_call", quantity=1, properties={"endpoint": "/v1/orders", "n": i})

    started = time.perf_counter()
    writer = Writer(spool)
    threads = [threading.Thread(target=produce, args=(n, n == 0)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    took = time.perf_counter() - started
    files = list(spool.glob("*.jsonl"))
    lines = sum(path.read_bytes().count(b"\n") for path in files)
    latencies.sort()
    print(json.dumps({
        "events": per_thread * args.threads, "threads": args.threads, "lines_on_disk": lines, "files": len(files),
        "events_per_second": round(per_thread * args.threads / took),
        "write_us_median": round(statistics.median(latencies), 2),
        "write_us_p99": round(latencies[int(len(latencies) * 0.99)], 2), "target_us": 50,
    }, indent=2))
    if args.dir is None:
        shutil.rmtree(spool)


if __name__ == "__main__":
    main()
