"""The small tenants the tests build on: customers, events and pricebook texts written out
inline, and a store set up through the library."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from meterctl.customers_file import import_customers
from meterctl.invoicing import build_invoices
from meterctl.meters import Meter, load_meters
from meterctl.pricebook import load_catalog
from meterctl.rating import rate
from tests.conftest import ACME_CUSTOMERS, PRO, event, ingest_paths, jsonl, opened

# Acme on pro from Sep 14, without the change to scale.
ACME_ON_PRO = ACME_CUSTOMERS.replace("      - {plan: scale, start: 2026-10-20}\n", "")


def acme_subscribed(subscription: str, billing: str = "calendar") -> str:
    """Acme with this one subscription (a YAML flow mapping) instead of its plan change."""
    return ACME_CUSTOMERS.replace("billing: calendar", f"billing: {billing}").replace(
        "      - {plan: pro, start: 2026-09-14}\n      - {plan: scale, start: 2026-10-20}\n", f"      - {subscription}\n")


def pro_billed(config: Path, cycle: str, **replacements: str) -> None:
    text = PRO.replace("currency: USD", f"currency: USD\nbilling_cycle: {cycle}")
    for old, new in replacements.items():
        text = text.replace(old, new)
    (config / "pro" / "v1.yaml").write_text(text)


SECOND_CUSTOMER = """  - id: cus_2
    name: Globex
    currency: USD
    timezone: UTC
    billing: calendar
    subscriptions:
      - {plan: pro, start: 2026-01-01}
"""


def tokens_graduated(config: Path) -> None:
    (config / "pro" / "v1.yaml").write_text(PRO.replace(
        "    model: per_unit\n    unit_price: 0.001\n    price_by: {model: {big: 0.01}}\n",
        "    model: graduated\n    tiers: [{up_to: 1000, unit_price: 0.001}, {up_to: null, unit_price: 0.0005}]\n"))


TWO_CUSTOMERS = ACME_CUSTOMERS + """  - id: cus_2
    name: "Globex <Ltd> & Co"
    currency: USD
    timezone: UTC
    billing: anniversary
    subscriptions:
      - {plan: pro, start: 2026-08-10}
"""


def events_a() -> str:
    return jsonl(
        *[event(f"a{i}", timestamp=f"2026-10-{2 + i:02d}T12:00:00Z") for i in range(6)],
        event("t1", event_name="llm_tokens", quantity=1500, properties={"model": "big"}),
        event("t2", event_name="llm_tokens", quantity="250.5", properties={"model": "small"}),
        event("g1", customer_id="cus_2", timestamp="2026-09-20T00:00:00Z"),
    )


def events_b() -> str:
    return jsonl(
        event("s1", timestamp="2026-10-22T12:00:00Z"),
        event("s2", timestamp="2026-10-23T12:00:00Z"),
        event("t3", event_name="llm_tokens", quantity=99, properties={"model": "big"}, timestamp="2026-10-24T00:00:00Z"),
        event("g2", customer_id="cus_2", timestamp="2026-10-01T00:00:00Z", quantity=3),
    )


class Tenant:
    """A store with two customers, rated and invoiced through the library."""

    def __init__(self, path: Path, config: Path, files: list[Path]):
        self.store = opened(path)
        self.con = self.store.con  # to look at what is stored, and to damage it on purpose
        self.events, self.ledger = self.store.events, self.store.ledger
        self.config = config
        import_customers(self.ledger, files[0])
        for file in files[1:]:
            self.ingest(file)

    def ingest(self, file: Path) -> None:
        ingest_paths(self.store, file)

    def invoice(self, period: str = "2026-10", **options):
        meters = load_meters(self.config)
        return build_invoices(self.events, self.ledger, load_catalog(self.config, meters), meters, period, **options)

    def rate(self, period: str = "2026-10"):
        meters = load_meters(self.config)
        return rate(self.events, self.ledger, load_catalog(self.config, meters), meters, period)


PRO_V2 = """plan: pro
version: 2
effective_from: 2026-11-01
currency: USD
rounding: half_up
billing_cycle: monthly
fees:
  - {name: Platform fee, amount: 49.00}
charges:
  - meter: api_calls
    model: graduated
    tiers:
      - {up_to: 100000, unit_price: 0}
      - {up_to: 1000000, unit_price: 0.0004, flat_fee: 5}
      - {up_to: null, unit_price: 0.0002}
  - meter: tokens
    model: per_unit
    unit_price: 0.000002
    price_by: {model: {gpt-large: 0.000006, embed: 0.0000001}}
    minimum: 1.00
  - meter: gpu_seconds
    model: package
    package_size: 60
    package_price: 0.50
    round: up
    free_units: 3600
"""


# Usage: a month of windows, meters and heartbeats.
OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)


def meter(**fields) -> Meter:
    return Meter(**{"name": "m", "event_name": "api_call", "aggregation": "count", **fields})


def heartbeat(event_id: str, at: str, job: str = "j1", **fields):
    return event(event_id, event_name="gpu", timestamp=at, quantity=None, properties={"job_id": job}, **fields)


GPU = {"name": "gpu_seconds", "event_name": "gpu", "aggregation": "duration", "session": "properties.job_id",
       "heartbeat_gap_seconds": 60}


SEP = datetime(2026, 9, 1, tzinfo=UTC)


def gpu_stop(event_id, at, job="j1"):
    return event(event_id, event_name="gpu_stop", timestamp=at, quantity=None, properties={"job_id": job})
