"""Wallets in DuckDB: the grants and the append-only ledger of entries (migration 0008)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from meterctl.credits import Grant, GrantRequest, NewEntry, WalletEntry
from meterctl.errors import DataError
from meterctl.instants import EpochCache
from meterctl.store.duckdb import sqlfiles

_GRANT_SELECT = """
    SELECT g.grant_id, g.customer_id, g.currency, g.name, g.amount, g.credits, g.rate, g.priority,
           epoch_us(g.effective_at), epoch_us(g.expires_at), g.applies_to, g.reason, g.idempotency_key, g.source,
           g.sequence, epoch_us(g.created_at), epoch_us(v.voided_at)
    FROM wallet_grants AS g
    LEFT JOIN (SELECT grant_id, min(effective_at) AS voided_at FROM wallet_entries WHERE kind = 'void' GROUP BY grant_id)
        AS v ON v.grant_id = g.grant_id
"""


def _grant(row: tuple[Any, ...], instants: EpochCache) -> Grant:
    (grant_id, customer_id, currency, name, amount, credits, rate, priority, effective, expires, applies_to, reason,
     key, source, sequence, created, voided) = row
    return Grant(grant_id, customer_id, currency, name, amount, credits, rate, priority, instants[effective],
                 instants[expires] if expires is not None else None, tuple(applies_to), reason, key, source, sequence,
                 instants[created], instants[voided] if voided is not None else None)


class WalletRecords:
    con: duckdb.DuckDBPyConnection

    def wallet_grants(self, customer_ids: Sequence[str] | None = None) -> tuple[Grant, ...]:
        """Grants (of these customers), in the order they were made."""
        instants = EpochCache()
        rows = self.con.execute(
            _GRANT_SELECT + " WHERE $customers IS NULL OR list_contains($customers, g.customer_id) ORDER BY g.sequence",
            {"customers": list(customer_ids) if customer_ids is not None else None}).fetchall()
        return tuple(_grant(row, instants) for row in rows)

    def wallet_grant(self, grant_id: str) -> Grant | None:
        rows = self.con.execute(_GRANT_SELECT + " WHERE g.grant_id = ?", [grant_id]).fetchall()
        return _grant(rows[0], EpochCache()) if rows else None

    def wallet_entries(self, customer_ids: Sequence[str] | None = None) -> tuple[WalletEntry, ...]:
        """Entries (of these customers), by when they take effect, then as written."""
        instants = EpochCache()
        rows = self.con.execute(
            "SELECT entry_id, customer_id, grant_id, kind, amount, epoch_us(effective_at), invoice_id, epoch_us(created_at) "
            "FROM wallet_entries WHERE $customers IS NULL OR list_contains($customers, customer_id) "
            "ORDER BY effective_at, entry_id",
            {"customers": list(customer_ids) if customer_ids is not None else None}).fetchall()
        return tuple(WalletEntry(entry_id, customer, grant, kind, amount, instants[at], invoice, instants[created])
                     for entry_id, customer, grant, kind, amount, at, invoice, created in rows)

    def record_grant(self, request: GrantRequest, request_sha256: str, now: datetime) -> tuple[Grant, bool]:
        """The grant, written with its entry (created: True), or the grant made earlier with the
        same idempotency key and the same request (False). The same key with another request is
        refused (DataError), as Stripe refuses it. Inside the caller's transaction: a file of
        grants lands whole or not at all."""
        con = self.con
        if request.key is not None:
            found = con.execute("SELECT grant_id, request_sha256 FROM wallet_grants WHERE idempotency_key = ?",
                                [request.key]).fetchall()
            if found:
                grant_id, sha = found[0]
                if sha != request_sha256:
                    raise DataError(f"idempotency key '{request.key}' was used for grant {grant_id} with other "
                                    "parameters; nothing was granted (use a new key for a new grant)")
                earlier = self.wallet_grant(grant_id)
                assert earlier is not None
                return earlier, False
        made = con.execute("SELECT count(*) FROM wallet_grants WHERE customer_id = ?",
                           [request.customer_id]).fetchall()[0][0]
        sequence = con.execute("SELECT coalesce(max(sequence), 0) + 1 FROM wallet_grants").fetchall()[0][0]
        grant_id = f"{request.customer_id}-g{made + 1}"
        con.execute(
            "INSERT INTO wallet_grants VALUES ($grant_id, $customer, $currency, $name, $amount, $credits, $rate, "
            "$priority, $effective, $expires, $applies_to, $reason, $key, $sha, $source, $sequence, $now)",
            {"grant_id": grant_id, "customer": request.customer_id, "currency": request.currency,
             "name": request.name, "amount": request.amount, "credits": request.credits, "rate": request.rate,
             "priority": request.priority, "effective": request.effective_at, "expires": request.expires_at,
             "applies_to": list(request.applies_to), "reason": request.reason, "key": request.key,
             "sha": request_sha256, "source": request.source, "sequence": sequence, "now": now})
        self._append(con, [NewEntry(request.customer_id, grant_id, "grant", request.amount, request.effective_at,
                                    None)], now)
        made_grant = self.wallet_grant(grant_id)
        assert made_grant is not None
        return made_grant, True

    def add_wallet_entries(self, entries: Sequence[NewEntry], now: datetime) -> None:
        """Append entries (inside the caller's transaction when there is one)."""
        self._append(self.con, entries, now)

    @staticmethod
    def _append(con: duckdb.DuckDBPyConnection, entries: Sequence[NewEntry], now: datetime) -> None:
        if not entries:
            return
        first = con.execute("SELECT coalesce(max(entry_id), 0) + 1 FROM wallet_entries").fetchall()[0][0]
        sqlfiles.temp_table(con, "new_entries", {
            "entry_id": ("BIGINT", [first + i for i in range(len(entries))]),
            "customer_id": ("VARCHAR", [e.customer_id for e in entries]),
            "grant_id": ("VARCHAR", [e.grant_id for e in entries]),
            "kind": ("VARCHAR", [e.kind for e in entries]),
            "amount": ("DECIMAL(38, 18)", [e.amount for e in entries]),
            "effective_at": ("TIMESTAMPTZ", [e.at for e in entries]),
            "invoice_id": ("VARCHAR", [e.invoice_id for e in entries]),
        })
        con.execute("INSERT INTO wallet_entries SELECT *, $now FROM new_entries", {"now": now})
        con.execute("DROP TABLE temp.new_entries")
