"""Credits on invoices: what a draft would take, debits written with the number, revisions
that give back and take afresh, eligibility at the period end.

Acme is on pro all October (New York). Its month: a 31.00 platform fee (line 1), 12 API calls
(2 free, then 0.10 each and a 1.00 flat fee: 2.00, line 2) and 3,000 tokens at 0.001 (3.00,
line 3): 36.00, of which 5.00 is usage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterctl.pricing import text
from meterctl.session import Session
from tests.conftest import PRO, event, jsonl
from tests.tenants import ACME_ON_PRO

AFTER = datetime(2026, 11, 20, tzinfo=UTC)  # the invoice runs: October is over


@pytest.fixture
def acme_month(db, config, write):
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO))
        s.ingest([write("october.jsonl", jsonl(
            *[event(f"c{i}", timestamp="2026-10-10T12:00:00Z") for i in range(12)],
            event("t1", event_name="llm_tokens", quantity=3000, timestamp="2026-10-11T12:00:00Z")))])
    return Session(db, config)


def invoice_of(s: Session, **options):
    [outcome] = s.invoice("2026-10", now=AFTER, **options).invoices
    return s.get_invoice(outcome.invoice_id)


def entries(s: Session) -> list[tuple[str, str, str, str | None]]:
    return [(line.entry.kind, line.entry.grant_id, text(line.entry.amount), line.entry.invoice_id)
            for line in s.wallet_ledger("cus_1", now=AFTER)]


def test_usage_credits_pay_the_usage_lines_in_order_and_a_draft_debits_nothing(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="4", effective="2026-10-01", now=AFTER)
        draft = invoice_of(s)
        assert (draft.subtotal_minor, draft.credits_minor, draft.total_minor) == (3600, 400, 3200)
        assert [(c.grant_id, c.line_no, c.applied_minor) for c in draft.credits] == [("cus_1-g1", 2, 200),
                                                                                   ("cus_1-g1", 3, 200)]
        assert [kind for kind, *_ in entries(s)] == ["grant"]  # a draft only shows what it would take
        assert s.wallet_balance("cus_1", at=AFTER)[0].available == Decimal(4)


def test_finalizing_writes_the_debits_with_the_number(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="100", effective="2026-10-01", applies_to=["all"], now=AFTER)
        final = invoice_of(s, finalize=True)
        assert (final.number, final.credits_minor, final.total_minor) == ("INV-2026-000001", 3600, 0)
        assert entries(s)[-1] == ("debit", "cus_1-g1", "-36", final.invoice_id)
        assert s.wallet_balance("cus_1", at=AFTER)[0].available == Decimal(64)
        again = s.invoice("2026-10", now=AFTER, finalize=True).invoices[0]
        assert again.action == "unchanged" and len(entries(s)) == 2  # nothing spent twice


def test_a_revision_gives_back_its_predecessors_debits_and_takes_afresh(acme_month, write):
    with acme_month as s:
        s.grant("cus_1", amount="7", effective="2026-10-01", now=AFTER)
        first = invoice_of(s, finalize=True)
        assert first.credits_minor == 500  # all 5.00 of usage
        # Late tokens: 3,000 more (3.00). The revision takes 7.00 of its 8.00 of usage.
        s.ingest([write("late.jsonl", jsonl(event("t2", event_name="llm_tokens", quantity=3000,
                                                   timestamp="2026-10-20T12:00:00Z")))])
        revised = invoice_of(s, finalize=True)
        assert (revised.revision, revised.supersedes, revised.credits_minor) == (2, first.invoice_id, 700)
        assert entries(s) == [
            ("grant", "cus_1-g1", "7", None),
            ("debit", "cus_1-g1", "-5", first.invoice_id),
            ("reversal", "cus_1-g1", "5", first.invoice_id),
            ("debit", "cus_1-g1", "-7", revised.invoice_id),
        ]
        assert s.wallet_balance("cus_1", at=AFTER)[0].available == Decimal(0)


def test_a_grant_effective_at_the_period_end_waits_for_the_next_period(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="10", effective="2026-11-01", now=AFTER)  # midnight in New York: the end
        assert invoice_of(s).credits_minor == 0


def test_a_grant_expiring_at_the_period_end_pays_it_even_when_invoiced_after_its_expiry(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="10", effective="2026-10-01", expires="2026-11-01", name="October promo", now=AFTER)
        final = invoice_of(s, finalize=True)
        assert final.credits_minor == 500
        kinds = [(kind, amount) for kind, _, amount, _ in entries(s)]
        # Expired with 10 left (recorded by the run, before it invoiced), then 5 of it paid
        # October after the fact: given back from the expiry, so the grant still holds nothing.
        assert sorted(kinds) == sorted([("grant", "10"), ("expiry", "-10"), ("debit", "-5"), ("expiry", "5")])
        assert s.wallet_balance("cus_1", at=AFTER)[0].available == Decimal(0)
        assert sum(Decimal(amount) for _, amount in kinds) == 0


def test_a_grant_in_force_all_period_but_voided_before_its_end_pays_nothing(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="10", effective="2026-10-01", now=AFTER)
        s.void_grant("cus_1-g1", at="2026-10-31T00:00:00Z", now=AFTER)
        assert invoice_of(s).credits_minor == 0


def test_verify_derives_the_credits_again(acme_month, db):
    with acme_month as s:
        s.grant("cus_1", amount="4", effective="2026-10-01", now=AFTER)
        final = invoice_of(s, finalize=True)
        checked = s.verify(final.number)
        assert checked.identical, checked.differences
    # The same invoice with its credits moved by hand to the fee, which a usage grant does
    # not pay, no longer verifies.
    import duckdb

    con = duckdb.connect(str(db))
    con.execute("UPDATE invoice_credits SET line_no = 1 WHERE line_no = 3")
    con.close()
    with Session(db) as s:
        checked = s.verify(final.number)
        assert not checked.identical
        assert [(d.line, d.field) for d in checked.differences] == [("invoice", "credits")]


def test_explain_walks_a_credit_back_to_its_grant(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="4", effective="2026-10-01", key="pi_42", reason="card payment", now=AFTER)
        final = invoice_of(s, finalize=True)
        [line] = s.explain(final.invoice_id, line=3).lines
        [(applied, grant)] = line.credits
        assert (applied, grant.grant_id, grant.key, grant.reason) == (200, "cus_1-g1", "pi_42", "card payment")
        assert s.explain(final.invoice_id, line=1).lines[0].credits == ()  # the fee: usage credits leave it


def test_the_ongoing_balance_takes_off_what_the_open_period_so_far_would_take(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="100", effective="2026-09-01", applies_to=["all"], now=AFTER)
        [during] = s.wallet_balance("cus_1", at="2026-10-20T00:00:00Z")
        # October so far is 36.00 (fee and usage), all of which these credits would pay.
        assert (during.available, during.ongoing) == (Decimal(100), Decimal(64))
        assert during.open_period == (datetime(2026, 10, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC))
        [november] = s.wallet_balance("cus_1", at="2026-11-10T00:00:00Z")
        assert november.ongoing == Decimal(100) - Decimal(31)  # no usage yet: the platform fee only


PRO_INCLUDED = PRO + """credits:
  - {name: Included credits, amount: 2, every: period, expires: period_end}
  - {name: Welcome credit, credits: 100, rate: 0.01, every: once, expires: {months: 3}, applies_to: [all], priority: 0}
