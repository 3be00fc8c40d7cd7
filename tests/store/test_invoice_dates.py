"""An invoice's issue date is the day it was finalized, in the customer's time zone; its due
date adds the payment terms then in force: the customer's, else the seller's, else 30 days."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from meterctl.session import Session
from tests.conftest import event, jsonl
from tests.tenants import ACME_ON_PRO

LATE_EVENING_IN_NEW_YORK = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # Nov 19, 22:00 there


def finalized(db, config, write, customers: str = ACME_ON_PRO, seller: str | None = None):
    if seller is not None:
        (config / "seller.yaml").write_text(seller)
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", customers))
        s.ingest([write("e.jsonl", jsonl(event("c1")))])
        s.invoice("2026-10", now=LATE_EVENING_IN_NEW_YORK, finalize=True)
        return s.invoices(period="2026-10")[0]


def test_issued_the_local_day_it_was_finalized_and_due_30_days_later(db, config, write):
    invoice = finalized(db, config, write)
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 11, 19), date(2026, 12, 19))


def test_the_customers_terms_win_over_the_sellers(db, config, write):
    invoice = finalized(db, config, write, ACME_ON_PRO + "    payment_terms_days: 15\n",
                        seller="name: Example Cloud Ltd\npayment_terms_days: 45\n")
    assert invoice.due_date == date(2026, 12, 4)


def test_the_sellers_terms_apply_to_customers_without_their_own(db, config, write):
    invoice = finalized(db, config, write, seller="name: Example Cloud Ltd\npayment_terms_days: 45\n")
    assert invoice.due_date == date(2027, 1, 3)


def test_a_draft_is_not_issued(db, config, write, tmp_path):
    with Session(db, config) as s:
        s.import_customers(write("customers.yaml", ACME_ON_PRO))
        s.ingest([write("e.jsonl", jsonl(event("c1")))])
        s.invoice("2026-10", now=LATE_EVENING_IN_NEW_YORK)
        s.export("json", tmp_path / "i.json", period="2026-10")
        s.export("html", tmp_path / "pages", period="2026-10")
    [document] = json.loads((tmp_path / "i.json").read_text())["invoices"]
    assert (document["status"], document["issue_date"], document["due_date"]) == ("draft", None, None)
    assert "Draft: not yet issued" in next((tmp_path / "pages").glob("*.html")).read_text()
