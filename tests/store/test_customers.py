"""Customers import: strict files, idempotent re-imports, history kept."""

from __future__ import annotations

from datetime import date

import pytest

from meterctl.cycles import Subscription
from meterctl.errors import NotFoundError
from tests.conftest import ACME_CUSTOMERS as ACME
from tests.conftest import SAMPLE


def test_reimporting_the_same_file_changes_nothing(session):
    first = session.import_customers(SAMPLE / "customers.yaml")
    second = session.import_customers(SAMPLE / "customers.yaml")
    assert (first.added, second.added, second.changed, second.unchanged) == (50, 0, 0, 50)
    assert [len(session.customer(c.customer_id)) for c in session.customers()] == [1] * 50


def test_a_change_is_a_new_version_and_the_old_one_stays(session, write):
    session.import_customers(write("c.yaml", ACME))
    result = session.import_customers(write("c.yaml", ACME.replace("Acme Corp", "Acme Inc")))
    assert (result.added, result.changed) == (0, 1)
    history = session.customer("cus_1")
    assert [(v.version, v.name) for v in history] == [(2, "Acme Inc"), (1, "Acme Corp")]
    assert session.customers()[0].subscriptions == (
        Subscription("pro", date(2026, 9, 14)),
        Subscription("scale", date(2026, 10, 20)),
    )
    with pytest.raises(NotFoundError, match="customer 'nobody' does not exist"):
        session.customer("nobody")










def test_customers_missing_from_a_later_file_are_named_not_dropped(session, write):
    two = ACME + ACME.replace("cus_1", "cus_2").replace("customers:\n", "")
    session.import_customers(write("two.yaml", two))
    result = session.import_customers(write("one.yaml", ACME))
    assert (result.unchanged, result.absent) == (1, ("cus_2",))
    assert [c.customer_id for c in session.customers()] == ["cus_1", "cus_2"]










