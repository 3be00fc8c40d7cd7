"""The bundled sample month ends up exactly where its generator says it must."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.conftest import SAMPLE, balanced

EXPECTED = json.loads((SAMPLE / "events-2026-10.expected.json").read_text())


def test_every_line_of_the_sample_month_is_accounted_for(run_ingest, con):
    result = run_ingest(SAMPLE / "events-2026-10.jsonl")
    expected = EXPECTED["expected"]
    assert balanced(result)
    assert result.read == expected["lines_read"]
    assert result.blank_lines == expected["blank_lines"]
    assert result.accepted == expected["accepted"]
    assert result.duplicates == expected["identical_duplicates"]
    assert result.conflicts == expected["conflicts"]
    assert result.dead_lettered == expected["dead_lettered"]


def test_dead_letters_and_the_conflict_sit_on_the_documented_lines(run_ingest, con):
    run_ingest(SAMPLE / "events-2026-10.jsonl")
    documented_dead = sorted(
        d["line"] for d in EXPECTED["dirty_lines"]
        if d["kind"] in {"malformed_json", "missing_field", "non_numeric_quantity", "far_future_timestamp", "json_array"}
    )
    assert [r[0] for r in con.execute("SELECT line_no FROM dead_letters ORDER BY 1").fetchall()] == documented_dead
    [conflict] = [d for d in EXPECTED["dirty_lines"] if d["kind"] == "conflicting_resend"]
    assert con.execute("SELECT line_no FROM conflicts").fetchall() == [(conflict["line"],)]


def test_per_event_name_totals_match_the_generator(run_ingest, con):
    run_ingest(SAMPLE / "events-2026-10.jsonl")
    rows = con.execute(
        "SELECT event_name, count(*), count(*) FILTER (quantity IS NULL), coalesce(sum(quantity), 0) "
        "FROM events GROUP BY ALL"
    ).fetchall()
    got = {name: (n, omitted, Decimal(total)) for name, n, omitted, total in rows}
    want = {
        name: (v["events"], v["quantity_omitted"], Decimal(v["quantity_sum"]))
        for name, v in EXPECTED["by_event_name"].items()
    }
    assert got == want


def test_cloudevents_sample(run_ingest):
    result = run_ingest(SAMPLE / "cloudevents-2026-10.jsonl")
    assert (result.read, result.accepted, result.dead_lettered) == (200, 200, 0)
