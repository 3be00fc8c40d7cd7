"""`meterctl usage` from the command line: JSON, CSV and Parquet, billing-period windows, unknown ids."""

from __future__ import annotations

from tests.conftest import ACME_CUSTOMERS as ACME
from tests.conftest import event, jsonl


def test_usage_command_json_csv_and_errors(cli, db, write, tmp_path):
    from tests.conftest import REPO

    cli("ingest", "--db", db, write("e.jsonl", jsonl(event("a", event_name="llm_tokens", quantity=10, properties={"model": "embed"}))))
    args = ["usage", "--db", db, "--pricebooks", REPO / "pricebooks", "--from", "2026-10-01", "--to", "2026-11-01"]
    result = cli(*args, "--json", "--meter", "tokens", "--window", "month")
    assert result.exit_code == 0, result.output
    import json

    [row] = json.loads(result.stdout)
    assert {k: row[k] for k in ("customer_id", "meter", "window_start", "window_end", "dimensions", "value")} == {
        "customer_id": "cus_1", "meter": "tokens", "window_start": "2026-10-01T00:00:00Z",
        "window_end": "2026-11-01T00:00:00Z", "dimensions": {"model": "embed"}, "value": "10",
    }
    out = tmp_path / "usage.csv"
    assert cli(*args, "--meter", "tokens", "--format", "csv", "-o", out).exit_code == 0
    assert out.read_text().splitlines()[1].startswith("cus_1,tokens,2026-10-05T00:00:00Z,2026-10-06T00:00:00Z,embed,10")
    assert cli(*args, "--tz", "Mars/Olympus").exit_code == 2
    assert cli(*args, "--meter", "nope").exit_code == 2
    assert cli(*args, "--window", "week").exit_code == 2

def test_period_windows_follow_billing_periods_and_plan_changes(cli, db, write):
    import json

    from tests.conftest import REPO

    cli("customers", "import", "--db", db, write("c.yaml", ACME))
    cli("ingest", "--db", db, write("e.jsonl", jsonl(
        event("a", timestamp="2026-10-01T03:59:59Z"),   # still September in New York
        event("b", timestamp="2026-10-01T04:00:00Z"),   # first second of the October period
        event("c", timestamp="2026-10-20T03:59:59Z"),   # last second on pro
        event("d", timestamp="2026-10-20T04:00:00Z"),   # first second on scale
        event("e", timestamp="2026-10-31T23:00:00Z"),
    )))
    result = cli("usage", "--db", db, "--pricebooks", REPO / "pricebooks", "--window", "period", "--meter", "api_calls",
                 "--from", "2026-10-01", "--to", "2026-11-01", "--tz", "America/New_York", "--json")
    assert result.exit_code == 0, result.output
    rows = [(r["window_start"], r["window_end"], r["value"]) for r in json.loads(result.stdout)]
    assert rows == [
        ("2026-10-01T04:00:00Z", "2026-10-20T04:00:00Z", "2"),
        ("2026-10-20T04:00:00Z", "2026-11-01T04:00:00Z", "2"),
    ]
    periods = json.loads(cli("periods", "cus_1", "--db", db, "--from", "2026-09-01", "--to", "2026-11-01",
                             "--pricebooks", REPO / "pricebooks", "--json").stdout)
    # The first period starts mid-September: 17 of September's 30 days, as invoices prorate it.
    assert [(p["plan"], p["segment_start"], p["segment_end"], p["days"], p["period_days"]) for p in periods] == [
        ("pro", "2026-09-14", "2026-10-01", 17, 30),
        ("pro", "2026-10-01", "2026-10-20", 19, 31),
        ("scale", "2026-10-20", "2026-11-01", 12, 31),
    ]
    assert cli("periods", "nobody", "--db", db).exit_code == 65

def test_usage_of_an_unknown_customer_id_is_an_error_not_an_empty_table(cli, db, write):
    from tests.conftest import REPO

    cli("ingest", "--db", db, write("e.jsonl", jsonl(event("a"))))
    ok = cli("usage", "--db", db, "--pricebooks", REPO / "pricebooks", "--customer", "cus_1", "--from", "2026-10-01", "--to", "2026-11-01")
    assert ok.exit_code == 0
    typo = cli("usage", "--db", db, "--pricebooks", REPO / "pricebooks", "--customer", "cus_l", "--from", "2026-10-01", "--to", "2026-11-01")
    assert typo.exit_code == 65 and "cus_l" in typo.stderr


def test_the_warnings_about_the_rows_come_before_their_file_is_written(cli, db, config, write, tmp_path):
    # An event the storage meter cannot read: said on stderr even when the file cannot be written.
    cli("ingest", "--db", db, write("e.jsonl", jsonl(event("s", event_name="storage_report", properties={"gb": "lots"}))))
    args = ["usage", "--db", db, "--pricebooks", config, "--from", "2026-10-01", "--to", "2026-11-01", "--meter", "storage_gb"]
    (tmp_path / "taken").mkdir()
    refused = cli(*args, "-o", tmp_path / "taken")
    assert refused.exit_code == 73
    assert refused.stderr.startswith("warning: 1 unmeterable event(s) for cus_1 / storage_gb: properties.gb missing")
    written = cli(*args, "-o", tmp_path / "usage.csv")
    assert written.exit_code == 0 and "warning: 1 unmeterable" in written.stderr
    assert (tmp_path / "usage.csv").read_text().splitlines()[1].startswith("cus_1,storage_gb,2026-10-05T00:00:00Z")
