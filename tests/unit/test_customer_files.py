"""Customer files from a CRM (YAML, CSV): strict, every problem named at its file, line and key."""

from __future__ import annotations

import pytest

from meterctl.config_yaml import ConfigProblems
from meterctl.customers_file import load_customers
from tests.conftest import ACME_CUSTOMERS as ACME


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
        (ACME.replace("id: cus_1", 'id: "cus_1 "'), ":2 customers[0].id: 'cus_1 ' has spaces around it"),
        (ACME.replace("id: cus_1", 'id: "\\tcus_1"'), ":2 customers[0].id: '\tcus_1' has spaces around it"),
        (ACME.replace("id: cus_1", 'id: "cus\\n1"'), ":2 customers[0].id: must not hold control characters"),
        (ACME.replace("id: cus_1", "id: " + "c" * 257), ":2 customers[0].id: is 257 characters long; ids are at most 256"),
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

def test_a_repeated_id_is_listed_with_the_other_problems(tmp_path):
    path = tmp_path / "customers.yaml"
    path.write_text(ACME + ACME.replace("customers:\n", "").replace("currency: USD", "currency: dollars"))
    with pytest.raises(ConfigProblems) as caught:
        load_customers(path)
    found = [str(p) for p in caught.value.problems]
    assert any("customers[1].id: customer 'cus_1' appears twice" in p for p in found), found
    assert any("customers[1].currency" in p for p in found), found

def test_a_csv_that_is_not_utf8_is_named_with_its_line(write):
    latin1 = "id,name,currency,timezone,plan,start\nc1,Acme,USD,UTC,pro,2026-01-01\nc2,Müller,EUR,UTC,pro,2026-01-01\n"
    with pytest.raises(ConfigProblems) as caught:
        load_customers(write("crm.csv", latin1.encode("latin-1")))
    [problem] = caught.value.problems
    assert (problem.line, problem.message) == (3, "not UTF-8 text (byte 0xfc); save the file as CSV UTF-8")

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


def test_a_csv_id_with_spaces_around_it_is_refused_at_its_line(write):
    # Spreadsheets pad cells: " cus_000001" would import a customer no event names.
    crm = "id,name,currency,timezone,plan,start\ncus_1,One,USD,UTC,pro,2026-01-01\ncus_2 ,Two,USD,UTC,pro,2026-01-01\n"
    with pytest.raises(ConfigProblems) as caught:
        load_customers(write("crm.csv", crm))
    [problem] = caught.value.problems
    assert (problem.line, problem.key) == (3, "customers[1].id")
    assert "'cus_2 ' has spaces around it" in problem.message


MAPLE = ACME + """    email: billing@maple.example
    address: |
      12 Rue Sainte-Catherine
      Montréal QC H2X 1Z4
    tax_id: CA123456789
    payment_terms_days: 15
    taxes: [GST, QST]
    locale: fr_CA
"""


def test_billing_details_are_read_from_yaml_and_csv_alike(write):
    from meterctl.customers_file import customer_records

    [customer] = load_customers(write("c.yaml", MAPLE))
    assert customer.details() == {"email": "billing@maple.example", "address": ["12 Rue Sainte-Catherine",
                                  "Montréal QC H2X 1Z4"], "tax_id": "CA123456789", "payment_terms_days": 15,
                                  "taxes": ["GST", "QST"], "locale": "fr_CA"}
    csv = write("c.csv", "id,name,currency,timezone,billing,plan,start,email,address,tax_id,payment_terms_days,taxes,locale\n"
                         'cus_1,Acme Corp,USD,America/New_York,calendar,pro,2026-09-14,billing@maple.example,'
                         '"12 Rue Sainte-Catherine\nMontréal QC H2X 1Z4",CA123456789,15,GST; QST,fr_CA\n'
                         'cus_1,Acme Corp,USD,America/New_York,calendar,scale,2026-10-20,billing@maple.example,'
                         '"12 Rue Sainte-Catherine\nMontréal QC H2X 1Z4",CA123456789,15,GST; QST,fr_CA\n')
    [from_csv] = load_customers(csv)
    assert customer_records([from_csv]) == customer_records([customer])
    # A customer without any keeps the content hash it had before details existed.
    [plain] = customer_records(load_customers(write("plain.yaml", ACME)))
    assert plain.details == {} and "details" not in load_customers(write("p2.yaml", ACME))[0].canonical()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("email: billing@maple.example", "email: billing at maple"), ":10 customers[0].email: 'billing at maple' is not"),
        (("locale: fr_CA", "locale: French"), ":17 customers[0].locale: 'French' is not a locale"),
        (("payment_terms_days: 15", "payment_terms_days: -1"), ":15 customers[0].payment_terms_days:"),
        (("payment_terms_days: 15", "payment_terms_days: thirty"), ":15 customers[0].payment_terms_days:"),
        (("taxes: [GST, QST]", "taxes: [GST, GST]"), ":16 customers[0].taxes: a tax code is listed twice"),
        (("locale: fr_CA", "tax_exempt: reverse_charge"),
         ":2 customers[0]: a reverse-charge customer is not taxed: give taxes or tax_exempt, not both"),
        (("taxes: [GST, QST]", "tax_exempt: reverse_charge\n    fax: 555"), ":17 customers[0].fax: unknown key"),
    ],
)
def test_bad_billing_details_name_file_line_and_key(write, change, expected):
    path = write("c.yaml", MAPLE.replace(*change))
    with pytest.raises(ConfigProblems) as caught:
        load_customers(path)
    assert any(str(p).startswith(f"{path}{expected}") for p in caught.value.problems), caught.value.problems


def test_reverse_charge_needs_the_customers_tax_id(write):
    path = write("c.yaml", ACME + "    tax_exempt: reverse_charge\n")
    with pytest.raises(ConfigProblems, match="reverse_charge needs the customer's tax_id"):
        load_customers(path)
