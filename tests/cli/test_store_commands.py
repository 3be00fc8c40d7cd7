"""The store as the command line meets it: a --db that is not a meterctl database."""

from __future__ import annotations

import duckdb


def test_a_file_that_is_not_a_database_is_refused_not_opened_in_memory(cli, tmp_path):
    # DuckDB would open events.jsonl as an in-memory database over it: the ingest would
    # report its batch and keep nothing.
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id":"e1","customer_id":"c","event_name":"n","timestamp":"2026-10-01T00:00:00Z"}\n')
    before = events.read_bytes()
    for command in (("ingest", events), ("status",)):
        result = cli(*command, "--db", events)
        assert result.exit_code == 66, command  # the store cannot be read
        assert f"{events}: is not a meterctl database" in result.stderr
    assert events.read_bytes() == before
    assert cli("status", "--db", tmp_path).exit_code == 73


def test_a_reading_command_brings_a_store_of_an_older_schema_up_to_date(cli, tmp_path):
    # An empty DuckDB file stands for a store written before the latest migrations.
    db = tmp_path / "old.duckdb"
    duckdb.connect(str(db)).close()
    result = cli("status", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    assert '"events": 0' in result.stdout
