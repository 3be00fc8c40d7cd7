"""Invariants of a month's accounting, for random events around its edges:

- every event the month accounts for has exactly one fate, and it is the one a plain
  reading of the rules gives (worked out here, event by event, from its own fields);
- rate's unbilled block and reconcile's agree, and `--strict` refuses exactly when an
  event is unbilled for a reason other than `ignored`.

Acme (New York) is on pro from Oct 8 local time; its October is [Oct 1 04:00Z, Nov 1 04:00Z).
An unknown customer's October is the UTC month.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.session import Session
from tests.conftest import METERS, event, examples, jsonl
from tests.tenants import ACME_ON_PRO

START = datetime(2026, 9, 29, tzinfo=UTC)
ACME_MONTH = (datetime(2026, 10, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC))
SUBSCRIBED = datetime(2026, 10, 8, 4, tzinfo=UTC)  # Oct 8, local midnight
UTC_MONTH = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
NAMES = ("api_call", "llm_tokens", "storage_report", "login", "page_view")


@st.composite
def events(draw) -> list[dict]:
    made = []
    for n in range(draw(st.integers(1, 30))):
        at = START + timedelta(minutes=draw(st.integers(0, 38 * 24 * 60)))
        name = draw(st.sampled_from(NAMES))
        fields: dict = {"event_name": name, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "customer_id": draw(st.sampled_from(["cus_1", "cus_1", "cus_ghost"]))}
        if name == "llm_tokens":
            fields["quantity"] = draw(st.none() | st.integers(1, 100))
        if name == "storage_report":
            fields["properties"] = draw(st.sampled_from([{"gb": 3}, {"gb": "lots"}, {}]))
        made.append(event(f"e{n}", **fields))
    return made


def expected_fate(record: dict) -> str | None:
    """The fate of one event in October by the rules, or None when October does not account for it."""
    at = datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    known = record["customer_id"] == "cus_1"
    start, end = ACME_MONTH if known else UTC_MONTH
    if not start <= at < end:
        return None
    name = record["event_name"]
    if name == "login":
        return "ignored"
    if name == "page_view":
        return "no_meter"
    if not known:
        return "unknown_customer"
    if at < SUBSCRIBED:
        return "outside_subscription"
    if name == "llm_tokens" and record.get("quantity") is None:
        return "unmeterable"
    if name == "storage_report" and not isinstance(record.get("properties", {}).get("gb"), int):
        return "unmeterable"
    return "billable"


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events())
def test_every_event_has_the_one_fate_the_rules_give(tmp_path_factory, config, records):
    (config / "meters.yaml").write_text(METERS + "ignore_events: [login]\n")
    work = tmp_path_factory.mktemp("month")
    (work / "customers.yaml").write_text(ACME_ON_PRO.replace("2026-09-14", "2026-10-08"))
    (work / "events.jsonl").write_text(jsonl(*records))
    fates: dict[str, int] = {}
    for record in records:
        fate = expected_fate(record)
        if fate is not None:
            fates[fate] = fates.get(fate, 0) + 1
    with Session(work / "store.duckdb", config) as s:
        s.import_customers(work / "customers.yaml")
        s.ingest([work / "events.jsonl"])
        rated = s.rate("2026-10")
        result = s.reconcile("2026-10", now=datetime(2026, 11, 20, tzinfo=UTC))
    found = {reason: result.unbilled[reason].events for reason in result.unbilled.document()
             if result.unbilled[reason].events}
    assert found == {k: v for k, v in fates.items() if k != "billable"}
    assert result.in_period == sum(fates.values())
    assert result.billed + result.not_invoiced == fates.get("billable", 0)
    assert rated.unbilled is not None and rated.unbilled.document() == result.unbilled.document()
    lost = sum(v for k, v in fates.items() if k not in ("billable", "ignored"))
    assert (rated.unbilled.refusal() is not None) == (lost > 0)
    assert next(c for c in result.checks if c.name == "conservation").ok
