"""Customer files exported from a CRM (YAML, or CSV with a row per subscription), read
strictly: every problem named at its file, line and key, all at once (exit 78)."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from meterctl import cycles
from meterctl.billing_terms import TAX_CODE, checked_email
from meterctl.config_yaml import ConfigProblems, Document, Problem, load_document, repeats, validate
from meterctl.customers import CustomerRecord, ImportResult
from meterctl.errors import InputNotFoundError

if TYPE_CHECKING:
    from meterctl.pricebook import Catalog
    from meterctl.store.ports import Ledger

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_LOCALE = re.compile(r"^[a-z]{2,3}([_-][A-Z]{2})?$")
# The billing details, in the order the canonical record (and `customers show`) lists them.
DETAIL_KEYS = ("email", "address", "tax_id", "payment_terms_days", "taxes", "tax_exempt", "locale")
# As for the customer_id of an event (a longer one is a dead letter).
MAX_ID_LENGTH = 256


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


class FeatureOverride(BaseModel):
    """A customer's own terms for one of its plans' features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Decimal | None = None  # a metered feature's limit (null: unlimited)
    value: StrictStr | bool | int | Decimal | None = None  # a static feature's value
    soft: bool | None = None

    @field_validator("limit")
    @classmethod
    def _limit(cls, limit: Decimal | None) -> Decimal | None:
        if limit is not None and limit < 0:
            raise ValueError("must be zero or more (null: unlimited)")
        return limit

    def canonical(self) -> dict[str, Any]:
        """The keys given, decimals as text (a given `limit: null` is kept: it means unlimited)."""
        given = {key: getattr(self, key) for key in sorted(self.model_fields_set)}
        return {key: (format(value, "f") if isinstance(value, Decimal) else value) for key, value in given.items()}


class CustomerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    currency: StrictStr
    timezone: StrictStr
    billing: Literal["calendar", "anniversary"] = "calendar"
    subscriptions: tuple[SubscriptionModel, ...] = Field(min_length=1)
    features: dict[StrictStr, FeatureOverride] = Field(default_factory=dict)
    # Billing details: the invoice's bill-to block, payment terms and taxes.
    email: StrictStr | None = None
    address: StrictStr | tuple[StrictStr, ...] | None = None  # lines: a multi-line text or a list
    tax_id: StrictStr | None = Field(default=None, min_length=1)
    payment_terms_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    taxes: tuple[StrictStr, ...] = ()  # codes of taxes.yaml
    tax_exempt: Literal["reverse_charge"] | None = None
    locale: StrictStr | None = None  # for numbers and dates on its invoices: en_US, de_DE, fr

    _email = field_validator("email")(classmethod(lambda cls, value: checked_email(value)))

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not _LOCALE.match(value):
            raise ValueError(f"'{value}' is not a locale (a language, optionally with a country: en, en_US, de_DE)")
        return value

    @field_validator("taxes")
    @classmethod
    def _taxes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if not TAX_CODE.match(code):
                raise ValueError(f"'{code}' is not a tax code (letters, digits, _ and -)")
        if len(set(codes)) != len(codes):
            raise ValueError("a tax code is listed twice")
        return codes

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        # Events name their customer by this id exactly: "cus_1 " would bill nobody's events.
        if value != value.strip():
            raise ValueError(f"'{value}' has spaces around it (events name their customer by the id exactly)")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not hold control characters (tabs, line breaks)")
        if len(value) > MAX_ID_LENGTH:
            raise ValueError(f"is {len(value)} characters long; ids are at most {MAX_ID_LENGTH}")
        return value

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
    def _tax_terms(self) -> CustomerModel:
        if self.tax_exempt == "reverse_charge":
            if self.taxes:
                raise ValueError("a reverse-charge customer is not taxed: give taxes or tax_exempt, not both")
            if self.tax_id is None:
                raise ValueError("tax_exempt: reverse_charge needs the customer's tax_id (the invoice names it)")
        return self

    @model_validator(mode="after")
    def _no_overlap(self) -> CustomerModel:
        ordered = sorted(self.subscriptions, key=lambda s: s.start)
        # An open-ended subscription runs until the next one starts (a plan change).
        for before, after in itertools.pairwise(ordered):
            if before.start == after.start or (before.end is not None and before.end > after.start):
                raise ValueError(f"subscriptions overlap: {before.plan} from {before.start} and {after.plan} from {after.start}")
        return self

    def canonical(self) -> dict:
        subs = sorted(self.subscriptions, key=lambda s: s.start)
        document: dict[str, Any] = {
            "name": self.name, "currency": self.currency, "timezone": self.timezone, "billing": self.billing,
            "subscriptions": [{"plan": s.plan, "start": s.start.isoformat(), "end": s.end.isoformat() if s.end else None} for s in subs],
        }
        if self.features:  # only when given: the records of customers without any keep their hash
            document["features"] = {key: self.features[key].canonical() for key in sorted(self.features)}
        details = self.details()
        if details:  # likewise
            document["details"] = details
        return document

    def details(self) -> dict[str, Any]:
        """The billing details given, the address as a list of lines."""
        found: dict[str, Any] = {}
        for key in DETAIL_KEYS:
            value = getattr(self, key)
            if value is None or value == ():
                continue
            if key == "address":
                value = [line.strip() for line in value.splitlines()] if isinstance(value, str) else list(value)
                value = [line for line in value if line]
            elif key == "taxes":
                value = list(value)
            found[key] = value
        return found


class CustomersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customers: tuple[CustomerModel, ...]



_CSV_COLUMNS = ("id", "name", "currency", "timezone", "billing", "plan", "start", "end", "features", "email", "address",
                "tax_id", "payment_terms_days", "taxes", "tax_exempt", "locale")
# Customer columns beyond the four required ones: taken from a customer's first row, and
# every other row of the customer must say the same.
_CSV_CUSTOMER_COLUMNS = ("billing", "email", "address", "tax_id", "payment_terms_days", "taxes", "tax_exempt", "locale")
# A CSV cell of feature overrides: "tokens.limit=5000000; seats.value=25; tokens.soft=true".
_OVERRIDE = re.compile(r"^\s*([a-z][a-z0-9_\-]*)\.(limit|value|soft)\s*=\s*(.*?)\s*$")


def _overrides(cell: str, problems: list[Problem], path: Path, line: int, index: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for part in filter(None, (p.strip() for p in cell.split(";"))):
        match = _OVERRIDE.match(part)
        if match is None:
            problems.append(Problem(str(path), line, f"customers[{index}].features",
                                    f"'{part}' is not FEATURE.limit|value|soft=VALUE (e.g. tokens.limit=5000000)"))
            continue
        key, field, text = match.groups()
        value: Any = text
        if field == "limit":
            value = None if text in ("", "null") else text
        elif field == "soft":
            value = text.lower() in ("true", "yes", "1")
        found.setdefault(key, {})[field] = value
    return found


def _csv_value(key: str, cell: str) -> Any:
    """A customer cell as the YAML shape has it: taxes as a list ("GST; QST"), payment terms
    as a number when they are one (else the text, refused by validation with its line)."""
    if key == "taxes":
        return [code.strip() for code in cell.split(";") if code.strip()]
    if key == "payment_terms_days" and cell.strip().isdigit():
        return int(cell.strip())
    return cell


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
                for key in _CSV_CUSTOMER_COLUMNS:
                    if row.get(key):
                        customers[cid][key] = _csv_value(key, row[key])
                if row.get("features"):
                    customers[cid]["features"] = _overrides(row["features"], problems, path, line, len(customers) - 1)
                customers[cid]["subscriptions"] = []
                for key in ("", "id", "name", "currency", "timezone", "billing", "subscriptions"):
                    lines[("customers", len(customers) - 1) + ((key,) if key else ())] = line
            index = list(customers).index(cid)
            # The customer's columns repeat on each of its rows: they must say the same.
            for key in ("name", "currency", "timezone", *_CSV_CUSTOMER_COLUMNS):
                if (_csv_value(key, row[key]) if row.get(key) else None) != customers[cid].get(key):
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
        for earlier, later in itertools.pairwise(ordered):
            pair = (catalog.cycle(earlier.plan), catalog.cycle(later.plan))
            if None not in pair and pair[0] != pair[1] and (
                    earlier.end is None or (later.start - earlier.end).days < 366):
                found.append(f"customer {customer.id}: plans '{earlier.plan}' ({pair[0]}) and '{later.plan}' "
                             f"({pair[1]}, from {later.start}) bill on different cycles; meterctl bills one "
                             "customer on one cycle, so rating would refuse this customer's periods")
    return tuple(found)


def customer_records(customers: Sequence[CustomerModel]) -> tuple[CustomerRecord, ...]:
    """Each customer as the ledger keeps a version of it, with the hash that tells a changed
    customer from an unchanged one."""
    records = []
    for customer in customers:
        canonical = customer.canonical()
        digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        subscriptions = tuple(cycles.Subscription(s.plan, s.start, s.end)
                              for s in sorted(customer.subscriptions, key=lambda s: s.start))
        records.append(CustomerRecord(customer.id, canonical["name"], customer.currency, customer.timezone,
                                      customer.billing, subscriptions, digest, canonical.get("features", {}),
                                      canonical.get("details", {})))
    return tuple(records)


def import_customers(ledger: Ledger, path: Path, loaded: Sequence[CustomerModel] | None = None,
                     plan_notes: Sequence[str] = ()) -> ImportResult:
    """Add a version for every new or changed customer; unchanged ones are left alone.
    `loaded` is what load_customers(path) gave, when the caller has read the file already."""
    customers = load_customers(path) if loaded is None else loaded
    added, changed, absent = ledger.import_customers(customer_records(customers), str(path))
    return ImportResult(str(path), len(customers), added, changed, len(customers) - added - changed, absent,
                        tuple(plan_notes))


