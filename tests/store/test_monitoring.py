"""meterctl's own health: counters, ratios and lag from the batch records, unbilled events
and the reconciliation gap of the open and the last closed month, and the per-customer
series (usage so far, burn rate, wallets, entitlements), all checked against outcomes
known by construction; the text is what promtool accepts.

Acme is on pro from Sep 14 (New York, calendar months).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterctl.events import IngestOptions
from meterctl.session import Session
from tests.conftest import event, jsonl
from tests.promtool import promtool
from tests.tenants import ACME_ON_PRO

INGESTED = datetime(2026, 11, 10, 12, tzinfo=UTC)  # the ingests commit then
AT = INGESTED + timedelta(hours=1)  # and the readings are taken an hour later


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def tenant(db, config, write):
    """tenant(*records, at=INGESTED) ingests these lines (dicts or raw text) into Acme's store."""
    s = Session(db, config)
    s.import_customers(write("customers.yaml", ACME_ON_PRO))
    files = iter(range(1000))

    def _ingest(*records, at: datetime = INGESTED) -> Session:
        s.ingest([write(f"events-{next(files)}.jsonl", jsonl(*records))], IngestOptions(now=at))
        return s

    yield _ingest
    s.close()


def sample(text: bytes, name: str, **labels: str) -> float:
    """The value of one sample of the exposition."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.decode().splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    raise AssertionError(f"no sample {wanted} in:\n{text.decode()}")


def test_outcomes_ratios_and_lag_come_from_the_batches(tenant):
    # 6 lines: 3 accepted (made 10, 20 and 40 minutes before the commit), a resend of one,
    # a conflicting resend of another, and a line that is not JSON.
    first = event("a1", timestamp=stamp(INGESTED - timedelta(minutes=10)))
    s = tenant(first, event("a2", timestamp=stamp(INGESTED - timedelta(minutes=20))),
               event("a3", timestamp=stamp(INGESTED - timedelta(minutes=40))),
               first, dict(first, quantity=7), "{not json")
    text = s.metrics(at=AT).text
    assert [sample(text, "meterctl_events_total", outcome=o) for o in ("accepted", "duplicate", "conflict", "dead_letter")] \
        == [3, 1, 1, 1]
    assert sample(text, "meterctl_duplicate_ratio") == pytest.approx(1 / 6)
    assert sample(text, "meterctl_dead_letter_ratio") == pytest.approx(1 / 6)
    assert [sample(text, "meterctl_ingest_lag_seconds", quantile=q) for q in ("0.5", "0.99", "1")] == [1200, 2400, 2400]
    assert sample(text, "meterctl_ingest_lag_seconds_sum") == 4200
    assert sample(text, "meterctl_ingest_lag_seconds_count") == 3
    assert sample(text, "meterctl_last_ingest_timestamp_seconds") == INGESTED.timestamp()
    assert sample(text, "meterctl_last_success_timestamp_seconds", command="ingest") == INGESTED.timestamp()


def test_ratios_and_lag_cover_the_last_24_hours_only(tenant):
    s = tenant(event("old", timestamp=stamp(INGESTED - timedelta(days=3))), "{bad",
               at=INGESTED - timedelta(days=2))
    s = tenant(event("new", timestamp=stamp(INGESTED - timedelta(minutes=5))))
    text = s.metrics(at=AT).text
    assert sample(text, "meterctl_dead_letter_ratio") == 0  # the bad line came two days ago
    assert sample(text, "meterctl_events_total", outcome="dead_letter") == 1  # but counts for ever
    assert sample(text, "meterctl_ingest_lag_seconds", quantile="1") == 300
    quiet = s.metrics(at=AT + timedelta(days=2)).text  # no ingest for two days
    assert sample(quiet, "meterctl_duplicate_ratio") == 0 and sample(quiet, "meterctl_ingest_lag_seconds_count") == 0
    assert sample(quiet, "meterctl_last_ingest_timestamp_seconds") == INGESTED.timestamp()


def test_unbilled_events_and_the_gap_of_the_open_and_the_last_closed_month(tenant, write):
    s = tenant(event("c1", timestamp="2026-10-10T12:00:00Z"), event("g1", customer_id="cus_ghost",
                                                                       timestamp="2026-10-11T12:00:00Z"),
               event("p1", event_name="page_view", timestamp="2026-11-05T12:00:00Z"))
    s.invoice("2026-10", finalize=True, now=INGESTED)
    tenant(event("t-late", event_name="llm_tokens", quantity=2000, timestamp="2026-10-20T12:00:00Z"))
    text = s.metrics(at=AT).text
    assert sample(text, "meterctl_unbilled_events", period="2026-10", reason="unknown_customer") == 1
    assert sample(text, "meterctl_unbilled_events", period="2026-11", reason="no_meter") == 1
    assert sample(text, "meterctl_unbilled_events", period="2026-11", reason="unknown_customer") == 0
    assert sample(text, "meterctl_reconciliation_gap_minor", period="2026-10", currency="USD") == 200  # 2,000 × 0.001
    assert sample(text, "meterctl_reconciliation_gap_minor", period="2026-11", currency="USD") == 0
    assert sample(text, "meterctl_last_success_timestamp_seconds", command="finalize") > 0


def test_usage_so_far_and_the_burn_rate_with_its_floor(tenant, config):
    # 30 calls a day for the 7 days before the last 24 hours, then 200 in the last 24 hours.
    days = [event(f"d{d}-{n}", timestamp=stamp(AT - timedelta(days=d, hours=12) - timedelta(minutes=n)))
            for d in range(1, 8) for n in range(30)]
    spike = [event(f"s{n}", timestamp=stamp(AT - timedelta(hours=2, minutes=n))) for n in range(200)]
    s = tenant(*days, *spike, at=AT)
    text = s.metrics(at=AT).text
    # November so far (New York): the 200 and the days from Nov 3 on.
    since_nov = sum(1 for d in range(1, 8) if AT - timedelta(days=d, hours=12) >= datetime(2026, 11, 1, 4, tzinfo=UTC))
    assert sample(text, "meterctl_usage", customer="cus_1", meter="api_calls") == 200 + 30 * since_nov
    assert sample(text, "meterctl_burn_rate_deviation", customer="cus_1", meter="api_calls") == pytest.approx(200 / 30)
    # Tokens: none before, 5 in the last day: below the floor of 10 a day, so 0.5, not a spike.
    s = tenant(*[event(f"t{n}", event_name="llm_tokens", quantity=1, timestamp=stamp(AT - timedelta(hours=1)))
                 for n in range(5)], at=AT)
    text = s.metrics(at=AT).text
    assert sample(text, "meterctl_burn_rate_deviation", customer="cus_1", meter="tokens") == 0.5
    assert sample(text, "meterctl_burn_rate_deviation", customer="cus_1", meter="storage_gb") == 0
    assert s.metrics(at=AT, burn_floor="1").readings.burn_rate_deviation[1].value == 5


def test_wallets_and_entitlements_and_turning_customer_series_off(tenant, db, config):
    s = tenant(*[event(f"c{n}", timestamp=stamp(AT - timedelta(hours=3))) for n in range(6)], at=AT)
    s.grant("cus_1", amount="25", effective="2026-11-01", now=INGESTED)
    s.close()
    (config / "pro" / "v1.yaml").write_text((config / "pro" / "v1.yaml").read_text()
                                            + "features:\n  - {key: calls, meter: api_calls, limit: 8, reset: month}\n")
    s = Session(db, config)  # reads the configuration afresh
    text = s.metrics(at=AT).text
    assert sample(text, "meterctl_wallet_available", customer="cus_1", currency="USD") == 25
    assert sample(text, "meterctl_entitlement_usage_ratio", customer="cus_1", feature="calls") == 0.75
    bare = s.metrics(at=AT, customer_series=False).text
    s.close()
    assert b'customer="' not in bare and b"meterctl_events_total" in bare


def test_promtool_accepts_the_metrics(tenant, tmp_path):
    s = tenant(event("a1", timestamp=stamp(INGESTED - timedelta(minutes=1))), "{bad")
    s.grant("cus_1", amount="5", effective="2026-11-01", now=INGESTED)
    output = tmp_path / "textfile" / "meterctl.prom"
    output.parent.mkdir()
    written = s.metrics(at=AT, output=output)
    assert output.read_bytes() == written.text
    checked = subprocess.run([promtool(), "check", "metrics"], input=written.text, capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_store_with_no_ingest_yet(db, config, write):
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO))
        text = s.metrics(at=AT).text
    assert sample(text, "meterctl_events_total", outcome="accepted") == 0
    assert b"meterctl_last_ingest_timestamp_seconds" not in text
    assert sample(text, "meterctl_ingest_lag_seconds_count") == 0
    assert Decimal(str(sample(text, "meterctl_duplicate_ratio"))) == 0


def failing(found) -> list[str]:
    return [check.name for check in found.checks if not check.ok]


def test_health_checks_each_threshold(tenant):
    s = tenant(event("a1", timestamp=stamp(INGESTED - timedelta(minutes=1))))
    soon = INGESTED + timedelta(minutes=10)
    assert s.health(at=soon).ok and s.health(at=soon).refusal() is None
    late = INGESTED + timedelta(hours=2)  # nothing ingested for two hours
    assert failing(s.health(at=late)) == ["last_ingest"]
    assert s.health(at=late, max_age_last_ingest="3h").ok
    s = tenant(event("a2", timestamp=stamp(INGESTED - timedelta(minutes=10))), "{bad")
    found = s.health(at=soon)
    assert failing(found) == ["ingest_lag", "dead_letter_ratio"]
    assert found.refusal().exit_code == 65 and "ingest_lag" in str(found.refusal())
    assert s.health(at=soon, max_lag="15m", max_dead_letter_ratio="0.5").ok


def test_health_fails_on_a_reconciliation_gap(tenant):
    s = tenant(event("c1", timestamp="2026-10-10T12:00:00Z"))
    s.invoice("2026-10", finalize=True, now=INGESTED)
    tenant(event("t-late", event_name="llm_tokens", quantity=1000, timestamp="2026-10-20T12:00:00Z"))
    found = s.health(at=INGESTED + timedelta(minutes=5), max_lag="60d")  # October's events came weeks later
    assert failing(found) == ["reconciliation_gap"]
    assert "2026-10 USD: late events would change finalized invoices by 100 minor units" in found.checks[-1].detail


def test_a_store_never_ingested_into_is_unhealthy(db, config, write):
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO))
        assert failing(s.health(at=AT)) == ["last_ingest"]


def test_readings_as_of_a_time_leave_out_later_ingests(tenant):
    s = tenant(event("a1", timestamp=stamp(INGESTED - timedelta(minutes=1))))
    tenant(event("a2", timestamp=stamp(INGESTED + timedelta(days=1))), "{bad", at=INGESTED + timedelta(days=1, hours=1))
    text = s.metrics(at=AT).text
    assert sample(text, "meterctl_events_total", outcome="accepted") == 1
    assert sample(text, "meterctl_events_total", outcome="dead_letter") == 0
    assert sample(text, "meterctl_last_ingest_timestamp_seconds") == INGESTED.timestamp()
