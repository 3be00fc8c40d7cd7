"""`meterctl config validate` and `meterctl pricebook schema` from the command line."""

from __future__ import annotations

import json

from tests.conftest import REPO
from tests.tenants import PRO_V2


def test_config_validate_command(cli, tmp_path):
    (tmp_path / "meters.yaml").write_text("meters:\n  - {name: a, event_name: x, aggregation: cnt}\n")
    result = cli("config", "validate", "--pricebooks", tmp_path)
    assert result.exit_code == 78
    assert "meters.yaml:2 meters[0].aggregation" in result.stderr
    assert cli("config", "validate", "--pricebooks", REPO / "pricebooks").exit_code == 0


def test_the_published_json_schema_is_current(cli):
    result = cli("pricebook", "schema")
    assert result.exit_code == 0
    published = json.loads((REPO / "pricebooks" / "pricebook.schema.json").read_text())
    assert json.loads(result.stdout) == published
    assert set(published["required"]) >= {"plan", "version", "effective_from", "currency"}

def test_a_zero_price_by_price_shows(cli, tmp_path):
    directory = tmp_path / "config"
    (directory / "pro").mkdir(parents=True)
    (directory / "meters.yaml").write_text((REPO / "pricebooks" / "meters.yaml").read_text())
    (directory / "pro" / "v2.yaml").write_text(PRO_V2.replace("embed: 0.0000001", "embed: 0"))
    result = cli("pricebook", "show", "pro", "--pricebooks", directory)
    assert result.exit_code == 0 and "embed=0" in result.stdout
