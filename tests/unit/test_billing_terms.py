"""seller.yaml and taxes.yaml: optional, strict, exact, every problem at file, line and key."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from meterctl.billing_terms import load_seller, load_taxes
from meterctl.config_yaml import ConfigProblems

SELLER = """name: Example Cloud Ltd
address: |
  1 Grand Canal Square
  Dublin D02 XY45, Ireland
email: billing@example.com
tax_id: IE1234567X
note: "IBAN IE29 AIBK 9311 5212 3456 78"
"""

TAXES = """taxes:
  - {code: GST, name: GST, rate: 0.05}
  - {code: QST, name: QST (Québec), rate: 0.09975}
"""


def test_both_files_are_optional(tmp_path):
    assert load_seller(tmp_path) is None and load_taxes(tmp_path) == {}


def test_the_seller_and_the_taxes_as_written(tmp_path):
    (tmp_path / "seller.yaml").write_text(SELLER)
    (tmp_path / "taxes.yaml").write_text(TAXES)
    seller = load_seller(tmp_path)
    assert seller is not None and seller.address_lines == ("1 Grand Canal Square", "Dublin D02 XY45, Ireland")
    assert seller.payment_terms_days == 30  # the default
    taxes = load_taxes(tmp_path)
    assert taxes["QST"].rate == Decimal("0.09975") and isinstance(taxes["QST"].rate, Decimal)


@pytest.mark.parametrize(("file", "text", "expected"), [
    ("seller.yaml", SELLER.replace("name: Example Cloud Ltd\n", ""), ":1 name: required key is missing"),
    ("seller.yaml", SELLER + "logo: missing.png\n", ":8 logo: no file 'missing.png'"),
    ("seller.yaml", SELLER + "payment_terms: 30\n", ":8 payment_terms: unknown key (check the spelling)"),
    ("seller.yaml", SELLER.replace("billing@example.com", "billing"), ":5 email: 'billing' is not an email address"),
    ("taxes.yaml", TAXES.replace("rate: 0.05", "rate: 5"), ":2 taxes[0].rate: must be a fraction from 0 to below 1"),
    ("taxes.yaml", TAXES.replace("code: QST", "code: GST"), ":3 taxes[1].code: tax 'GST' is defined twice"),
    ("taxes.yaml", TAXES.replace("code: QST", "code: 'Q S T'"), ":3 taxes[1].code: 'Q S T' is not a tax code"),
])
def test_problems_name_file_line_and_key(tmp_path, file, text, expected):
    (tmp_path / file).write_text(text)
    with pytest.raises(ConfigProblems) as caught:
        load_seller(tmp_path) if file == "seller.yaml" else load_taxes(tmp_path)
    assert caught.value.exit_code == 78
    assert any(str(p).startswith(f"{tmp_path / file}{expected}") for p in caught.value.problems), caught.value.problems


def test_config_validate_checks_them_with_the_rest(cli, config):
    (config / "taxes.yaml").write_text(TAXES)
    (config / "seller.yaml").write_text(SELLER)
    fine = cli("config", "validate", "--pricebooks", config, "--json")
    assert fine.exit_code == 0 and json.loads(fine.stdout)["taxes"] == ["GST", "QST"]
    assert json.loads(fine.stdout)["seller"] is True
    (config / "taxes.yaml").write_text(TAXES.replace("rate: 0.05", "rate: -1"))
    (config / "seller.yaml").write_text(SELLER + "colour: blue\n")
    found = cli("config", "validate", "--pricebooks", config)
    assert found.exit_code == 78
    assert "taxes[0].rate" in found.stderr and "colour: unknown key" in found.stderr


def test_customers_naming_an_unknown_tax_are_noted_at_import(cli, db, config, write):
    from tests.unit.test_customer_files import MAPLE

    (config / "taxes.yaml").write_text(TAXES.replace("QST", "PST"))
    imported = cli("customers", "import", write("c.yaml", MAPLE), "--db", db, "--pricebooks", config)
    assert imported.exit_code == 0
    assert "customer cus_1: tax 'QST' is not in taxes.yaml (codes: GST, PST)" in imported.stderr
