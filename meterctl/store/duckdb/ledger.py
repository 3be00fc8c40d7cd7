"""The Ledger port over DuckDB: customer versions, pricebook snapshots, rating runs, invoices,
wallets."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import duckdb

from meterctl.customers import CustomerRecord, CustomerVersion
from meterctl.cycles import Subscription
from meterctl.instants import EpochCache
from meterctl.store.duckdb import sqlfiles
from meterctl.store.duckdb.connect import has_table
from meterctl.store.duckdb.invoices import InvoiceRecords
from meterctl.store.duckdb.runs import RunRecords
from meterctl.store.duckdb.transaction import Transaction, transaction
from meterctl.store.duckdb.wallets import WalletRecords

_CUSTOMER_SELECT = """
    SELECT customer_id, version, name, currency, timezone, billing, CAST(subscriptions AS VARCHAR), source,
           epoch_us(imported_at), CAST(features AS VARCHAR), CAST(details AS VARCHAR)
    FROM customer_versions
"""


def _subscriptions_json(subscriptions: Sequence[Subscription]) -> str:
    return json.dumps([{"plan": s.plan, "start": s.start.isoformat(), "end": s.end.isoformat() if s.end else None}
                       for s in subscriptions])


def _customer(row: tuple[Any, ...], instants: EpochCache) -> CustomerVersion:
    customer_id, version, name, currency, timezone, billing, subscriptions, source, imported, features, details = row
    return CustomerVersion(customer_id, version, name, currency, timezone, billing, tuple(
        Subscription(s["plan"], date.fromisoformat(s["start"]), date.fromisoformat(s["end"]) if s.get("end") else None)
        for s in json.loads(subscriptions)), source, instants[imported], json.loads(features) if features else {},
        json.loads(details) if details else {})


class DuckDBLedger(RunRecords, InvoiceRecords, WalletRecords):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with transaction(self.con) as handle:
            yield handle

    # ------------------------------------------------------------ customers

    def import_customers(self, records: Sequence[CustomerRecord], source: str) -> tuple[int, int, tuple[str, ...]]:
        con = self.con
        with transaction(con):
            sqlfiles.temp_table(con, "incoming", {
                "customer_id": ("VARCHAR", [r.customer_id for r in records]),
                "name": ("VARCHAR", [r.name for r in records]),
                "currency": ("VARCHAR", [r.currency for r in records]),
                "timezone": ("VARCHAR", [r.timezone for r in records]),
                "billing": ("VARCHAR", [r.billing for r in records]),
                "subscriptions": ("VARCHAR", [_subscriptions_json(r.subscriptions) for r in records]),
                "content_sha256": ("VARCHAR", [r.content_sha256 for r in records]),
                "features": ("VARCHAR", [json.dumps(r.features, sort_keys=True) if r.features else None
                                         for r in records]),
                "details": ("VARCHAR", [json.dumps(r.details, sort_keys=True) if r.details else None
                                        for r in records]),
            })
            added, changed = con.execute(
                """
                WITH latest AS (
                    SELECT customer_id, max(version) AS version, arg_max(content_sha256, version) AS sha
                    FROM customer_versions GROUP BY customer_id
                )
                SELECT count(*) FILTER (l.customer_id IS NULL), count(*) FILTER (l.sha <> i.content_sha256)
                FROM incoming AS i LEFT JOIN latest AS l USING (customer_id)
                """
            ).fetchall()[0]
            con.execute(
                """
                INSERT INTO customer_versions
                WITH latest AS (
                    SELECT customer_id, max(version) AS version, arg_max(content_sha256, version) AS sha
                    FROM customer_versions GROUP BY customer_id
                )
                SELECT i.customer_id, coalesce(l.version, 0) + 1, i.name, i.currency, i.timezone, i.billing,
                       CAST(i.subscriptions AS JSON), i.content_sha256, ?, now(), CAST(i.features AS JSON),
                       CAST(i.details AS JSON)
                FROM incoming AS i LEFT JOIN latest AS l USING (customer_id)
                WHERE l.customer_id IS NULL OR l.sha <> i.content_sha256
                """,
                [source],
            )
            absent = tuple(row[0] for row in con.execute(
                "SELECT DISTINCT customer_id FROM customer_versions WHERE customer_id NOT IN (SELECT customer_id FROM incoming) "
                "ORDER BY customer_id").fetchall())
        return int(added), int(changed), absent

    def latest_customers(self) -> tuple[CustomerVersion, ...]:
        if not has_table(self.con, "customer_versions"):  # a store opened read-only may predate customers
            return ()
        instants = EpochCache()
        rows = self.con.execute(
            _CUSTOMER_SELECT + " QUALIFY version = max(version) OVER (PARTITION BY customer_id) ORDER BY customer_id").fetchall()
        return tuple(_customer(row, instants) for row in rows)

    def customer_history(self, customer_id: str) -> tuple[CustomerVersion, ...]:
        if not has_table(self.con, "customer_versions"):
            return ()
        instants = EpochCache()
        rows = self.con.execute(_CUSTOMER_SELECT + " WHERE customer_id = ? ORDER BY version DESC", [customer_id]).fetchall()
        return tuple(_customer(row, instants) for row in rows)

    def known_customers(self, customer_ids: Sequence[str]) -> set[str]:
        if not has_table(self.con, "customer_versions"):
            return set()
        return {row[0] for row in self.con.execute(
            "SELECT DISTINCT customer_id FROM customer_versions WHERE list_contains($ids, customer_id)",
            {"ids": list(customer_ids)}).fetchall()}
