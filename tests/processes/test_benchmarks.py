"""The benchmark scripts run end to end (slow: `pytest -m slow`; full size: run them directly)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def run_benchmark(script: str, *options: str) -> dict:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--repeat", "1", *options],
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout)


@pytest.mark.slow
def test_ingest_benchmark_runs_at_small_scale(tmp_path):
    report = run_benchmark("bench_ingest.py", "--scale", "0.02", "--data-dir", str(tmp_path),
                           "--only", "memory,ratio,history,floor")
    assert report["memory_10m"]["peak_rss_mib"] < report["memory_10m"]["target_mib"]
    assert report["ingest_vs_duckdb"]["ratio"] > 0
    assert report["history_20m"]["stored_events"] == 400_000
    assert report["floor"]["seconds"]["floor"] > 0 and report["floor"]["meterctl_vs_baseline"] > 0


@pytest.mark.slow
def test_rating_benchmark_runs_at_small_scale(tmp_path):
    report = run_benchmark("bench_rate.py", "--events", "20000", "--data-dir", str(tmp_path))
    assert report["rated_lines_per_run"] > report["customers"]  # a fee and a line per charge at least
    assert report["rate_vs_ingest"] > 0 and report["invoice_export_vs_ingest"] > 0
    assert 0 < report["rate_floor_seconds"] < report["rate_seconds"]
