"""Pricebook files: strict validation naming file, line and key; exact prices; versions; freezing."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import yaml

from meterctl.config_yaml import ConfigProblems
from meterctl.meters import Meter, load_meters
from meterctl.pricebook import load_catalog, load_pricebook
from meterctl.pricebook.schema import schema
from tests.conftest import REPO
from tests.tenants import PRO_V2

METERS = (
    Meter(name="api_calls", event_name="api_call", aggregation="count", group_by=("region",)),
    Meter(name="tokens", event_name="llm_tokens", aggregation="sum", value="quantity", group_by=("model",)),
    Meter(name="gpu_seconds", event_name="gpu_heartbeat", aggregation="duration", session="properties.job_id"),
)



def write_book(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def problems(path: Path, meters=METERS) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        load_pricebook(path, meters)
    assert caught.value.exit_code == 78
    return [str(p) for p in caught.value.problems]


def test_the_issue_example_loads_with_exact_prices(tmp_path):
    book = load_pricebook(write_book(tmp_path, "pro/v2.yaml", PRO_V2), METERS).book
    assert book.fees[0].amount == Decimal("49.00")
    tiers = book.charges[0].tiers
    assert tiers[1].unit_price == Decimal("0.0004") and str(tiers[1].unit_price) == "0.0004"
    assert tiers[2].up_to is None
    tokens = book.charges[1]
    assert tokens.price_by["model"]["embed"].unit_price == Decimal("0.0000001")
    assert book.charges[2].free_units == 3600
    assert book.minor_units == 2


def test_every_problem_is_listed_with_file_line_and_key(tmp_path):
    text = PRO_V2.replace("rounding: half_up", "rounding: half_down").replace(
        "      - {up_to: 1000000, unit_price: 0.0004, flat_fee: 5}", "      - {up_to: 1000, unit_price: 0.0004, flat_fee: 5}"
    ).replace("    package_size: 60\n", "    package_size: 60\n    packge_price: 1\n").replace("meter: tokens", "meter: tokenz")
    path = write_book(tmp_path, "pro/v2.yaml", text)
    found = problems(path)
    assert any(p.startswith(f"{path}:5 rounding:") for p in found), found
    assert f"{path}:12 charges[0].tiers: tier 2: tiers must ascend: up_to 1000 is not above the previous tier's up_to 100000" in found
    assert f"{path}:16 charges[1].meter: unknown meter 'tokenz' (meters.yaml defines: api_calls, gpu_seconds, tokens)" in found
    assert f"{path}:24 charges[2].packge_price: unknown key (check the spelling)" in found
    assert len(found) == 4


def test_two_fees_with_one_name_are_a_problem(tmp_path):
    path = write_book(tmp_path, "pro/v2.yaml", PRO_V2.replace(
        "  - {name: Platform fee, amount: 49.00}\n", "  - {name: Platform fee, amount: 49.00}\n  - {name: Platform fee, amount: 5}\n"))
    assert problems(path) == [f"{path}:9 fees[1].name: fee 'Platform fee' is already named by fees[0]"]


def test_cross_checks_against_meters_name_the_key(tmp_path):
    text = PRO_V2.replace("meter: tokens", "meter: tokenz").replace("price_by: {model:", "price_by: {region:")
    path = write_book(tmp_path, "pro/v2.yaml", text)
    assert f"{path}:16 charges[1].meter: unknown meter 'tokenz' (meters.yaml defines: api_calls, gpu_seconds, tokens)" in problems(path)
    text = PRO_V2.replace("price_by: {model:", "price_by: {region:").replace("  - meter: api_calls\n", "  - meter: gpu_seconds\n    model: per_unit\n    unit_price: 1\n  - meter: api_calls\n", 1)
    path = write_book(tmp_path, "pro/v2.yaml", text)
    found = problems(path)
    assert any("charges[2].price_by.region: meter 'tokens' does not group by 'region'" in p for p in found), found
    assert any("charges[3].meter: meter 'gpu_seconds' is already charged by charges[0]" in p for p in found), found


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("unit_price: 0.000002", "unit_price: '0.000002'"), "must be a number"),
        (("amount: 49.00", "amount: -1"), "greater than or equal to 0"),
        (("currency: USD", "currency: usd"), "'usd'"),
        (("currency: USD", "currency: XAU"), "XAU"),
        (("version: 2", "version: 2.5"), "version"),
        (("      - {up_to: null, unit_price: 0.0002}\n", ""), "up_to"),
        (("model: per_unit", "model: per_unit\n    tiers: [{up_to: null, unit_price: 1}]"), "'tiers' does not apply to model 'per_unit'"),
        (("package_size: 60", "package_size: 0"), "package_size must be above zero"),
        (("minimum: 1.00", "minimum: 1.00\n    maximum: 0.50"), "minimum 1.00 is above maximum 0.50"),
        (("unit_price: 0.000002", "unit_price: 0.0000000000000000001"), "at most 18 decimal places"),
        (("billing_cycle: monthly", "billing_cycle: weekly"), "billing_cycle"),
        (("effective_from: 2026-11-01", "effective_from: 2026-11-31"), "3 effective_from: 2026-11-31 is not a valid date (day is out of range"),
        (("effective_from: 2026-11-01", "effective_from: 2026-13-01"), "3 effective_from: 2026-13-01 is not a valid date (month must be in 1..12)"),
        (("price_by: {model: {gpt-large: 0.000006, embed: 0.0000001}}", "price_by: {model: {gpt-large: {tiers: [{up_to: null, unit_price: 1}]}}}"),
         "price_by.model.gpt-large: tiers does not apply to model 'per_unit'"),
    ],
)
def test_invalid_values_are_refused(tmp_path, change, message):
    path = write_book(tmp_path, "pro/v2.yaml", PRO_V2.replace(*change))
    assert change[0] in PRO_V2
    found = problems(path)
    assert any(message in p for p in found), found
    assert all(p.startswith(f"{path}:") for p in found), found


def test_every_problem_of_one_charge_is_listed_not_just_the_first(tmp_path):
    # A bad price does not hide the charge's other problems, each at its own key and line.
    text = (PRO_V2.replace("unit_price: 0.000002", "unit_price: abc")
            .replace("minimum: 1.00", "minimum: 1.00\n    maximum: 0.50\n    round: down")
            .replace("package_size: 60", "package_size: 0\n    tiers: [{up_to: null, unit_price: 1}]"))
    path = write_book(tmp_path, "pro/v2.yaml", text)
    found = problems(path)
    assert f"{path}:18 charges[1].unit_price: must be a number (write it unquoted, e.g. 0.0004)" in found, found
    assert f"{path}:21 charges[1].maximum: minimum 1.00 is above maximum 0.50" in found, found
    assert f"{path}:22 charges[1].round: 'round' only applies to model 'package'" in found, found
    assert f"{path}:25 charges[2].package_size: package_size must be above zero" in found, found
    assert any(p.startswith(f"{path}:26 charges[2].tiers: 'tiers' does not apply to model 'package'") for p in found), found


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("010", "010 is read by YAML as an octal number (8)"),
        ("1:30", "1:30 is read by YAML as a base-60 number (90)"),
        ("1:30.5", "1:30.5 is read by YAML as a base-60 number"),
        ("0x10", "0x10 is read by YAML as a hexadecimal number (16)"),
        ("1e400000000", "1e400000000 is too large"),
        ("123456789012345678901.5", "is too large"),
    ],
)
def test_a_number_yaml_would_read_otherwise_than_written_is_refused(tmp_path, written, message):
    path = write_book(tmp_path, "pro/v2.yaml", PRO_V2.replace("unit_price: 0.000002", f"unit_price: {written}"))
    found = problems(path)
    assert any(p.startswith(f"{path}:18 charges[1].unit_price: ") and message in p for p in found), found


def test_decimal_digits_with_underscores_are_a_number(tmp_path):
    text = PRO_V2.replace("free_units: 3600", "free_units: 3_600")
    assert load_pricebook(write_book(tmp_path, "pro/v2.yaml", text), METERS).book.charges[2].free_units == 3600


def test_a_float_never_reaches_a_price(tmp_path):
    # 0.1 + 0.2 as floats is 0.30000000000000004; from the YAML text it is exact.
    text = PRO_V2.replace("unit_price: 0.000002", "unit_price: 0.1").replace("minimum: 1.00", "minimum: 0.2")
    charge = load_pricebook(write_book(tmp_path, "pro/v2.yaml", text), METERS).book.charges[1]
    assert charge.unit_price + charge.minimum == Decimal("0.3")


def test_file_name_must_match_the_version(tmp_path):
    path = write_book(tmp_path, "pro/v3.yaml", PRO_V2)
    assert problems(path) == [f"{path}:2 version: is 2 but the file is named v3.yaml"]


def test_content_hash_ignores_comments_and_layout_but_not_prices(tmp_path):
    first = load_pricebook(write_book(tmp_path, "a/v2.yaml", PRO_V2), METERS)
    reformatted = "# a comment\n" + PRO_V2.replace("amount: 49.00", "amount: 49.0")
    second = load_pricebook(write_book(tmp_path, "b/v2.yaml", reformatted), METERS)
    repriced = load_pricebook(write_book(tmp_path, "c/v2.yaml", PRO_V2.replace("0.0004", "0.00041")), METERS)
    assert first.content_hash == second.content_hash
    assert repriced.content_hash != first.content_hash


def test_catalog_resolves_the_version_in_force_by_effective_from(tmp_path):
    write_book(tmp_path, "pro/v1.yaml", PRO_V2.replace("version: 2", "version: 1").replace("2026-11-01", "2024-01-01"))
    write_book(tmp_path, "pro/v2.yaml", PRO_V2)
    catalog = load_catalog(tmp_path, METERS)
    assert catalog.in_force("pro", date(2023, 12, 31)) is None
    assert catalog.in_force("pro", date(2026, 10, 31)).ref == "pro@1"
    assert catalog.in_force("pro", date(2026, 11, 1)).ref == "pro@2"
    assert catalog.get("pro").ref == "pro@2"


def test_catalog_problems_across_files(tmp_path):
    write_book(tmp_path, "pro/v1.yaml", PRO_V2.replace("version: 2", "version: 1").replace("billing_cycle: monthly", "billing_cycle: yearly"))
    write_book(tmp_path, "pro/v2.yaml", PRO_V2)
    write_book(tmp_path, "copy/v2.yaml", PRO_V2)
    with pytest.raises(ConfigProblems) as caught:
        load_catalog(tmp_path, METERS)
    found = [str(p) for p in caught.value.problems]
    assert any("pro@2 is also defined in" in p for p in found), found
    assert any("pro@2 takes effect 2026-11-01, not after pro@1 (2026-11-01)" in p for p in found), found
    assert any("billing_cycle: is monthly but pro@1 has yearly" in p for p in found), found


def test_the_bundled_pricebooks_load_and_show_every_charge_model():
    directory = REPO / "pricebooks"
    catalog = load_catalog(directory, load_meters(directory))
    models = {c.model for v in catalog.versions for c in v.book.charges}
    assert models == {"per_unit", "graduated", "volume", "package"}
    assert len(catalog.of_plan("pro")) >= 2
    currencies = {v.book.currency for v in catalog.versions}
    assert {"USD", "EUR", "JPY"} <= currencies




def _as_an_editor_reads(text: str):
    """A pricebook as a YAML editor hands it to a JSON Schema checker: numbers as JSON numbers."""
    return json.loads(json.dumps(yaml.safe_load(text), default=str))


def test_the_json_schema_accepts_every_shipped_pricebook_and_refuses_what_validate_refuses(tmp_path):
    checker = jsonschema.Draft202012Validator(schema())
    checker.check_schema(schema())
    shipped = sorted((REPO / "pricebooks").glob("*/v*.yaml"))
    assert len(shipped) >= 5
    for path in shipped:
        assert [e.message for e in checker.iter_errors(_as_an_editor_reads(path.read_text()))] == [], path
    for change in [("unit_price: 0.000002", "unit_price: -5"), ("unit_price: 0.000002", "unit_price: '0.5'"),
                   ("gpt-large: 0.000006", "gpt-large: -1"), ("round: up", "round: sideways"),
                   ("free_units: 3600", "free_units: 3600\n    colour: red"), ("price_by: {model: {", "price_by: {model: {}, region: {"),
                   ("      - {up_to: 100000, unit_price: 0}\n      - {up_to: 1000000, unit_price: 0.0004, flat_fee: 5}\n"
                    "      - {up_to: null, unit_price: 0.0002}\n", "      []\n")]:
        assert change[0] in PRO_V2
        text = PRO_V2.replace(*change)
        assert not checker.is_valid(_as_an_editor_reads(text)), change
        assert problems(write_book(tmp_path, f"pro{len(change[1])}/v2.yaml", text)), change


def test_unquoted_exponents_are_numbers_and_long_decimals_keep_every_digit(tmp_path):
    text = PRO_V2.replace("unit_price: 0.000002", "unit_price: 2e-6").replace("amount: 49.00", "amount: 12345678901.123456789012345678")
    book = load_pricebook(write_book(tmp_path, "a/v2.yaml", text), METERS)
    assert book.book.charges[1].unit_price == Decimal("0.000002")
    nudged = load_pricebook(write_book(tmp_path, "b/v2.yaml", text.replace("345678}", "345681}")), METERS)
    assert nudged.content_hash != book.content_hash  # 30 significant digits: no 28-digit rounding




def test_a_model_that_is_not_a_string_is_a_problem_not_a_crash(tmp_path):
    path = write_book(tmp_path, "pro/v2.yaml", PRO_V2.replace("model: per_unit", "model: [per_unit]"))
    assert any("charges[1].model" in p for p in problems(path))


def test_free_units_come_off_a_38_digit_quantity_exactly(tmp_path):
    text = PRO_V2.replace("    unit_price: 0.000002\n", "    unit_price: 1\n    free_units: 1\n")
    tokens = load_pricebook(write_book(tmp_path, "pro/v2.yaml", text), METERS).book.charges[1]
    price = tokens.price(Decimal("12345678901234567890.123456789012345678"))  # DECIMAL(38, 18) at full width
    assert price.billable == Decimal("12345678901234567889.123456789012345678")
    assert price.amount == price.billable  # not rounded to 28 significant digits on the way


def test_a_quantity_that_is_not_a_number_is_refused_even_with_free_units(tmp_path):
    text = PRO_V2.replace("    unit_price: 0.000002\n", "    unit_price: 1\n    free_units: 1\n")
    tokens = load_pricebook(write_book(tmp_path, "pro/v2.yaml", text), METERS).book.charges[1]
    for quantity in ("NaN", "sNaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="quantity"):
            tokens.price(Decimal(quantity))


def test_a_dimension_priced_by_its_own_tiers_and_the_rest_by_the_charges(tmp_path):
    text = PRO_V2.replace("    price_by: {model: {gpt-large: 0.000006, embed: 0.0000001}}\n", "").replace(
        "    model: graduated\n", "    model: graduated\n    price_by: {region: {eu: {tiers: [{up_to: null, unit_price: 0.001}]}}}\n")
    calls = load_pricebook(write_book(tmp_path, "pro/v2.yaml", text), METERS).book.charges[0]
    assert calls.price(Decimal(2000), "eu").amount == Decimal("2.000")
    assert calls.price(Decimal(2000), "us").amount == calls.price(Decimal(2000)).amount == Decimal(0)  # within the free tier