"""


def test_a_plan_grants_its_credits_once_per_period_and_once_ever(acme_month, config):
    (config / "pro" / "v1.yaml").write_text(PRO_INCLUDED)
    with acme_month as s:
        october = invoice_of(s, finalize=True)
        # The welcome credit (1.00, fees too, priority 0) pays the fee first; the included 2.00 pays usage.
        assert october.credits_by_grant() == [("cus_1-g2", "Welcome credit", 100), ("cus_1-g1", "Included credits", 200)]
        s.invoice("2026-10", now=AFTER, finalize=True)  # again: nothing granted twice
        grants = s.store.ledger.wallet_grants(["cus_1"])
        assert [(g.name, g.source, g.expires_at) for g in grants] == [
            ("Included credits", "plan pro@1", datetime(2026, 11, 1, 4, tzinfo=UTC)),
            ("Welcome credit", "plan pro@1", datetime(2027, 1, 1, 5, tzinfo=UTC)),
        ]
        november = s.invoice("2026-11", now=datetime(2026, 12, 5, tzinfo=UTC)).invoices[0]
        names = [g.name for g in s.store.ledger.wallet_grants(["cus_1"])]
        assert names.count("Included credits") == 2 and names.count("Welcome credit") == 1
        assert s.get_invoice(november.invoice_id).credits_minor == 0  # no usage in November: fees only


def test_plan_credits_are_checked_like_every_pricebook_key(config):
    from meterctl.config_yaml import ConfigProblems
    from meterctl.pricebook import load_configuration

    (config / "pro" / "v1.yaml").write_text(PRO + """credits:
  - {name: A, amount: 2, credits: 5, rate: 1}
  - {name: B, amount: 2, applies_to: [telepathy]}
  - {name: C, amount: 2, expires: {days: 0}}
""")
    with pytest.raises(ConfigProblems) as caught:
        load_configuration(config)
    found = "\\n".join(str(p) for p in caught.value.problems)
    assert "credits[0]: Value error, give amount, or credits with rate, not both" in found or "not both" in found
    assert "credits[1].applies_to[0]: unknown meter 'telepathy'" in found
    assert "credits[2].expires" in found


def test_a_void_back_in_time_keeps_what_the_grant_paid_and_never_goes_below_zero(acme_month):
    with acme_month as s:
        s.grant("cus_1", amount="10", effective="2026-10-01", now=AFTER)
        invoice_of(s, finalize=True)  # October takes 5.00
        s.void_grant("cus_1-g1", at="2026-10-15T00:00:00Z", now=AFTER)
        kinds = [(kind, amount) for kind, _, amount, _ in entries(s)]
        assert ("void", "-5") in kinds  # what was left: the 5.00 October took stays paid
        assert sum(Decimal(amount) for _, amount in kinds) == 0
