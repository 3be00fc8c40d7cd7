"""Customers and subscriptions, imported from YAML or CSV exported from a CRM.

Re-importing the same data changes nothing; a changed customer gets a new version, and
the old versions stay readable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
from collections.abc import Callable, Sequence
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from meterctl.config_yaml import ConfigProblems, Document, Problem, load_document, repeats, validate
from meterctl import cycles, sql
from meterctl.errors import InputNotFoundError, NotFoundError

if TYPE_CHECKING:  # the pricebook module imports this one
    from meterctl.pricebook import Catalog

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class SubscriptionModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: StrictStr = Field(min_length=1)
    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SubscriptionModel:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (subscriptions are half-open [start, end))")
        return self


class CustomerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    currency: StrictStr
    timezone: StrictStr
    billing: Literal["calendar", "anniversary"] = "calendar"
    subscriptions: tuple[SubscriptionModel, ...] = Field(min_length=1)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("must be an ISO 4217 code such as USD, EUR or JPY")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}' (use an IANA name such as Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> CustomerModel:
        ordered = sorted(self.subscriptions, key=lambda s: s.start)
        # An open-ended subscription runs until the next one starts (a plan change).
        for before, after in zip(ordered, ordered[1:]):
            if before.start == after.start or (before.end is not None and before.end > after.start):
                raise ValueError(f"subscriptions overlap: {before.plan} from {before.start} and {after.plan} from {after.start}")
        return self

    def canonical(self) -> dict:
        subs = sorted(self.subscriptions, key=lambda s: s.start)
        return {
            "name": self.name, "currency": self.currency, "timezone": self.timezone, "billing": self.billing,
            "subscriptions": [{"plan": s.plan, "start": s.start.isoformat(), "end": s.end.isoformat() if s.end else None} for s in subs],
        }


class CustomersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: tuple[CustomerModel, ...]


@dataclass(frozen=True)
class ImportResult:
    source: str
    customers: int
    added: int
    changed: int
    unchanged: int
    # Stored customers this file does not mention: kept as they are (an export may be partial),
    # and billed while their subscriptions run; end a subscription with `end:` to stop billing.
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerVersion:
    customer_id: str
    version: int
    name: str
    currency: str
    timezone: str
    billing: str
    subscriptions: list[dict]
    source: str
    imported_at: str


_CSV_COLUMNS = ("id", "name", "currency", "timezone", "billing", "plan", "start", "end")


def _read_csv(path: Path) -> Document:
    """One row per subscription; customer columns repeat. Becomes the YAML shape."""
    try:
        return _parse_csv(path)
    except UnicodeDecodeError as error:
        # Spreadsheets often save CSV as Latin-1 or UTF-16: say so rather than guess.
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ConfigProblems([Problem(str(path), line, "", f"not UTF-8 text (byte 0x{error.object[error.start]:02x}); "
                                                           "save the file as CSV UTF-8")]) from None


def _parse_csv(path: Path) -> Document:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        unknown = [c for c in header if c not in _CSV_COLUMNS]
        missing = [c for c in ("id", "name", "currency", "timezone", "plan", "start") if c not in header]
        if unknown or missing:
            text = "; ".join(filter(None, [
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                f"missing column(s) {', '.join(missing)}" if missing else "",
            ]))
            raise ConfigProblems([Problem(str(path), 1, "", f"{text} (columns: {', '.join(_CSV_COLUMNS)})")])
        customers: dict[str, dict] = {}
        lines: dict = {}
        problems: list[Problem] = []
        for row in reader:
            line = reader.line_num
            cid = row["id"]
            if row.get(None):  # DictReader keeps fields beyond the header under None
                problems.append(Problem(str(path), line, "", f"{len(row[None])} more field(s) than the header has columns"))
            if cid not in customers:
                customers[cid] = {k: row[k] for k in ("id", "name", "currency", "timezone") if row.get(k)}
                if row.get("billing"):
                    customers[cid]["billing"] = row["billing"]
                customers[cid]["subscriptions"] = []
                for key in ("", "id", "name", "currency", "timezone", "billing", "subscriptions"):
                    lines[("customers", len(customers) - 1) + ((key,) if key else ())] = line
            index = list(customers).index(cid)
            # The customer's columns repeat on each of its rows: they must say the same.
            for key in ("name", "currency", "timezone", "billing"):
                if (row.get(key) or None) != customers[cid].get(key):
                    problems.append(Problem(str(path), line, f"customers[{index}].{key}",
                                            f"'{row.get(key) or ''}' differs from line {lines[('customers', index)]} "
                                            f"('{customers[cid].get(key) or ''}') for customer {cid}"))
            sub_index = len(customers[cid]["subscriptions"])
            sub = {"plan": row["plan"], "start": row["start"]}
            if row.get("end"):
                sub["end"] = row["end"]
            customers[cid]["subscriptions"].append(sub)
            lines[("customers", index, "subscriptions", sub_index)] = line
    if problems:
        raise ConfigProblems(problems)
    return Document(str(path), {"customers": list(customers.values())}, lines)


def load_customers(path: Path) -> tuple[CustomerModel, ...]:
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        document = _read_csv(path)
    else:
        document = load_document(path)
    # Repeated ids are found on the raw data, so that they are listed with every other problem.
    raw = document.data.get("customers") if isinstance(document.data, dict) else None
    ids = (customer.get("id") if isinstance(customer, dict) else None for customer in (raw if isinstance(raw, list) else []))
    problems = [document.problem(("customers", index, "id"), f"customer '{customer_id}' appears twice")
                for index, customer_id, _ in repeats(ids)]
    try:
        parsed = validate(document, CustomersFile)
    except ConfigProblems as error:
        raise ConfigProblems(sorted([*error.problems, *problems], key=lambda p: p.line or 0)) from None
    if problems:
        raise ConfigProblems(problems)
    return parsed.customers


def plan_problems(customers: Sequence[CustomerModel], catalog: Catalog) -> tuple[str, ...]:
    """What rating would refuse in these subscriptions, said at import time: a plan with no
    pricebook, a pricebook in another currency, or a start before the plan's first version."""
    found = []
    for customer in customers:
        for sub in sorted(customer.subscriptions, key=lambda s: s.start):
            versions = catalog.of_plan(sub.plan)
            where = f"customer {customer.id}, plan '{sub.plan}' from {sub.start}"
            if not versions:
                found.append(f"{where}: no pricebook defines this plan (plans: {', '.join(catalog.plans()) or 'none'})")
            elif versions[0].book.currency != customer.currency:
                found.append(f"{where}: the plan prices in {versions[0].book.currency}, "
                             f"the customer is billed in {customer.currency}")
            elif versions[0].book.effective_from > sub.start:
                found.append(f"{where}: the plan's first version, {versions[0].ref}, "
                             f"takes effect {versions[0].book.effective_from}")
        # One customer bills on one cycle: rating refuses plans on different cycles that are
        # both in force within the same year (a change from monthly to yearly, say).
        ordered = sorted(customer.subscriptions, key=lambda s: s.start)
        for earlier, later in zip(ordered, ordered[1:]):
            cycles = (catalog.cycle(earlier.plan), catalog.cycle(later.plan))
            if None not in cycles and cycles[0] != cycles[1] and (
                    earlier.end is None or (later.start - earlier.end).days < 366):
                found.append(f"customer {customer.id}: plans '{earlier.plan}' ({cycles[0]}) and '{later.plan}' "
                             f"({cycles[1]}, from {later.start}) bill on different cycles; meterctl bills one "
                             "customer on one cycle, so rating would refuse this customer's periods")
    return tuple(found)


