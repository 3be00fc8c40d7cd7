"""Exports of the two-customer tenant, byte for byte as the files beside this one (reviewed by
hand; METERCTL_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from meterctl.export import export, to_csv, to_html, to_json
from meterctl.invoicing import list_invoices
from meterctl.wallets import GrantAsked, make_grant

GOLDEN = Path(__file__).resolve().parent


def _golden(name: str, content: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("METERCTL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
    assert content == path.read_bytes(), f"{name} differs from the golden file (METERCTL_UPDATE_GOLDEN=1 rewrites it after review)"


def test_golden_exports(tenant, tmp_path):
    # A prepaid credit for cus_1, so that the files show credits too.
    [acme] = [c for c in tenant.ledger.latest_customers() if c.customer_id == "cus_1"]
    make_grant(tenant.ledger, GrantAsked("cus_1", amount="3.5", name="Launch credit", effective="2026-09-01"), acme,
               None, datetime(2026, 11, 20, tzinfo=UTC))
    tenant.invoice(finalize=True, now=datetime(2026, 11, 20, 9, 30, tzinfo=UTC))  # the issue date, fixed
    invoices = list_invoices(tenant.ledger, current_only=True, with_lines=True)
    _golden("invoices.json", to_json(invoices))
    _golden("invoices.csv", to_csv(invoices))
    _golden("INV-2026-000001.html", to_html(invoices[0]))  # with the credits applied
    _golden("INV-2026-000002.html", to_html(invoices[1]))
    export(invoices, "parquet", tmp_path / "invoices.parquet")
    table = pq.read_table(tmp_path / "invoices.parquet")
    schema = {field.name: str(field.type) for field in table.schema}
    assert schema["amount"] == "decimal128(38, 3)" and schema["quantity"] == "decimal128(38, 18)"
    rows = [{k: str(v) for k, v in row.items()} for row in table.to_pylist()]
    _golden("invoices.parquet.json", (json.dumps({"schema": schema, "rows": rows}, indent=1) + "\n").encode())
