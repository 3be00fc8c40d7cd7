"""`meterctl check`: features of the plan in force, metered usage per reset window in the
customer's time zone, soft and hard limits, and denial whenever the answer is not a yes.

Acme is in New York, on pro from 2026-09-14 (then scale from 2026-10-20 where said).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.session import Session
from tests.conftest import ACME_CUSTOMERS, PRO, event, examples, jsonl
from tests.tenants import ACME_ON_PRO, SECOND_CUSTOMER

FEATURES = """features:
  - {key: api_access}
  - {key: seats, value: 10}
  - {key: daily_calls, meter: api_calls, limit: 5, reset: day}
  - {key: weekly_calls, meter: api_calls, limit: 8, reset: week, alerts: [0.5, 1.0]}
  - {key: monthly_tokens, meter: tokens, limit: 5000, reset: month, soft: true}
  - {key: period_calls, meter: api_calls, limit: 20, reset: period}
  - {key: all_time_calls, meter: api_calls, limit: 100, reset: never}
  - {key: any_tokens, meter: tokens, limit: null}
"""

# Six calls on Saturday 2026-10-10 in New York: four in the morning, two just before midnight
# (03:00Z on the 11th); one on Monday the 12th; 6,000 tokens on the 5th.
EVENTS = [
    *[event(f"m{i}", timestamp="2026-10-10T12:00:00Z") for i in range(4)],
    *[event(f"n{i}", timestamp="2026-10-11T03:00:00Z") for i in range(2)],
    event("w1", timestamp="2026-10-12T15:00:00Z"),
    event("t1", event_name="llm_tokens", quantity=6000, timestamp="2026-10-05T15:00:00Z"),
]


@pytest.fixture
def entitled(db, config, write):
    (config / "pro" / "v1.yaml").write_text(PRO + FEATURES)

    def setup(customers: str = ACME_ON_PRO) -> Session:
        with Session(db, config) as s:
            s.import_customers(write("customers.yaml", customers))
            s.ingest([write("events.jsonl", jsonl(*EVENTS))])
        return Session(db, config, read_only=True)

    return setup


def test_a_daily_limit_counts_the_local_day_up_to_the_instant_asked(entitled):
    with entitled() as s:
        morning = s.check("cus_1", "daily_calls", at="2026-10-10T20:00:00Z")  # 16:00 in New York: 4 calls so far
        assert (morning.allowed, morning.usage, morning.remaining) == (True, Decimal(4), Decimal(1))
        assert morning.window == (datetime(2026, 10, 10, 4, tzinfo=UTC), datetime(2026, 10, 11, 4, tzinfo=UTC))
        assert s.check("cus_1", "daily_calls", quantity=1, at="2026-10-10T20:00:00Z").allowed
        two_more = s.check("cus_1", "daily_calls", quantity=2, at="2026-10-10T20:00:00Z")
        assert not two_more.allowed and "exceeds what remains (1)" in two_more.reason
        night = s.check("cus_1", "daily_calls", at="2026-10-11T03:30:00Z")  # 23:30: the two late calls count
        assert (night.allowed, night.usage, night.reason) == (False, Decimal(6), "limit reached")
        sunday = s.check("cus_1", "daily_calls", at="2026-10-11T04:00:00Z")  # a new day in New York
        assert (sunday.allowed, sunday.usage) == (True, Decimal(0))


def test_week_month_period_and_never_windows(entitled):
    with entitled() as s:
        week = s.check("cus_1", "weekly_calls", at="2026-10-12T16:00:00Z")  # Monday: a new week, one call
        assert (week.usage, week.window[0]) == (Decimal(1), datetime(2026, 10, 12, 4, tzinfo=UTC))
        saturday = s.check("cus_1", "weekly_calls", at="2026-10-11T03:30:00Z")
        assert (saturday.usage, saturday.window[0]) == (Decimal(6), datetime(2026, 10, 5, 4, tzinfo=UTC))
        period = s.check("cus_1", "period_calls", at="2026-10-31T12:00:00Z")
        assert (period.usage, period.window) == (Decimal(7), (datetime(2026, 10, 1, 4, tzinfo=UTC),
                                                              datetime(2026, 11, 1, 4, tzinfo=UTC)))
        ever = s.check("cus_1", "all_time_calls", at="2026-12-01T00:00:00Z")
        assert (ever.usage, ever.window) == (Decimal(7), (datetime(2026, 9, 14, 4, tzinfo=UTC), None))


def test_a_day_window_follows_daylight_saving_time(entitled):
    with entitled() as s:
        # New York falls back on 2026-11-01: that day lasts 25 hours.
        fall_back = s.check("cus_1", "daily_calls", at="2026-11-01T12:00:00Z")
        start, end = fall_back.window
        assert (start, end - start) == (datetime(2026, 11, 1, 4, tzinfo=UTC), timedelta(hours=25))


def test_a_soft_limit_allows_and_says_it_is_exceeded_and_null_is_unlimited(entitled):
    with entitled() as s:
        soft = s.check("cus_1", "monthly_tokens", at="2026-10-20T00:00:00Z")
        assert (soft.allowed, soft.soft, soft.usage, soft.remaining) == (True, True, Decimal(6000), Decimal(0))
        assert "soft limit exceeded" in soft.reason
        unlimited = s.check("cus_1", "any_tokens", quantity=10**9, at="2026-10-20T00:00:00Z")
        assert (unlimited.allowed, unlimited.limit, unlimited.reason) == (True, None, "unlimited")


def test_boolean_and_static_features(entitled):
    with entitled() as s:
        assert s.check("cus_1", "api_access", at="2026-10-20T00:00:00Z").allowed
        seats = s.check("cus_1", "seats", at="2026-10-20T00:00:00Z")
        assert (seats.allowed, seats.kind, seats.value) == (True, "static", 10)


@pytest.mark.parametrize(("customer", "feature", "at", "reason"), [
    ("cus_1", "sso", "2026-10-20T00:00:00Z", "pro@1 does not include feature 'sso'"),
    ("cus_1", "api_access", "2026-09-01T00:00:00Z", "no subscription in force on 2026-08-31"),
    ("cus_404", "api_access", "2026-10-20T00:00:00Z", "no customer 'cus_404'"),
])
def test_what_cannot_be_answered_is_denied(entitled, customer, feature, at, reason):
    with entitled() as s:
        answer = s.check(customer, feature, at=at)
        assert not answer.allowed and reason in answer.reason


def test_the_plan_in_force_at_the_instant_decides(entitled):
    with entitled(ACME_CUSTOMERS) as s:  # scale from 2026-10-20, which has no features
        assert s.check("cus_1", "api_access", at="2026-10-19T12:00:00Z").allowed
        later = s.check("cus_1", "api_access", at="2026-10-20T12:00:00Z")
        assert not later.allowed and "scale@1 does not include" in later.reason


def test_the_command_exits_0_when_allowed_and_3_when_denied(entitled, cli, db, config):
    entitled().close()
    allowed = cli("check", "cus_1", "daily_calls", "--at", "2026-10-10T20:00:00Z", "--db", db, "--pricebooks", config,
                  "--json")
    assert allowed.exit_code == 0, allowed.stderr
    answer = json.loads(allowed.stdout)
    assert {k: answer[k] for k in ("allowed", "kind", "usage", "limit", "remaining", "soft")} == {
        "allowed": True, "kind": "metered", "usage": "4", "limit": "5", "remaining": "1", "soft": False}
    assert answer["window"] == {"start": "2026-10-10T04:00:00Z", "end": "2026-10-11T04:00:00Z"}
    denied = cli("check", "cus_1", "daily_calls", "--quantity", "2", "--at", "2026-10-10T20:00:00Z", "--db", db,
                 "--pricebooks", config)
    assert denied.exit_code == 3 and "denied" in denied.stdout
    assert cli("check", "cus_1", "sso", "--db", db, "--pricebooks", config).exit_code == 3


# ---------------------------------------------------------------- against a reference

@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 47), max_size=30), st.integers(0, 47), st.integers(0, 8))
def test_check_with_a_quantity_agrees_with_usage_plus_quantity_within_the_limit(tmp_path_factory, config, hours, asked_at,
                                                                               quantity):
    # Calls at whole hours from 2026-10-10 00:00 in New York; the daily limit is 5.
    (config / "pro" / "v1.yaml").write_text(PRO + FEATURES)
    base = datetime(2026, 10, 10, 4, tzinfo=UTC)
    place = tmp_path_factory.mktemp("check")
    (place / "customers.yaml").write_text(ACME_ON_PRO)
    (place / "events.jsonl").write_text(jsonl(*[event(f"e{i}", timestamp=(base + timedelta(hours=h)).isoformat())
                                                 for i, h in enumerate(hours)]))
    at = base + timedelta(hours=asked_at, minutes=30)
    with Session(place / "s.duckdb", config) as s:
        s.import_customers(place / "customers.yaml")
        s.ingest([place / "events.jsonl"])
        answer = s.check("cus_1", "daily_calls", quantity=quantity, at=at)
    day_start = base + timedelta(days=asked_at // 24)
    used = sum(1 for h in hours if day_start <= base + timedelta(hours=h) < at)
    assert answer.usage == used
    assert answer.allowed == (used + quantity <= 5)


def test_features_are_checked_like_every_pricebook_key(config):
    from meterctl.config_yaml import ConfigProblems
    from meterctl.pricebook import load_configuration

    (config / "pro" / "v1.yaml").write_text(PRO + """features:
  - {key: calls, meter: telepathy, limit: 5}
  - {key: seats, value: 10, meter: api_calls}
  - {key: sso, limit: 3}
  - {key: calls, meter: api_calls, reset: fortnight}
  - {key: Bad Key}
