"""meters.yaml: strict, and every problem names file, line and key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterctl.config_yaml import ConfigProblems, load_document
from meterctl.meters import load_meters
from tests.conftest import REPO


def write_meters(tmp_path, text: str):
    (tmp_path / "meters.yaml").write_text(text)
    return tmp_path


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigProblems) as caught:
        load_meters(write_meters(tmp_path, text))
    assert caught.value.exit_code == 78
    return [str(p) for p in caught.value.problems]


def test_the_bundled_meters_load():
    names = [m.name for m in load_meters(REPO / "pricebooks")]
    assert names == ["api_calls", "tokens", "active_users", "storage_gb", "gpu_seconds"]


def test_every_problem_is_listed_with_file_line_and_key(tmp_path):
    found = problems(tmp_path, """meters:
  - name: api_calls
    event_name: api_call
    agregation: count
  - name: tokens
    event_name: llm_tokens
    aggregation: sum
  - name: gpu
    event_name: gpu_heartbeat
    aggregation: duration
""")
    path = tmp_path / "meters.yaml"
    assert f"{path}:4 meters[0].agregation: unknown key (check the spelling)" in found
    assert f"{path}:2 meters[0].aggregation: required key is missing" in found
    assert f"{path}:5 meters[1]: aggregation 'sum' needs 'value' (quantity or properties.<key>)" in found
    assert f"{path}:8 meters[2]: aggregation 'duration' needs 'session' (the property that names a session)" in found


def test_a_meter_defined_twice(tmp_path):
    found = problems(tmp_path, "meters:\n  - {name: a, event_name: x, aggregation: count}\n  - {name: a, event_name: y, aggregation: count}\n")
    assert found == [f"{tmp_path / 'meters.yaml'}:3 meters[1].name: meter 'a' is defined twice (first as meters[0])"]


def test_duplicate_yaml_keys_and_syntax_errors(tmp_path):
    assert problems(tmp_path, "meters:\n  - name: a\n    name: b\n") == [f"{tmp_path / 'meters.yaml'}:3 meters[0].name: duplicate key"]
    [message] = problems(tmp_path, "meters: [\n")
    assert message.startswith(f"{tmp_path / 'meters.yaml'}:") and "not valid YAML" in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigProblems, match="no meters.yaml"):
        load_meters(tmp_path)
    with pytest.raises(ConfigProblems, match="configuration directory does not exist"):
        load_meters(tmp_path / "nope")


def test_yaml_numbers_are_exact_decimals_never_floats(tmp_path):
    (tmp_path / "p.yaml").write_text("price: 0.0004\nsmall: 0.1\nn: 7\n")
    data = load_document(tmp_path / "p.yaml").data
    assert data == {"price": Decimal("0.0004"), "small": Decimal("0.1"), "n": 7}
    assert isinstance(data["small"], Decimal)


