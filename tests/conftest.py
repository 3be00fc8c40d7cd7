"""Shared fixtures: a fresh store (as a Session, as the ports, and its raw connection for
checks on what is stored), a fixed ingest time, helpers to write event files, a small
configuration."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings
from typer.testing import CliRunner

from meterctl.cli import app
from meterctl.events import IngestOptions, IngestResult
from meterctl.ingest import ingest
from meterctl.io.sources import resolve_sources
from meterctl.session import Session
from meterctl.store import open_store
from meterctl.store.duckdb import DuckDBStore

# Property tests run a quarter of their examples by default, so the suite stays quick on two
# cores; HYPOTHESIS_PROFILE=slow runs every example each test names.
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.register_profile("slow", print_blob=True)
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(full: int) -> int:
    """How many examples a property test runs: `full` in the slow profile, else a quarter."""
    return full if HYPOTHESIS_PROFILE == "slow" else max(5, full // 4)


REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

# One customer on pro, moving to scale on 2026-10-20.
ACME_CUSTOMERS = """customers:
  - id: cus_1
    name: Acme Corp
    currency: USD
    timezone: America/New_York
    billing: calendar
    subscriptions:
      - {plan: pro, start: 2026-09-14}
      - {plan: scale, start: 2026-10-20}
"""


def event(event_id: str, **fields) -> dict:
    """A valid event; keyword arguments override or add fields (None removes one)."""
    record = {
        "event_id": event_id,
        "customer_id": "cus_1",
        "event_name": "api_call",
        "timestamp": "2026-10-05T10:00:00Z",
        "quantity": 1,
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def jsonl(*records: dict | str) -> str:
    """Lines of a JSONL file: dicts are serialised, strings are written as they are."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


def opened(path: Path) -> DuckDBStore:
    """A store opened for writing (created if new), with its connection at hand."""
    store = open_store(path)
    assert isinstance(store, DuckDBStore)
    return store


def ingest_paths(store: DuckDBStore, *paths: Path | str, **options) -> IngestResult:
    """Ingest files into a store with the fixed ingest time."""
    return ingest(store.events, resolve_sources([str(p) for p in paths]), IngestOptions(now=NOW, **options))


@pytest.fixture
def store(db: Path) -> Iterator[DuckDBStore]:
    """The store as the core sees it: `store.events` and `store.ledger`."""
    store = opened(db)
    yield store
    store.close()


@pytest.fixture
def con(store: DuckDBStore) -> duckdb.DuckDBPyConnection:
    """The store's DuckDB connection, to check what is stored."""
    return store.con


@pytest.fixture
def write(tmp_path: Path):
    """write('a.jsonl', text_or_bytes) -> Path"""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        else:
            path.write_bytes(content)
        return path

    return _write


@pytest.fixture
def run_ingest(store):
    """Ingest paths into the fixture store with a fixed ingest time."""

    def _run(*paths: Path | str, **options) -> IngestResult:
        return ingest_paths(store, *paths, **options)

    return _run


@pytest.fixture
def cli():
    runner = CliRunner()

    def _invoke(*args: str, input: str | bytes | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return _invoke


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None):
    return con.execute(query, params or []).fetchall()[0][0]


def balanced(result: IngestResult) -> bool:
    return all(f.balanced for f in result.files)


# A small configuration for rating and invoicing tests.
METERS = """meters:
  - {name: api_calls, event_name: api_call, aggregation: count}
  - {name: tokens, event_name: llm_tokens, aggregation: sum, value: quantity, group_by: [model]}
  - {name: storage_gb, event_name: storage_report, aggregation: max, value: properties.gb}
"""

PRO = """plan: pro
version: 1
effective_from: 2024-01-01
currency: USD
fees:
  - {name: Platform fee, amount: 31.00}
charges:
  - meter: api_calls
    model: graduated
    tiers:
      - {up_to: 2, unit_price: 0}
      - {up_to: null, unit_price: 0.10, flat_fee: 1}
  - meter: tokens
    model: per_unit
    unit_price: 0.001
    price_by: {model: {big: 0.01}}
"""

SCALE = """plan: scale
version: 1
effective_from: 2024-01-01
currency: USD
rounding: half_even
fees:
  - {name: Scale fee, amount: 62.00}
charges:
  - meter: api_calls
    model: per_unit
    unit_price: 0.05
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration directory: three meters, pro@1 and scale@1 (USD, monthly)."""
    directory = tmp_path / "pricebooks"
    (directory / "pro").mkdir(parents=True)
    (directory / "scale").mkdir()
    (directory / "meters.yaml").write_text(METERS)
    (directory / "pro" / "v1.yaml").write_text(PRO)
    (directory / "scale" / "v1.yaml").write_text(SCALE)
    return directory


@pytest.fixture
def session(db: Path, config: Path) -> Iterator[Session]:
    """The library's front door on the fixture store and configuration."""
    with Session(db=db, config=config) as opened:
        yield opened


@pytest.fixture
def acme(store, write, run_ingest, config):
    """Acme (pro, then scale from 2026-10-20, New York, calendar) with a few October events:
    acme(*events, customers=...) imports the customers and ingests the events."""
    from meterctl.customers_file import import_customers

    def _setup(*records, customers: str = ACME_CUSTOMERS):
        import_customers(store.ledger, write("customers.yaml", customers))
        if records:
            run_ingest(write("events.jsonl", jsonl(*records)))

    return _setup


@pytest.fixture
def files(write):
    """Two customers (tests.tenants.TWO_CUSTOMERS) and two files of their October events."""
    from tests.tenants import TWO_CUSTOMERS, events_a, events_b

    return [write("customers.yaml", TWO_CUSTOMERS), write("a.jsonl", events_a()), write("b.jsonl", events_b())]


@pytest.fixture
def tenant(tmp_path, config, files):
    """A store with those two customers and their events, invoiced through the library."""
    from tests.tenants import Tenant

    made = Tenant(tmp_path / "t.duckdb", config, files)
    yield made
    made.store.close()