def import_customers(con: duckdb.DuckDBPyConnection, path: Path,
                     loaded: Sequence[CustomerModel] | None = None) -> ImportResult:
    """Add a version for every new or changed customer; unchanged ones are left alone.
    `loaded` is what load_customers(path) gave, when the caller has read the file already."""
    customers = load_customers(path) if loaded is None else loaded
    records = [c.canonical() for c in customers]
    con.execute("BEGIN TRANSACTION")
    try:
        sql.temp_table(con, "incoming", {
            "customer_id": ("VARCHAR", [c.id for c in customers]),
            "name": ("VARCHAR", [r["name"] for r in records]),
            "currency": ("VARCHAR", [c.currency for c in customers]),
            "timezone": ("VARCHAR", [c.timezone for c in customers]),
            "billing": ("VARCHAR", [c.billing for c in customers]),
            "subscriptions": ("VARCHAR", [json.dumps(r["subscriptions"]) for r in records]),
            "content_sha256": ("VARCHAR", [
                hashlib.sha256(json.dumps(r, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
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
                   CAST(i.subscriptions AS JSON), i.content_sha256, ?, now()
            FROM incoming AS i LEFT JOIN latest AS l USING (customer_id)
            WHERE l.customer_id IS NULL OR l.sha <> i.content_sha256
            """,
            [str(path)],
        )
        absent = [r[0] for r in con.execute(
            "SELECT DISTINCT customer_id FROM customer_versions WHERE customer_id NOT IN (SELECT customer_id FROM incoming) "
            "ORDER BY customer_id").fetchall()]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return ImportResult(str(path), len(customers), added, changed, len(customers) - added - changed, tuple(absent))


_SELECT = """
    SELECT customer_id, version, name, currency, timezone, billing, CAST(subscriptions AS VARCHAR), source,
           strftime(imported_at, '%Y-%m-%dT%H:%M:%SZ')
    FROM customer_versions
"""


def _version(row: tuple) -> CustomerVersion:
    *head, subs, source, imported = row
    return CustomerVersion(*head, json.loads(subs), source, imported)


def list_customers(con: duckdb.DuckDBPyConnection) -> tuple[CustomerVersion, ...]:
    rows = con.execute(_SELECT + " QUALIFY version = max(version) OVER (PARTITION BY customer_id) ORDER BY customer_id").fetchall()
    return tuple(_version(r) for r in rows)


def customer_history(con: duckdb.DuckDBPyConnection, customer_id: str) -> tuple[CustomerVersion, ...]:
    rows = con.execute(_SELECT + " WHERE customer_id = ? ORDER BY version DESC", [customer_id]).fetchall()
    if not rows:
        raise NotFoundError(f"customer '{customer_id}' does not exist (see 'meterctl customers list')")
    return tuple(_version(r) for r in rows)




def select_customers(con: duckdb.DuckDBPyConnection, customer_ids: Sequence[str] | None) -> tuple[CustomerVersion, ...]:
    """The latest version of the given customers (all when none are given); unknown ids are an error."""
    chosen = list_customers(con)
    if customer_ids:
        wanted = set(customer_ids)
        missing = sorted(wanted - {c.customer_id for c in chosen})
        if missing:
            raise NotFoundError(f"customer(s) {', '.join(missing)} do not exist (see 'meterctl customers list')")
        chosen = tuple(c for c in chosen if c.customer_id in wanted)
    return chosen


def billing_segments(
    con: duckdb.DuckDBPyConnection,
    customer_ids: Sequence[str] | None,
    *,
    cycle: str | Callable[[CustomerVersion], str],
    start: date,
    end: date,
) -> tuple[tuple[str, cycles.Segment], ...]:
    """(customer_id, segment) of every billing period overlapping local dates [start, end).

    Uses each customer's latest imported version: its time zone, billing alignment and
    subscriptions. The cycle (monthly, quarterly, yearly) is given, or a function of the
    customer (the billing cycle of its plans' pricebooks).
    """
    chosen = select_customers(con, customer_ids)
    found = []
    for customer in chosen:
        subscriptions = [
            cycles.Subscription(s["plan"], date.fromisoformat(s["start"]), date.fromisoformat(s["end"]) if s["end"] else None)
            for s in customer.subscriptions
        ]
        for segment in cycles.periods_for_customer(
            subscriptions=subscriptions, cycle=cycle if isinstance(cycle, str) else cycle(customer), alignment=customer.billing, tz=customer.timezone, start=start, end=end
        ):
            found.append((customer.customer_id, segment))
    return tuple(found)
