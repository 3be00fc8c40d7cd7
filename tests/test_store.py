"""The store: numbered migrations recorded once, settings checked before use."""

from __future__ import annotations

import pytest

from meterctl import store
from meterctl.errors import ConfigError


def test_migrations_are_recorded_once_in_order(db):
    first = store.connect(db)
    versions = [row[0] for row in first.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    first.close()
    assert versions == [m.version for m in store.migrations()]
    again = store.connect(db)
    assert store.migrate(again) == []
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchall()[0][0] == len(versions)
    again.close()


def test_sessions_run_in_utc_whatever_the_machine(db):
    con = store.connect(db)
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"
    con.close()


def test_a_bad_memory_limit_is_a_configuration_error(db, monkeypatch):
    monkeypatch.setenv("METERCTL_MEMORY_LIMIT", "1GB; DROP TABLE events")
    with pytest.raises(ConfigError, match="METERCTL_MEMORY_LIMIT"):
        store.connect(db)


def test_status_on_a_new_path_creates_an_empty_store(cli, tmp_path):
    db = tmp_path / "new.duckdb"
    result = cli("status", "--db", db, "--json")
    assert result.exit_code == 0
    assert db.exists()