""")
    with pytest.raises(ConfigProblems) as caught:
        load_configuration(config)
    found = "\n".join(str(p) for p in caught.value.problems)
    assert "features[0].meter: unknown meter 'telepathy'" in found
    assert "features[1]" in found and "not both" in found
    assert "features[2]" in found and "give its meter too" in found
    assert "features[3].key: feature 'calls' is already listed by features[0]" in found
    assert "features[3].reset" in found
    assert "features[4].key" in found


def test_the_list_gives_every_feature_its_state_and_agrees_with_check(entitled, write):
    with entitled(ACME_ON_PRO + SECOND_CUSTOMER) as s:
        at = datetime(2026, 10, 11, 3, 30, tzinfo=UTC)  # Saturday 23:30 in New York
        found = {(st.answer.customer_id, st.answer.feature): st for st in s.entitlements(at=at)}
        assert found[("cus_1", "daily_calls")].state == "at_limit"
        assert found[("cus_1", "monthly_tokens")].state == "over_soft_limit"
        weekly = found[("cus_1", "weekly_calls")]
        assert (weekly.state, weekly.percent, weekly.alert) == ("warning", Decimal("75.00"), Decimal("0.5"))
        assert found[("cus_2", "daily_calls")].state == "ok"  # Globex (UTC) made no calls
        for (customer, feature), state in found.items():
            assert state.answer == s.check(customer, feature, at=at), (customer, feature)


def test_a_feature_asked_for_that_the_plan_lacks_is_not_entitled(entitled):
    with entitled(ACME_CUSTOMERS) as s:  # on scale from 2026-10-20
        [state] = s.entitlements(features=["api_access"], at=datetime(2026, 10, 25, tzinfo=UTC))
        assert (state.state, state.answer.allowed) == ("not_entitled", False)


def test_the_snapshot_is_one_json_document_written_atomically(entitled, cli, db, config, tmp_path):
    entitled(ACME_ON_PRO + SECOND_CUSTOMER).close()
    out = tmp_path / "entitlements.json"
    result = cli("entitlements", "export", "-o", out, "--at", "2026-10-11T03:30:00Z", "--db", db, "--pricebooks", config)
    assert result.exit_code == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["at"] == "2026-10-11T03:30:00Z"
    rows = {(r["customer_id"], r["feature"]): r for r in document["entitlements"]}
    assert len(rows) == 16  # two customers × eight features
    assert (rows[("cus_1", "daily_calls")]["allowed"], rows[("cus_1", "daily_calls")]["state"]) == (False, "at_limit")
    assert not list(tmp_path.glob(".entitlements.json.*"))


OVERRIDES = ACME_ON_PRO.replace("    billing: calendar\n", """    billing: calendar
    features:
      daily_calls: {limit: 10}
      seats: {value: 25}
      monthly_tokens: {soft: false}
