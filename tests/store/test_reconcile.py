"""Closing a month: every event accounted for once, invoices that add up, late events found.

Acme is on pro from Sep 14 (New York, calendar months). Its October: a 31.00 platform fee,
12 API calls (2 free, then 0.10 each and a 1.00 flat fee: 2.00) and 3,000 tokens at 0.001
(3.00): 36.00.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterctl.errors import DataError
from meterctl.session import Session
from tests.conftest import METERS, event, jsonl
from tests.tenants import ACME_ON_PRO, acme_subscribed

AFTER = datetime(2026, 11, 20, tzinfo=UTC)  # October is over
REASONS = ("ignored", "no_meter", "unknown_customer", "outside_subscription", "unmeterable")


def october(*extra: dict) -> str:
    return jsonl(*[event(f"c{i}", timestamp="2026-10-10T12:00:00Z") for i in range(12)],
                 event("t1", event_name="llm_tokens", quantity=3000, timestamp="2026-10-11T12:00:00Z"), *extra)


@pytest.fixture
def month(db, config, write):
    """month(*extra events, customers=..., finalize=...) -> an open Session with Acme's
    October ingested (and these events) and invoiced."""
    opened: list[Session] = []

    def _month(*extra: dict, customers: str = ACME_ON_PRO, invoice: bool = True, finalize: bool = True) -> Session:
        s = Session(db, config)
        opened.append(s)
        s.import_customers(write("customers.yaml", customers))
        s.ingest([write("october.jsonl", october(*extra))])
        if invoice:
            s.invoice("2026-10", now=AFTER, finalize=finalize)
        return s

    yield _month
    for s in opened:
        s.close()


def unbilled_counts(result) -> dict[str, int]:
    return {reason: result.unbilled[reason].events for reason in REASONS if result.unbilled[reason].events}


def check(result, name: str):
    return next(c for c in result.checks if c.name == name)


def test_a_clean_month_reconciles(month):
    result = month().reconcile("2026-10", now=AFTER)
    assert result.ok and result.refusal() is None
    assert (result.in_period, result.billed, result.not_invoiced, result.late) == (13, 13, 0, ())
    assert [c.name for c in result.checks] == ["conservation", "invoice_arithmetic", "rated_equals_invoiced",
                                               "no_duplicates", "late_events", "periods_invoiced"]
    assert all(c.ok for c in result.checks)
    assert check(result, "rated_equals_invoiced").expected == 3  # fee, calls, tokens
    meters = {m.meter: (m.in_period.events, m.billed.events, m.billed.quantity) for m in result.meters}
    assert meters == {"api_calls": (12, 12, 12), "tokens": (1, 1, 3000), "storage_gb": (0, 0, 0)}


@pytest.mark.parametrize(("reason", "extra"), [
    ("unknown_customer", event("x1", customer_id="cus_ghost")),
    ("no_meter", event("x1", event_name="page_view")),
    ("unmeterable", event("x1", event_name="llm_tokens", quantity=None)),
    ("unmeterable", event("x1", event_name="storage_report", properties={"gb": "lots"})),
])
def test_each_kind_of_unbilled_event_alone_fails_the_month(month, reason, extra):
    result = month(extra).reconcile("2026-10", now=AFTER)
    assert unbilled_counts(result) == {reason: 1}
    assert result.unbilled[reason].first_event_id == "x1"
    assert (result.in_period, result.billed) == (14, 13)
    assert all(c.ok for c in result.checks)  # the checks hold; the unbilled event alone fails it
    assert not result.ok and isinstance(result.refusal(), DataError) and result.refusal().exit_code == 65


def test_events_outside_the_subscription_are_unbilled_in_the_customers_time_zone(month):
    # Subscribed from Oct 8 in New York: 03:59:59Z on Oct 8 is still Oct 7 there.
    customers = ACME_ON_PRO.replace("2026-09-14", "2026-10-08")
    result = month(event("early", timestamp="2026-10-08T03:59:59Z"), event("on-time", timestamp="2026-10-08T04:00:00Z"),
                   customers=customers).reconcile("2026-10", now=AFTER)
    assert unbilled_counts(result) == {"outside_subscription": 1}
    assert result.unbilled["outside_subscription"].customers == ("cus_1",)
    assert result.unbilled["outside_subscription"].first_event_id == "early"
    assert result.billed == 14


def test_ignored_events_are_reported_but_do_not_fail_the_month(month, config):
    (config / "meters.yaml").write_text(METERS + "ignore_events: [login, healthcheck]\n")
    result = month(event("l1", event_name="login", quantity=None), event("h1", event_name="healthcheck"),
                   event("h2", event_name="healthcheck")).reconcile("2026-10", now=AFTER)
    assert unbilled_counts(result) == {"ignored": 3}
    assert result.unbilled["ignored"].quantity == 2  # the two health checks carry quantity 1
    assert result.ok


def test_every_kind_of_gap_at_once_is_counted_once_per_event(month, config):
    (config / "meters.yaml").write_text(METERS + "ignore_events: [login]\n")
    customers = ACME_ON_PRO.replace("2026-09-14", "2026-10-08")
    result = month(
        event("ign", event_name="login"),
        event("nom", event_name="page_view"),
        event("unk1", customer_id="cus_ghost", quantity=5), event("unk2", customer_id="cus_phantom", quantity=7),
        event("out", timestamp="2026-10-02T12:00:00Z"),
        event("unm", event_name="llm_tokens", quantity=None, timestamp="2026-10-10T12:00:00Z"),
        # a name no meter selects, from an unknown customer: no meter is what it is first
        event("both", event_name="page_view", customer_id="cus_ghost"),
        customers=customers,
    ).reconcile("2026-10", now=AFTER)
    assert unbilled_counts(result) == {"ignored": 1, "no_meter": 2, "unknown_customer": 2,
                                       "outside_subscription": 1, "unmeterable": 1}
    assert result.unbilled["unknown_customer"].customers == ("cus_ghost", "cus_phantom")
    assert result.unbilled["unknown_customer"].quantity == 12
    assert result.in_period == 13 + 7 and result.billed == 13
    assert check(result, "conservation").ok and check(result, "conservation").expected == 20
    tokens = next(m for m in result.meters if m.meter == "tokens")
    assert (tokens.in_period.events, tokens.billed.events, tokens.unbilled["unmeterable"].events) == (2, 1, 1)
    nothing = next(m for m in result.meters if m.meter == "(no meter)")
    assert {r: c.events for r, c in nothing.unbilled.items()} == {"ignored": 1, "no_meter": 2}
    assert not result.ok


def test_the_month_edges_follow_the_customers_time_zone_and_unknown_ids_the_utc_month(month):
    result = month(
        event("sep30-ny", timestamp="2026-10-01T02:00:00Z"),  # Sep 30, 22:00 in New York: September's
        event("oct31-ny", timestamp="2026-11-01T03:00:00Z"),  # Oct 31, 23:00 in New York: October's
        event("ghost-oct", customer_id="cus_ghost", timestamp="2026-10-01T02:00:00Z"),
        event("ghost-nov", customer_id="cus_ghost", timestamp="2026-11-01T03:00:00Z"),
    ).reconcile("2026-10", now=AFTER)
    assert result.billed == 14 and unbilled_counts(result) == {"unknown_customer": 1}
    assert result.unbilled["unknown_customer"].first_event_id == "ghost-oct"


def test_an_anniversary_period_that_crosses_the_month_counts_in_the_month_it_ends(month):
    # Billed from Aug 10 (UTC): [Sep 10, Oct 10) ends in October, [Oct 10, Nov 10) in November.
    customers = acme_subscribed("{plan: pro, start: 2026-08-10}", billing="anniversary").replace(
        "America/New_York", "UTC")
    s = month(event("sep20", timestamp="2026-09-20T12:00:00Z"), event("oct09", timestamp="2026-10-09T23:59:59Z"),
              customers=customers, finalize=False)
    october_result = s.reconcile("2026-10", now=AFTER)
    # The sample month's events from Oct 10 on belong to the period ending in November.
    assert (october_result.in_period, october_result.billed) == (2, 2) and october_result.ok
    s.invoice("2026-11", now=datetime(2026, 12, 20, tzinfo=UTC))
    november = s.reconcile("2026-11", now=AFTER)
    assert (november.in_period, november.billed) == (13, 13) and november.ok


def test_a_late_event_calls_for_a_revision_until_the_revision_is_finalized(month, write):
    s = month()
    first = s.invoices(period="2026-10")[0]
    s.ingest([write("late.jsonl", jsonl(event("late-t", event_name="llm_tokens", quantity=1000,
                                              timestamp="2026-10-30T12:00:00Z")))])
    late = s.reconcile("2026-10", now=AFTER)
    assert not late.ok and late.late_events == 1
    [invoice] = late.late
    assert (invoice.invoice_id, invoice.number, invoice.customer_id) == (first.invoice_id, "INV-2026-000001", "cus_1")
    assert (invoice.events, invoice.delta_minor, invoice.total_minor) == (1, 100, 3700)  # 1,000 tokens at 0.001
    assert check(late, "late_events").actual == 1 and not check(late, "late_events").ok
    # A draft revision is not what the customer was sent: still late.
    s.invoice("2026-10", now=AFTER)
    assert s.reconcile("2026-10", now=AFTER).late_events == 1
    s.invoice("2026-10", now=AFTER, finalize=True)
    after = s.reconcile("2026-10", now=AFTER)
    assert after.ok and after.late == () and after.billed == 14


def test_a_late_event_that_changes_nothing_is_absorbed_not_late(month, write):
    s = month()
    # pro does not price storage: the event is billable (a meter reads it) but no line changes.
    s.ingest([write("late.jsonl", jsonl(event("late-s", event_name="storage_report", properties={"gb": 3})))])
    result = s.reconcile("2026-10", now=AFTER)
    assert result.ok and result.late == () and result.absorbed_events == 1


def test_periods_with_usage_but_no_invoice_fail_the_month(month):
    s = month(invoice=False)
    s.rate("2026-10")
    result = s.reconcile("2026-10", now=AFTER)
    assert (result.billed, result.not_invoiced) == (0, 13)
    invoiced = check(result, "periods_invoiced")
    assert (invoiced.ok, invoiced.expected, invoiced.actual, invoiced.gap) == (False, 1, 0, 1)
    assert "cus_1 [2026-10-01, 2026-11-01): 13 billable event(s), no invoice" in invoiced.problems
    assert check(result, "conservation").ok and not result.ok


def test_duplicates_and_conflicts_of_the_month_are_counted(month, write):
    s = month()
    s.ingest([write("again.jsonl", jsonl(event("c0", timestamp="2026-10-10T12:00:00Z"),
                                         event("c1", timestamp="2026-10-10T12:00:00Z", quantity=9)))])
    result = s.reconcile("2026-10", now=AFTER)
    assert (result.duplicates, result.conflicts) == (1, 1)
    assert check(result, "no_duplicates").ok and result.ok  # set aside by ingest, as they should be


def test_the_checks_can_fail_an_invoice_changed_behind_meterctls_back(month, db):
    s = month()
    invoice_id = s.invoices(period="2026-10")[0].invoice_id
    s.close()
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE invoices SET total_minor = total_minor + 1 WHERE invoice_id = ?", [invoice_id])
    con.execute("UPDATE invoice_lines SET amount_minor = amount_minor + 5 WHERE invoice_id = ? AND line_no = 2",
                [invoice_id])
    con.execute("INSERT INTO events SELECT * FROM events WHERE event_id = 'c3'")
    con.close()
    with Session(db, s.config_dir) as again:
        result = again.reconcile("2026-10", now=AFTER)
    arithmetic = check(result, "invoice_arithmetic")
    assert not arithmetic.ok and arithmetic.gap == 1
    assert any("lines add up to 3605, subtotal is 3600" in p for p in arithmetic.problems)
    assert any("subtotal − credits + tax = 3600, total is 3601" in p for p in arithmetic.problems)
    rated = check(result, "rated_equals_invoiced")
    assert not rated.ok and rated.gap == 1 and rated.problems == ("INV-2026-000001 line 2: differs (rated line 2 of run 1)",)
    duplicates = check(result, "no_duplicates")
    assert not duplicates.ok and duplicates.problems == ("event c3 is stored 2 times",)
    assert result.refusal().exit_code == 65


def test_credits_on_a_finalized_invoice_match_the_wallet_ledgers_debits(month, db):
    s = month(invoice=False)
    s.grant("cus_1", amount="4", effective="2026-10-01", now=AFTER)
    s.invoice("2026-10", now=AFTER, finalize=True)
    assert check(s.reconcile("2026-10", now=AFTER), "invoice_arithmetic").ok
    invoice_id = s.invoices(period="2026-10")[0].invoice_id
    s.close()
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("DELETE FROM wallet_entries WHERE kind = 'debit' AND invoice_id = ?", [invoice_id])
    con.close()
    with Session(db, s.config_dir) as again:
        arithmetic = check(again.reconcile("2026-10", now=AFTER), "invoice_arithmetic")
    assert not arithmetic.ok and "the wallet ledger debits 0, credits are 400" in arithmetic.problems[0]


def test_a_customer_filter_reconciles_that_customer_only(month):
    s = month(event("x1", customer_id="cus_ghost"))
    result = s.reconcile("2026-10", ["cus_1"], now=AFTER)
    assert result.ok and result.in_period == 13 and result.customers == ("cus_1",)


def test_a_draft_built_before_the_last_events_is_behind_not_late(month, write):
    s = month(finalize=False)
    s.ingest([write("more.jsonl", jsonl(event("more", timestamp="2026-10-30T12:00:00Z")))])
    result = s.reconcile("2026-10", now=AFTER)
    assert result.ok and result.late == ()
    assert [(d.customer_id, d.events) for d in result.drafts_behind] == [("cus_1", 1)]
    s.invoice("2026-10", now=AFTER)
    assert s.reconcile("2026-10", now=AFTER).drafts_behind == ()
