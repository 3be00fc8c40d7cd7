"""Customers import: strict files, idempotent re-imports, history kept."""

from __future__ import annotations

import json
from datetime import date

import pytest

from meterctl.config_yaml import ConfigProblems
from meterctl.customers_file import load_customers
from meterctl.cycles import Subscription
from meterctl.errors import NotFoundError
from tests.conftest import ACME_CUSTOMERS as ACME
from tests.conftest import SAMPLE, SCALE


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


def test_csv_with_the_same_columns(con, write):
    path = write("c.csv", "id,name,currency,timezone,billing,plan,start,end\n"
                          "cus_1,Acme Corp,USD,America/New_York,calendar,pro,2026-09-14,\n"
                          "cus_1,Acme Corp,USD,America/New_York,calendar,scale,2026-10-20,\n")
    yaml_path = write("c.yaml", ACME)
    assert load_customers(path) == load_customers(yaml_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ACME.replace("currency: USD", "currency: usd"), ":4 customers[0].currency: must be an ISO 4217 code"),
        (ACME.replace("America/New_York", "Mars/Base"), ":5 customers[0].timezone: unknown time zone 'Mars/Base'"),
        (ACME.replace("billing: calendar", "biling: calendar"), ":6 customers[0].biling: unknown key (check the spelling)"),
        (ACME.replace("start: 2026-10-20", "start: 2026-09-14"), ":2 customers[0]: subscriptions overlap"),
        (ACME.replace("{plan: pro, start: 2026-09-14}", "{plan: pro, start: 2026-09-14, end: 2026-09-01}"),
         ":8 customers[0].subscriptions[0]: end must be after start"),
        (ACME.replace("start: 2026-09-14", "start: 2026-02-30"),
         ":8 customers[0].subscriptions[0].start: 2026-02-30 is not a valid date (day is out of range for month)"),
    ],
)
def test_bad_customer_files_name_file_line_and_key(write, text, expected):
    path = write("c.yaml", text)
    with pytest.raises(ConfigProblems) as caught:
        load_customers(path)
    assert any(str(p).startswith(f"{path}{expected}") for p in caught.value.problems), caught.value.problems


def test_bad_csv_columns(write):
    path = write("c.csv", "id,name,curency\n")
    with pytest.raises(ConfigProblems, match="unknown column"):
        load_customers(path)


def test_customers_commands(cli, db, write):
    bad = write("bad.yaml", ACME.replace("currency: USD", "currency: dollars"))
    result = cli("customers", "import", "--db", db, bad)
    assert result.exit_code == 78 and "currency" in result.stderr
    assert cli("customers", "import", "--db", db, write("c.yaml", ACME)).exit_code == 0
    [listed] = json.loads(cli("customers", "list", "--db", db, "--json").stdout)
    assert (listed["customer_id"], listed["version"]) == ("cus_1", 1)
    shown = json.loads(cli("customers", "show", "cus_1", "--db", db, "--json").stdout)
    assert shown["customer"]["name"] == "Acme Corp"
    assert cli("customers", "show", "nobody", "--db", db).exit_code == 65


def test_customers_missing_from_a_later_file_are_named_not_dropped(session, write):
    two = ACME + ACME.replace("cus_1", "cus_2").replace("customers:\n", "")
    session.import_customers(write("two.yaml", two))
    result = session.import_customers(write("one.yaml", ACME))
    assert (result.unchanged, result.absent) == (1, ("cus_2",))
    assert [c.customer_id for c in session.customers()] == ["cus_1", "cus_2"]


def test_a_repeated_id_is_listed_with_the_other_problems(tmp_path):
    path = tmp_path / "customers.yaml"
    path.write_text(ACME + ACME.replace("customers:\n", "").replace("currency: USD", "currency: dollars"))
    with pytest.raises(ConfigProblems) as caught:
        load_customers(path)
    found = [str(p) for p in caught.value.problems]
    assert any("customers[1].id: customer 'cus_1' appears twice" in p for p in found), found
    assert any("customers[1].currency" in p for p in found), found