""")


def test_a_customer_may_have_its_own_limits_and_values(entitled, db, config, write):
    with entitled(OVERRIDES) as s:
        at = datetime(2026, 10, 11, 3, 30, tzinfo=UTC)
        daily = s.check("cus_1", "daily_calls", at=at)
        assert (daily.allowed, daily.usage, daily.limit) == (True, Decimal(6), Decimal(10))
        assert s.check("cus_1", "seats", at=at).value == 25
        tokens = s.check("cus_1", "monthly_tokens", at=at)  # made hard for this customer: 6,000 of 5,000
        assert (tokens.allowed, tokens.soft) == (False, False)
        assert not s.check("cus_1", "sso", at=at).allowed  # an override never adds a feature
    # A change of the overrides is a new version of the customer, like any change.
    with Session(db, config) as s:
        result = s.import_customers(write("again.yaml", OVERRIDES.replace("{limit: 10}", "{limit: null}")))
        assert result.changed == 1
        assert s.check("cus_1", "daily_calls", at=datetime(2026, 10, 11, 3, 30, tzinfo=UTC)).reason == "unlimited"
        assert [v.version for v in s.customer("cus_1")] == [2, 1]


def test_csv_overrides_read_like_the_yaml(write):
    from meterctl.config_yaml import ConfigProblems
    from meterctl.customers_file import customer_records, load_customers

    path = write("c.csv", "id,name,currency,timezone,plan,start,features\n"
                          "cus_1,Acme,USD,UTC,pro,2026-01-01,daily_calls.limit=10; seats.value=25; monthly_tokens.soft=false\n")
    [record] = customer_records(load_customers(path))
    assert record.features == {"daily_calls": {"limit": "10"}, "seats": {"value": "25"},
                               "monthly_tokens": {"soft": False}}
    bad = write("bad.csv", "id,name,currency,timezone,plan,start,features\ncus_1,Acme,USD,UTC,pro,2026-01-01,calls=10\n")
    with pytest.raises(ConfigProblems, match="'calls=10' is not FEATURE.limit"):
        load_customers(bad)


def test_customers_without_overrides_keep_their_content_hash(write):
    # The hash of a customer imported before overrides existed must not change, or every
    # customer would get a new version on the next import.
    import hashlib

    from meterctl.customers_file import customer_records, load_customers

    [record] = customer_records(load_customers(write("c.yaml", ACME_ON_PRO)))
    written = ('{"billing":"calendar","currency":"USD","name":"Acme Corp","subscriptions":'
               '[{"end":null,"plan":"pro","start":"2026-09-14"}],"timezone":"America/New_York"}')
    assert (record.features, record.content_sha256) == ({}, hashlib.sha256(written.encode()).hexdigest())


def test_a_period_reset_follows_an_anniversary_billing_period(entitled):
    with entitled(ACME_ON_PRO.replace("billing: calendar", "billing: anniversary")) as s:  # on pro from 2026-09-14
        answer = s.check("cus_1", "period_calls", at="2026-10-12T16:00:00Z")
        assert answer.window == (datetime(2026, 9, 14, 4, tzinfo=UTC), datetime(2026, 10, 14, 4, tzinfo=UTC))
        assert answer.usage == 7  # every call of the 10th and the 12th falls in [Sep 14, Oct 14)
        after = s.check("cus_1", "period_calls", at="2026-10-14T16:00:00Z")
        assert (after.window[0], after.usage) == (datetime(2026, 10, 14, 4, tzinfo=UTC), Decimal(0))
