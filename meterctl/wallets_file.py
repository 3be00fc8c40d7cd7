"""Grants in bulk from a file (YAML or CSV) exported by a CRM or a payment system.

Every grant carries its idempotency key, so importing a file again grants nothing more.
The file is checked whole first (every problem at its file, line and key, exit 78), then
its grants are written in one transaction: all of them or none.

    grants:
      - {customer: cus_1, key: pi_3PqX, amount: 50, name: Top-up}
      - {customer: cus_2, key: promo-oct, credits: 1000, rate: 0.01, expires: 2026-12-31, priority: 1}

CSV has these columns (customer and key required, applies_to separated by ';'):
customer,key,amount,credits,rate,currency,name,priority,effective,expires,applies_to,reason
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from meterctl.config_yaml import ConfigProblems, Problem, load_document
from meterctl.customers import CustomerVersion
from meterctl.errors import DataError, InputNotFoundError, MeterctlError
from meterctl.store.ports import Ledger
from meterctl.wallets import GrantAsked, check_grant, record_expiries

COLUMNS = ("customer", "key", "amount", "credits", "rate", "currency", "name", "priority", "effective", "expires",
           "applies_to", "reason")


@dataclass(frozen=True)
class GrantImport:
    source: str
    grants: int
    created: int  # the others were granted before with the same key


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _asked(row: dict[str, Any], where: str, line: int | None, problems: list[Problem], file: str) -> GrantAsked | None:
    unknown = sorted(set(row) - set(COLUMNS))
    for key in unknown:
        problems.append(Problem(file, line, f"{where}.{key}", f"unknown key (keys: {', '.join(COLUMNS)})"))
    for required in ("customer", "key"):
        if not _text(row.get(required)):
            problems.append(Problem(file, line, f"{where}.{required}", "missing: every grant of a file needs one"))
    priority = row.get("priority")
    if priority not in (None, "") and not (isinstance(priority, int) or str(priority).lstrip("-").isdigit()):
        problems.append(Problem(file, line, f"{where}.priority", f"'{priority}' is not a whole number"))
        return None
    applies = row.get("applies_to")
    scopes = tuple(applies) if isinstance(applies, list) else tuple(p for p in str(applies or "").replace(";", " ").split())
    if unknown or not _text(row.get("customer")) or not _text(row.get("key")):
        return None
    return GrantAsked(str(row["customer"]), _text(row.get("amount")), _text(row.get("credits")), _text(row.get("rate")),
                      _text(row.get("currency")), _text(row.get("name")),
                      int(priority) if priority not in (None, "") else None,
                      _text(row.get("effective")), _text(row.get("expires")), tuple(str(s) for s in scopes),
                      _text(row.get("reason")), str(row["key"]))


def load_grants(path: Path) -> tuple[list[tuple[GrantAsked, int | None, str]], list[Problem]]:
    """(grant, line, key path) for each readable grant of the file, and the problems found."""
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file")
    file = str(path)
    problems: list[Problem] = []
    found: list[tuple[GrantAsked, int | None, str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            for index, row in enumerate(reader):
                where = f"grants[{index}]"
                asked = _asked({k: v for k, v in row.items() if k is not None and v != ""}, where, reader.line_num,
                               problems, file)
                if asked is not None:
                    found.append((asked, reader.line_num, where))
    else:
        document = load_document(path)
        grants = document.data.get("grants") if isinstance(document.data, dict) else None
        if not isinstance(grants, list):
            raise ConfigProblems([Problem(file, 1, "grants", "expected a list of grants under 'grants:'")])
        for index, row in enumerate(grants):
            where = f"grants[{index}]"
            line = document.lines.get(("grants", index))
            if not isinstance(row, dict):
                problems.append(Problem(file, line, where, "expected a mapping (customer, key, amount, ...)"))
                continue
            asked = _asked(row, where, line, problems, file)
            if asked is not None:
                found.append((asked, line, where))
    return found, problems


def import_grants(ledger: Ledger, path: Path, customers: dict[str, CustomerVersion], meters: Sequence[str] | None,
                  now: datetime) -> GrantImport:
    loaded, problems = load_grants(path)
    requests = []
    for asked, line, where in loaded:
        try:
            requests.append((asked, line, check_grant(asked, customers.get(asked.customer_id), meters, now,
                                                      source=f"file {path.name}")))
        except MeterctlError as error:
            problems.append(Problem(str(path), line, where, error.spelled({})))
    if problems:
        raise ConfigProblems(sorted(problems, key=lambda p: p.line or 0))
    created = 0
    with ledger.transaction():
        record_expiries(ledger, sorted({request.customer_id for _, _, request in requests}), now)
        for asked, line, request in requests:
            try:
                _, made = ledger.record_grant(request, asked.sha256(), now)
            except DataError as error:
                raise DataError(f"{path}:{line}: {error}; nothing of the file was granted") from None
            created += made
    return GrantImport(str(path), len(requests), created)
