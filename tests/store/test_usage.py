"""Usage per customer × meter × window: every aggregation, filters, dimensions, time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterctl.errors import UsageOverflowError
from meterctl.instants import iso
from meterctl.metering import usage
from meterctl.meters import Meter
from tests.conftest import event, jsonl
from tests.tenants import GPU, NOV, OCT, SEP, gpu_stop, heartbeat, meter


def values(result) -> dict:
    return {(r.customer_id, iso(r.window_start), tuple(r.dimensions.values())): r.value for r in result.rows}


def load(write, run_ingest, *records):
    run_ingest(write("events.jsonl", jsonl(*records)))


def test_count_and_sum_per_day_with_dimensions(write, run_ingest, store):
    load(write, run_ingest,
         event("a", quantity=5, properties={"model": "big"}),
         event("b", quantity="2.5", properties={"model": "big"}),
         event("c", quantity=1, properties={"model": "small"}),
         event("d", quantity=1, timestamp="2026-10-06T01:00:00Z"),
         event("e", customer_id="cus_2", quantity=7))
    counts = usage(store.events, [meter()], window="day", start=OCT, end=NOV)
    assert values(counts) == {
        ("cus_1", "2026-10-05T00:00:00Z", ()): 3,
        ("cus_1", "2026-10-06T00:00:00Z", ()): 1,
        ("cus_2", "2026-10-05T00:00:00Z", ()): 1,
    }
    sums = usage(store.events, [meter(aggregation="sum", value="quantity", group_by=("model",))], window="month", start=OCT, end=NOV)
    assert values(sums) == {
        ("cus_1", "2026-10-01T00:00:00Z", ("big",)): Decimal("7.5"),
        ("cus_1", "2026-10-01T00:00:00Z", ("small",)): 1,
        ("cus_1", "2026-10-01T00:00:00Z", (None,)): 1,
        ("cus_2", "2026-10-01T00:00:00Z", (None,)): 7,
    }


def test_max_min_latest_and_count_unique(write, run_ingest, store):
    load(write, run_ingest,
         event("a", event_name="storage", timestamp="2026-10-05T01:00:00Z", properties={"gb": 12.75, "user": "u1"}),
         event("b", event_name="storage", timestamp="2026-10-05T03:00:00Z", properties={"gb": "3.5", "user": "u2"}),
         event("c", event_name="storage", timestamp="2026-10-05T02:00:00Z", properties={"gb": 20, "user": "u1"}))
    common = {"event_name": "storage", "value": "properties.gb"}
    got = {
        agg: values(usage(store.events, [meter(aggregation=agg, **common)], window="day", start=OCT, end=NOV))
        for agg in ("max", "min", "latest")
    }
    day = ("cus_1", "2026-10-05T00:00:00Z", ())
    assert (got["max"][day], got["min"][day], got["latest"][day]) == (20, Decimal("3.5"), Decimal("3.5"))
    unique = usage(store.events, [meter(aggregation="count_unique", event_name="storage", value="properties.user")],
                   window="day", start=OCT, end=NOV)
    assert values(unique)[day] == 2


def test_filters_select_events_by_property(write, run_ingest, store):
    load(write, run_ingest,
         event("a", properties={"region": "us"}), event("b", properties={"region": "eu"}),
         event("c", properties={"region": "ap"}), event("d"))
    result = usage(store.events, [meter(filters={"region": ["us", "eu"]})], window="month", start=OCT, end=NOV)
    assert [r.value for r in result.rows] == [2]


def test_unmeterable_events_are_reported_never_zero(write, run_ingest, store):
    load(write, run_ingest,
         event("a", event_name="storage", properties={"gb": 4}),
         event("b", event_name="storage", properties={"gb": "lots"}),
         event("c", event_name="storage"),
         event("r", event_name="storage", properties={"gb": "0.0000000000000000004"}),  # DECIMAL(38, 18) would make it 0
         event("d", event_name="storage", customer_id="cus_2", properties={"gb": "n/a"}))
    result = usage(store.events, [meter(aggregation="sum", event_name="storage", value="properties.gb")],
                   window="month", start=OCT, end=NOV)
    assert [(r.customer_id, r.value, r.unmeterable) for r in result.rows] == [("cus_1", 4, 3), ("cus_2", None, 1)]
    assert [(u.customer_id, u.events) for u in result.unmeterable] == [("cus_1", 3), ("cus_2", 1)]


def test_day_windows_follow_the_time_zone_across_dst(write, run_ingest, store):
    # New York leaves daylight saving time on 2026-11-01: that local day lasts 25 hours.
    load(write, run_ingest,
         event("a", timestamp="2026-11-01T04:30:00Z"),  # 00:30 EDT, Nov 1
         event("b", timestamp="2026-11-02T04:30:00Z"),  # 23:30 EST, still Nov 1
         event("c", timestamp="2026-11-02T05:30:00Z"))  # 00:30 EST, Nov 2
    result = usage(store.events, [meter()], window="day", start=datetime(2026, 10, 31, tzinfo=UTC),
                   end=datetime(2026, 11, 3, tzinfo=UTC), tz="America/New_York")
    assert [(iso(r.window_start), iso(r.window_end), r.value) for r in result.rows] == [
        ("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 2),
        ("2026-11-02T05:00:00Z", "2026-11-03T05:00:00Z", 1),
    ]


def test_hour_windows_follow_the_local_clock(write, run_ingest, store):
    load(write, run_ingest, event("a", timestamp="2026-10-05T10:10:00Z"), event("b", timestamp="2026-10-05T10:40:00Z"))
    result = usage(store.events, [meter()], window="hour", start=OCT, end=NOV, tz="Asia/Kolkata")  # UTC+05:30
    assert [(iso(r.window_start), r.value) for r in result.rows] == [("2026-10-05T09:30:00Z", 1), ("2026-10-05T10:30:00Z", 1)]


def test_heartbeats_merge_into_running_time_split_at_window_edges(write, run_ingest, store):
    load(write, run_ingest,
         heartbeat("h1", "2026-10-05T09:59:00Z"), heartbeat("h2", "2026-10-05T09:59:30Z"),
         heartbeat("h3", "2026-10-05T10:00:30Z"),   # crosses the 10:00 edge: 30 s before, 30 s after
         heartbeat("h4", "2026-10-05T10:05:00Z"),   # 270 s gap > 60 s: a new run starts
         heartbeat("h5", "2026-10-05T10:05:20Z"),
         heartbeat("x1", "2026-10-05T10:00:00Z", job="j2"),
         event("nojob", event_name="gpu", timestamp="2026-10-05T10:00:00Z", quantity=None))
    result = usage(store.events, [Meter(**GPU)], window="hour", start=OCT, end=NOV)
    assert [(iso(r.window_start), r.value, r.unmeterable) for r in result.rows] == [
        ("2026-10-05T09:00:00Z", 60, 0),
        ("2026-10-05T10:00:00Z", 50, 1),  # one row per window: the sessionless event is counted in it
    ]


def test_a_stop_event_ends_a_session_and_open_sessions_are_reported(write, run_ingest, store):
    load(write, run_ingest,
         heartbeat("s1", "2026-10-05T10:00:00Z"),
         event("s2", event_name="gpu_stop", timestamp="2026-10-05T10:10:00Z", quantity=None, properties={"job_id": "j1"}),
         heartbeat("s3", "2026-10-05T10:10:30Z"),
         heartbeat("o1", "2026-10-31T23:59:30Z", job="open"))
    result = usage(store.events, [Meter(**GPU, stop_event="gpu_stop")], window="month", start=OCT, end=NOV)
    assert [r.value for r in result.rows] == [600]  # start → stop counts whole; nothing after the stop
    # j1 ended with a stop long before the end of the range; only the last job may still run.
    assert [(s.session, iso(s.last_event_at)) for s in result.open_sessions] == [("open", "2026-10-31T23:59:30Z")]


def _per_month(store, gpu: Meter) -> tuple[dict, dict]:
    """Each month asked alone (as rating asks), and both months asked together."""
    alone = {}
    for start, end in ((SEP, OCT), (OCT, NOV)):
        alone.update(values(usage(store.events, [gpu], window="month", start=start, end=end)))
    return alone, values(usage(store.events, [gpu], window="month", start=SEP, end=NOV))


def test_a_heartbeat_run_across_the_end_of_the_range_is_split_not_lost(write, run_ingest, store):
    load(write, run_ingest,
         heartbeat("h1", "2026-09-30T23:59:00Z"), heartbeat("h2", "2026-09-30T23:59:40Z"),
         heartbeat("h3", "2026-10-01T00:00:20Z"))  # 40 s to h3: 20 s in September, 20 s in October
    alone, together = _per_month(store, Meter(**GPU))
    assert alone == together == {("cus_1", "2026-09-01T00:00:00Z", ()): 60, ("cus_1", "2026-10-01T00:00:00Z", ()): 20}


def test_a_start_to_stop_session_of_any_length_is_split_at_the_edges_of_the_range(write, run_ingest, store):
    load(write, run_ingest,
         heartbeat("v1", "2026-09-30T20:00:00Z"), gpu_stop("v2", "2026-10-01T04:00:00Z"),  # 4 h + 4 h
         heartbeat("w1", "2026-09-15T00:00:00Z", job="w"), gpu_stop("w2", "2026-11-05T00:00:00Z", job="w"))
    gpu = Meter(**GPU, stop_event="gpu_stop")
    alone, together = _per_month(store, gpu)
    assert alone == together
    assert alone == {("cus_1", "2026-09-01T00:00:00Z", ()): 4 * 3600 + 16 * 86400,
                     ("cus_1", "2026-10-01T00:00:00Z", ()): 4 * 3600 + 31 * 86400}














def test_a_sum_beyond_decimal_38_18_is_a_clear_error_not_an_internal_one(write, run_ingest, store):
    load(write, run_ingest, event("a", quantity="99999999999999999999"), event("b", quantity="99999999999999999999"))
    with pytest.raises(UsageOverflowError, match="the sum reaches 10\\^20 or more, beyond DECIMAL\\(38, 18\\), for cus_1 / m") as caught:
        usage(store.events, [meter(aggregation="sum", value="quantity")], window="month", start=OCT, end=NOV)
    assert caught.value.overflowing == (("cus_1", "m"),) and caught.value.exit_code == 65


def test_duration_hours_on_a_dst_fall_back_day_add_up_to_the_day(write, run_ingest, store):
    # Berlin goes back from 03:00 CEST to 02:00 CET at 01:00Z on 2026-10-25: 02:00-03:00 local
    # happens twice, and each is a window of its own, as for count and sum meters.
    beats = [heartbeat(f"b{i}", (datetime(2026, 10, 24, 23, tzinfo=UTC) + timedelta(seconds=30 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"))
             for i in range(361)]  # three hours, every 30 s
    load(write, run_ingest, *beats)
    gpu = Meter(**GPU)
    day_start, day_end = datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)
    hours = usage(store.events, [gpu], window="hour", start=day_start, end=day_end, tz="Europe/Berlin")
    day = usage(store.events, [gpu], window="day", start=day_start, end=day_end, tz="Europe/Berlin")
    assert [r.value for r in day.rows] == [3 * 3600]
    assert sum(r.value for r in hours.rows) == 3 * 3600
    assert [iso(r.window_start) for r in hours.rows] == [
        "2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"]  # 01:00, 02:00 CEST, 02:00 CET
