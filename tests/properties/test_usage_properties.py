"""Usage windows add up: a duration split at any instant, hourly windows in any time zone."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.metering import usage
from meterctl.meters import Meter
from tests.conftest import event, examples, ingest_paths, jsonl, opened
from tests.tenants import GPU, NOV, OCT, SEP, gpu_stop, heartbeat, meter


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=-3 * 86400, max_value=3 * 86400), min_size=1, max_size=12),
    stops=st.lists(st.booleans(), min_size=12, max_size=12),
    cut=st.integers(min_value=-2 * 86400, max_value=2 * 86400),
)
def test_a_duration_split_at_any_instant_adds_up_to_the_whole(tmp_path, offsets, stops, cut):
    # Heartbeats and stops of two jobs around Oct 1 (gap 60 s); the range [Sep 1, Nov 1) cut
    # at any instant: the two parts add up to the whole, whatever crosses the cut.
    db = tmp_path / "d.duckdb"
    db.unlink(missing_ok=True)
    path = tmp_path / "d.jsonl"
    records = [(gpu_stop if stop else heartbeat)(f"e{i}", (OCT + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                              job=f"j{i % 2}")
               for i, (s, stop) in enumerate(zip(offsets, stops, strict=False))]
    path.write_text(jsonl(*records))
    store = opened(db)
    try:
        ingest_paths(store, path)
        gpu = Meter(**GPU, stop_event="gpu_stop")
        middle = OCT + timedelta(seconds=cut)

        def total(start, end):
            return sum(r.value for r in usage(store.events, [gpu], window="month", start=start, end=end).rows if r.value)

        assert total(SEP, middle) + total(middle, NOV) == total(SEP, NOV)
    finally:
        store.close()

@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=31 * 24 * 3600 - 1), min_size=1, max_size=30),
    quantities=st.lists(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False), min_size=30, max_size=30),
    tz=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_hourly_windows_add_up_to_the_whole_range(tmp_path, offsets, quantities, tz):
    db = tmp_path / "h.duckdb"
    db.unlink(missing_ok=True)
    path = tmp_path / "h.jsonl"
    records = [event(f"e{i}", timestamp=(OCT + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ"), quantity=str(q))
               for i, (s, q) in enumerate(zip(offsets, quantities, strict=False))]
    path.write_text(jsonl(*records))
    store = opened(db)
    try:
        ingest_paths(store, path)
        summed = meter(aggregation="sum", value="quantity")
        hourly = usage(store.events, [summed, meter(name="n")], window="hour", start=OCT, end=NOV, tz=tz)
        total = {name: sum(r.value for r in hourly.rows if r.meter == name) for name in ("m", "n")}
        assert total["m"] == sum(quantities[: len(offsets)])
        assert total["n"] == len(offsets)
    finally:
        store.close()