MISPRICED = """customers:
  - {id: eu_1, name: Euro GmbH, currency: EUR, timezone: Europe/Berlin, subscriptions: [{plan: pro, start: 2026-10-01}]}
  - {id: new_1, name: Newco, currency: USD, timezone: UTC, subscriptions: [{plan: enterprise, start: 2026-10-01}]}
  - {id: early_1, name: Early, currency: USD, timezone: UTC, subscriptions: [{plan: pro, start: 2023-06-01}]}
  - {id: ok_1, name: Fine, currency: USD, timezone: UTC, subscriptions: [{plan: scale, start: 2026-10-01}]}
  - id: swap_1
    name: Upgrader
    currency: USD
    timezone: UTC
    subscriptions: [{plan: pro, start: 2026-01-01, end: 2026-10-10}, {plan: scale, start: 2026-10-10}]
  - id: long_ago_1
    name: Returning
    currency: USD
    timezone: UTC
    subscriptions: [{plan: pro, start: 2024-01-01, end: 2024-06-01}, {plan: scale, start: 2025-07-01}]
"""


def test_import_names_subscriptions_that_rating_would_refuse_but_imports_them(cli, db, write, config):
    (config / "scale" / "v1.yaml").write_text(SCALE.replace("currency: USD", "currency: USD\nbilling_cycle: quarterly"))
    result = cli("customers", "import", "--db", db, "--pricebooks", config, write("c.yaml", MISPRICED), "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["added"] == 6
    notes = document["plan_notes"]
    assert len(notes) == 4
    # monthly pro until Oct 10, quarterly scale from then: rating would refuse the customer
    assert any("swap_1" in n and "'pro' (monthly)" in n and "'scale' (quarterly, from 2026-10-10)" in n for n in notes)
    assert any("eu_1" in n and "prices in USD" in n and "billed in EUR" in n for n in notes)
    assert any("new_1" in n and "'enterprise'" in n and "no pricebook" in n and "pro, scale" in n for n in notes)
    assert any("early_1" in n and "pro@1" in n and "2024-01-01" in n for n in notes)
    assert not any("ok_1" in n for n in notes)
    shown = cli("customers", "import", "--db", db, "--pricebooks", config, write("c.yaml", MISPRICED))
    assert shown.exit_code == 0 and shown.stderr.count("note: customer") == 4


def test_import_says_when_the_plans_could_not_be_checked(cli, db, write, tmp_path):
    result = cli("customers", "import", "--db", db, "--pricebooks", tmp_path / "missing", write("c.yaml", ACME), "--json")
    assert result.exit_code == 0
    [note] = json.loads(result.stdout)["plan_notes"]
    assert note.startswith("plans not checked:") and "does not exist" in note


def test_a_csv_that_is_not_utf8_is_named_with_its_line(write):
    latin1 = "id,name,currency,timezone,plan,start\nc1,Acme,USD,UTC,pro,2026-01-01\nc2,Müller,EUR,UTC,pro,2026-01-01\n"
    with pytest.raises(ConfigProblems) as caught:
        load_customers(write("crm.csv", latin1.encode("latin-1")))
    [problem] = caught.value.problems
    assert (problem.line, problem.message) == (3, "not UTF-8 text (byte 0xfc); save the file as CSV UTF-8")


@pytest.mark.parametrize("command", [
    ["usage", "--window", "period", "--cycle", "weekly"],
    ["periods", "cus_1", "--from", "9999-01-01", "--to", "9999-12-31"],
    ["dlq", "list", "--limit", "99999999999999999999"],
])
def test_option_values_out_of_range_are_usage_errors(cli, db, config, write, command):
    assert cli("customers", "import", write("c.yaml", ACME), "--db", db).exit_code == 0
    result = cli(*command, "--db", db, *(["--pricebooks", config] if command[0] in ("usage", "periods") else []))
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output


def test_csv_rows_of_one_customer_must_agree_on_its_columns(write):
    crm = ("id,name,currency,timezone,billing,plan,start,end\n"
           "c1,One,USD,UTC,calendar,pro,2026-01-01,2026-06-01\n"
           "c1,One Ltd,EUR,UTC,calendar,scale,2026-06-01,\n"
           "c2,Two,USD,UTC,,pro,2026-01-01,,extra\n")
    with pytest.raises(ConfigProblems) as caught:
        load_customers(write("crm.csv", crm))
    found = [(p.line, p.key, p.message) for p in caught.value.problems]
    assert found == [
        (3, "customers[0].name", "'One Ltd' differs from line 2 ('One') for customer c1"),
        (3, "customers[0].currency", "'EUR' differs from line 2 ('USD') for customer c1"),
        (4, "", "1 more field(s) than the header has columns"),
    ]
