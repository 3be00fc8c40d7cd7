"""Invariants of prepaid credits, for random grants and random usage:

- credits never pay more than a grant holds, nor more than a line is due;
- over months of finalized invoices, no grant ever holds less than nothing, and what was
  debited never exceeds what was granted;
- a store rebuilt from the same events and the same grant commands has the same ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterctl.credits import Grant, PayableLine, apply_credits, burn_order, due_per_line, remaining
from meterctl.session import Session
from tests.conftest import event, examples, jsonl
from tests.tenants import ACME_ON_PRO

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
METERS = ("api_calls", "tokens")

amounts = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(500), places=4)


@st.composite
def grants(draw) -> list[Grant]:
    made = []
    for n in range(draw(st.integers(1, 5))):
        scope = draw(st.sampled_from([("usage",), ("all",), ("tokens",), ("api_calls", "tokens")]))
        made.append(Grant(f"g{n}", "cus_1", "USD", f"grant {n}", draw(amounts), None, None,
                          draw(st.none() | st.integers(0, 3)), OCT_1, None, scope, None, None, "command", n, OCT_1))
    return made


@st.composite
def lines(draw) -> list[PayableLine]:
    made = []
    for n in range(1, draw(st.integers(1, 8)) + 1):
        kind = draw(st.sampled_from(["fee", "usage", "usage", "maximum"]))
        meter = None if kind == "fee" else draw(st.sampled_from(METERS))
        amount = draw(st.integers(0, 50_000))
        made.append(PayableLine(n, kind, meter, "s", -amount if kind == "maximum" else amount))
    return made


@settings(max_examples=examples(400))
@given(grants(), lines(), st.sampled_from([0, 2, 3]))
def test_credits_never_pay_more_than_a_grant_holds_or_a_line_is_due(given_grants, given_lines, minor_units):
    held = {g.grant_id: g.amount for g in given_grants}
    applied = apply_credits(given_lines, burn_order(given_grants), held, minor_units)
    unit = Decimal(1).scaleb(-minor_units)
    for grant in given_grants:
        paid = sum(a.applied_minor for a in applied if a.grant_id == grant.grant_id)
        assert paid * unit <= grant.amount
    due = dict(zip((line.line_no for line in given_lines), due_per_line(given_lines), strict=True))
    for line in given_lines:
        paid = sum(a.applied_minor for a in applied if a.line_no == line.line_no)
        assert 0 <= paid <= due[line.line_no]
        if paid:
            assert any(g.covers(line) for g in given_grants)
    assert all(a.applied_minor > 0 for a in applied)


# ---------------------------------------------------------------- months of invoices in a store

MONTHS = ("2026-10", "2026-11", "2026-12")
month_usage = st.lists(st.integers(0, 40), min_size=3, max_size=3)  # API calls a month (2 free, then 0.10)
wallet_commands = st.lists(st.tuples(
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal(8), places=2),  # amount
    st.sampled_from(["2026-09-20", "2026-10-15", "2026-11-01", "2026-11-20"]),  # effective
    st.sampled_from([None, "2026-11-01", "2026-12-01", "2027-06-01"]),  # expires
    st.none() | st.integers(0, 2),  # priority
), min_size=1, max_size=4)


def _month_of_events(calls: list[int]) -> str:
    records = []
    for month, count in zip(MONTHS, calls, strict=True):
        records += [event(f"{month}-c{i}", timestamp=f"{month}-10T12:00:00Z") for i in range(count)]
    return jsonl(*records)


def _replay(db, config, tmp_path, calls, commands) -> list[tuple]:
    customers = tmp_path / "customers.yaml"
    customers.write_text(ACME_ON_PRO)
    events = tmp_path / "events.jsonl"
    events.write_text(_month_of_events(calls))
    with Session(db, config) as s:
        s.import_customers(customers)
        s.ingest([events])
        for n, (amount, effective, expires, priority) in enumerate(commands):
            if expires is not None and expires <= effective:
                continue
            s.grant("cus_1", amount=amount, effective=effective, expires=expires, priority=priority, key=f"k{n}",
                    now=datetime(2027, 1, 15, tzinfo=UTC))
        for month in MONTHS:
            s.invoice(month, finalize=True, now=datetime(2027, 1, 15, tzinfo=UTC))
        ledger = s.wallet_ledger("cus_1", now=datetime(2027, 1, 15, tzinfo=UTC))
        grants = {g.grant_id: g.amount for g in s.store.ledger.wallet_grants(["cus_1"])}
        entries = s.store.ledger.wallet_entries(["cus_1"])
    for grant_id, amount in grants.items():
        running = Decimal(0)
        for entry in sorted((e for e in entries if e.grant_id == grant_id), key=lambda e: e.entry_id):
            running += entry.amount
            assert running >= 0, f"{grant_id} below zero after entry {entry.entry_id}"
        debited = -sum(e.amount for e in entries if e.grant_id == grant_id and e.kind == "debit")
        reversed_ = sum(e.amount for e in entries if e.grant_id == grant_id and e.kind == "reversal")
        assert debited - reversed_ <= amount
    assert all(value >= 0 for value in remaining(entries).values())
    return [(line.entry.kind, line.entry.grant_id, line.entry.amount, line.entry.at, line.entry.invoice_id)
            for line in ledger]


@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(month_usage, wallet_commands)
def test_months_of_finalized_invoices_keep_every_grant_whole_and_rebuild_the_same(tmp_path_factory, config, calls,
                                                                                   commands):
    first = tmp_path_factory.mktemp("first")
    second = tmp_path_factory.mktemp("second")
    assert _replay(first / "a.duckdb", config, first, calls, commands) == _replay(second / "b.duckdb", config, second,
                                                                                 calls, commands)
