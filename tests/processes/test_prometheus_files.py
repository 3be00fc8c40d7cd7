"""The shipped alert rules and dashboard, checked with Prometheus's own promtool: the rules
load, their unit tests on synthetic series pass, and every metric they (and the Grafana
dashboard) name is one `meterctl metrics` writes."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

from meterctl.export.prometheus import exposition
from meterctl.monitoring import CustomerValue, Readings
from meterctl.store.ports import IngestReadings
from meterctl.unbilled import Unbilled
from tests.conftest import REPO
from tests.promtool import promtool

RULES = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "meterctl.json"
AT = datetime(2026, 11, 10, 12, tzinfo=UTC)


def every_family() -> bytes:
    """An exposition with a sample of every family meterctl writes."""
    ingest = IngestReadings(10, 2, 1, 1, 14, 2, 1, 10, (Decimal(1), Decimal(5), Decimal(9)), Decimal(30), AT)
    one = (CustomerValue("cus_1", "tokens", Decimal("1.5")),)
    readings = Readings(AT, ingest, {"ingest": AT, "rate": AT}, ("2026-11", "2026-10"),
                        (Unbilled("2026-11"), Unbilled("2026-10")), (), True, one, one,
                        (CustomerValue("cus_1", "USD", Decimal(20)),), (CustomerValue("cus_1", "calls", Decimal("0.5")),))
    return exposition(readings, ["USD"])


def names_written() -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in every_family().decode().splitlines() if not line.startswith("#")}


def names_used(expressions: list[str]) -> set[str]:
    return {name for expression in expressions for name in re.findall(r"\bmeterctl_[a-z_]+", expression)}


def test_promtool_loads_the_rules_and_their_unit_tests_pass():
    checked = subprocess.run([promtool(), "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True,
                            text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_family_passes_promtool_check_metrics():
    checked = subprocess.run([promtool(), "check", "metrics"], input=every_family(), capture_output=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_and_the_dashboard_name_only_metrics_meterctl_writes():
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    written = names_written()
    assert names_used(expressions) <= written, names_used(expressions) - written
    assert names_used(queries) <= written, names_used(queries) - written
    # Every family is on the dashboard.
    assert {name.removesuffix("_total").removesuffix("_sum").removesuffix("_count") for name in written} - {
        "meterctl_metrics_timestamp_seconds"} <= names_used(queries) | {"meterctl_events"}
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
