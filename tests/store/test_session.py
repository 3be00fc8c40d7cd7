"""`meterctl.Session`, the library's front door: what a program that is not the command line
does with a month of usage, and how it learns what went wrong."""

from __future__ import annotations

import json
from datetime import date

import pytest

import meterctl
from meterctl.errors import ConfigError, DataError, InputNotFoundError, OutputError, UsageError
from tests.conftest import ACME_CUSTOMERS, event, jsonl


@pytest.fixture
def month(db, config, write):
    """Acme (pro, then scale from Oct 20) with three October calls and some tokens."""
    customers = write("customers.yaml", ACME_CUSTOMERS)
    events = write("events.jsonl", jsonl(
        event("c1"), event("c2", timestamp="2026-10-10T12:00:00Z"), event("c3", timestamp="2026-10-25T12:00:00Z"),
        event("t1", event_name="llm_tokens", quantity=1200, properties={"model": "big"})))
    with meterctl.Session(db=db, config=config) as session:
        session.import_customers(customers)
        session.ingest(events)  # one path is a list of one
        yield session


def test_a_month_from_events_to_invoices(month, tmp_path):
    rated = month.rate(period="2026-10")
    assert rated.run_id == 1 and rated.customers_rated == 1
    run = month.invoice(period="2026-10", finalize=False)
    [invoice] = run.invoices
    # pro for 19 of 31 days (fee 19.00, 2 calls free: 0.00, tokens 1200 × 0.01 = 12.00),
    # scale for 12 days (fee 24.00, 1 call × 0.05).
    assert (invoice.customer_id, invoice.total_minor, invoice.currency) == ("cus_1", 1900 + 1200 + 2400 + 5, "USD")
    assert run.rating.run_id == rated.run_id  # the run `rate` recorded holds these very lines
    shown = month.get_invoice(invoice.invoice_id)
    assert sum(line.amount_minor for line in shown.lines) == shown.total_minor
    assert month.verify(invoice.invoice_id).identical
    explained = month.explain(invoice.invoice_id, line=2, events=True)
    assert [e.event_id for x in explained.lines for e in x.events] == ["c1", "c2"]
    exported = month.export("json", tmp_path / "out.json", period="2026-10")
    assert json.loads((tmp_path / "out.json").read_text())["invoices"][0]["total_minor"] == invoice.total_minor
    assert exported.invoices == 1


def test_usage_takes_dates_text_or_instants_in_the_windows_time_zone(month):
    by_text = month.usage(window="day", start="2026-10-01", end="2026-11-01", tz="America/New_York", meters="api_calls")
    by_date = month.usage(window="day", start=date(2026, 10, 1), end=date(2026, 11, 1), tz="America/New_York",
                          meters=["api_calls"], customers="cus_1")
    assert by_text.rows == by_date.rows
    assert [(r.window_start.isoformat(), r.value) for r in by_text.rows][:1] == [("2026-10-05T04:00:00+00:00", 1)]
    periods = month.usage(window="period", start="2026-10-01", end="2026-11-01", meters="api_calls")
    assert [r.value for r in periods.rows] == [2, 1]  # pro until Oct 20, then scale


def test_errors_name_the_parameter_as_the_library_knows_it(month):
    with pytest.raises(UsageError) as caught:
        month.rate(period="2026-13")
    assert str(caught.value) == "period: invalid month '2026-13': month must be 01 to 12"
    assert caught.value.spelled({"period": "--period"}).startswith("--period: invalid month")
    with pytest.raises(UsageError, match="^window must be one of hour, day, month, period, not 'week'$"):
        month.usage(window="week", start="2026-10-01", end="2026-11-01")
    with pytest.raises(UsageError, match="^start must be before end$"):
        month.usage(start="2026-11-01", end="2026-10-01")


def test_a_bad_configuration_stops_before_the_store_is_made(tmp_path, config):
    (config / "meters.yaml").write_text("meters:\n  - {name: a, event_name: x, aggregation: cnt}\n")
    db = tmp_path / "new.duckdb"
    with meterctl.Session(db=db, config=config) as session, pytest.raises(ConfigError):
        session.rate("2026-10")
    assert not db.exists()


def test_a_read_only_session_does_not_make_a_store(tmp_path):
    with (meterctl.Session(db=tmp_path / "missing.duckdb", read_only=True) as session,
          pytest.raises(InputNotFoundError, match="no database there yet")):
        session.status()
    assert not (tmp_path / "missing.duckdb").exists()


def test_nothing_to_invoice_is_a_refusal_the_caller_can_act_on(month):
    run = month.invoice(period="2026-08")  # Acme's first period ends in September
    assert run.invoices == ()
    refusal = run.refusal()
    assert isinstance(refusal, DataError) and refusal.exit_code == 65
    assert str(refusal) == "no billing period ends in 2026-08: no invoices"


def test_a_read_only_session_refuses_to_write_and_a_closed_one_to_work(db, month, write):
    month.close()
    with pytest.raises(ValueError, match="session is closed"):
        month.status()
    with meterctl.Session(db=db, read_only=True) as reader:
        assert reader.status().events == 4
        with pytest.raises(OutputError, match="opened the store read-only") as refused:
            reader.ingest(write("more.jsonl", jsonl(event("c9"))))
        assert refused.value.exit_code == 73
    with meterctl.Session(db=db) as writer:
        assert writer.ingest(write("more.jsonl", jsonl(event("c9")))).accepted == 1


def test_periods_take_dates_or_their_text(month):
    by_text = month.periods("cus_1", "2026-09-01", "2026-11-01")
    assert by_text == month.periods("cus_1", date(2026, 9, 1), date(2026, 11, 1))
    assert [(s.plan, s.segment_start.isoformat(), s.days, s.period_days) for s in by_text.segments] == [
        ("pro", "2026-09-14", 17, 30), ("pro", "2026-10-01", 19, 31), ("scale", "2026-10-20", 12, 31)]
    with pytest.raises(UsageError, match="^start: 'Sept 1' is not a date such as 2026-10-01$"):
        month.periods("cus_1", "Sept 1", "2026-11-01")


def test_the_events_behind_an_invoice_go_to_a_file(month, tmp_path):
    [invoice] = month.invoice("2026-10").invoices
    written = month.export_events(invoice.invoice_id, str(tmp_path / "events.jsonl"), line=2)
    assert written.events == 2
    assert [json.loads(line)["event_id"] for line in (tmp_path / "events.jsonl").read_text().splitlines()] == ["c1", "c2"]
