"""The store: numbered migrations recorded once, settings checked before use."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import pytest

from meterctl.errors import ConfigError
from meterctl.store.duckdb import sqlfiles
from meterctl.store.duckdb.connect import connect, migrate, migrations


def test_migrations_are_recorded_once_in_order(db):
    first = connect(db)
    versions = [row[0] for row in first.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()]
    first.close()
    assert versions == [m.version for m in migrations()]
    again = connect(db)
    assert migrate(again) == []
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchall()[0][0] == len(versions)
    again.close()


def test_sessions_run_in_utc_whatever_the_machine(db):
    con = connect(db)
    assert con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0] == "UTC"
    con.close()


def test_a_bad_memory_limit_is_a_configuration_error(db, monkeypatch):
    monkeypatch.setenv("METERCTL_MEMORY_LIMIT", "1GB; DROP TABLE events")
    with pytest.raises(ConfigError, match="METERCTL_MEMORY_LIMIT"):
        connect(db)




def test_temp_table_keeps_every_value_exact_and_reads_naive_times_as_utc(db):
    connection = connect(db)
    connection.close()
    con = connect(db, read_only=True)  # simulate and usage read through read-only stores
    con.execute("SET TimeZone = 'America/New_York'")
    exact = Decimal("12345678901234567890.123456789012345678")
    sqlfiles.temp_table(con, "t", {
        "name": ("VARCHAR", ['Zoë "Q"\n', None]),
        "at": ("TIMESTAMPTZ", [datetime(2026, 10, 1), datetime(2026, 10, 1, 2, tzinfo=timezone(timedelta(hours=2)))]),
        "amount": ("DECIMAL(38, 18)", [exact, Decimal("-0.000000000000000001")]),
        "day": ("DATE", [date(2026, 10, 1), None]),
        "naive": ("TIMESTAMPTZ", [datetime(2026, 10, 1), None]),  # DuckDB would read these in the session's zone
    })
    rows = con.execute("SELECT name, epoch_us(\"at\"), CAST(amount AS VARCHAR), day, epoch_us(naive) FROM t "
                       "ORDER BY ALL NULLS LAST").fetchall()
    midnight_utc = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()) * 1_000_000
    assert rows == [('Zoë "Q"\n', midnight_utc, str(exact), date(2026, 10, 1), midnight_utc),
                    (None, midnight_utc, "-0.000000000000000001", None, None)]
    sqlfiles.temp_table(con, "empty", {"name": ("VARCHAR", []), "amount": ("DECIMAL(38, 18)", [])})
    assert con.execute("SELECT count(*) FROM empty").fetchall() == [(0,)]
    with pytest.raises(duckdb.ConversionException):
        sqlfiles.temp_table(con, "too_big", {"amount": ("DECIMAL(38, 18)", [Decimal("1e20")])})
    con.close()
