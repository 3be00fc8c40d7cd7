"""Versioned pricebooks: one YAML file per plan version, read exactly, frozen by content hash.

A pricebook prices one plan at one version. The configuration directory holds any number of
them, conventionally `<plan>/v<version>.yaml`. For a billing segment, the version in force
is the plan's latest version whose `effective_from` is on or before the segment's first
day (in the customer's time zone): a new version takes effect from the next period (or
plan-change segment) that starts on or after its date, never in the middle of one.

The content hash is taken over the canonical content (decimals normalised, keys sorted),
so comments and formatting may change; prices, tiers or any other value may not once the
version has rated something. That is enforced by `check_frozen` against the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, ValidationError, ValidationInfo,
                      WithJsonSchema, field_validator, model_validator)

from meterctl import pricing
from meterctl.config_yaml import ConfigProblems, Document, Problem, load_document, parse_document, repeats, validation_problems
from meterctl.cycles import Cycle
from meterctl.errors import ConfigError, NotFoundError
from meterctl.meters import Meter
from meterctl.store import has_table

_PLAN = re.compile(r"^[a-z][a-z0-9_\-]*$")
_FILE_VERSION = re.compile(r"^v([0-9]+)$")
# DECIMAL(38, 18) holds 20 digits before the point; a price or fee far below that limit
# leaves room for quantity × price.
MAX_AMOUNT = Decimal(10) ** 15


def _exact_number(value: Any) -> Any:
    # YAML numbers arrive as int or Decimal (config_yaml never makes a float, and refuses
    # more than DECIMAL(38, 18)'s 18 places); a quoted "0.0004" is text and is refused
    # rather than guessed at.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a number (write it unquoted, e.g. 0.0004)")
    number = Decimal(value)
    if abs(number) >= MAX_AMOUNT:
        raise ValueError(f"must be below {MAX_AMOUNT:,f}")
    return number


# In the JSON Schema, what a pricebook file holds: an unquoted number (a quoted one is refused).
_NUMBER_SCHEMA = {"type": "number", "exclusiveMaximum": int(MAX_AMOUNT), "exclusiveMinimum": -int(MAX_AMOUNT)}
Number = Annotated[Decimal, BeforeValidator(_exact_number), WithJsonSchema(_NUMBER_SCHEMA)]
Amount = Annotated[Decimal, BeforeValidator(_exact_number), Field(ge=0), WithJsonSchema({**_NUMBER_SCHEMA, "minimum": 0})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierModel(_Strict):
    up_to: Amount | None = Field(...)  # required: the last tier says `up_to: null` explicitly
    unit_price: Amount
    flat_fee: Amount = Decimal(0)  # read by the pricing functions as it is (see pricing.TierLike)


def _check_tiers(tiers: tuple[TierModel, ...]) -> tuple[TierModel, ...]:
    pricing.check_tiers(tiers)
    return tiers


Tiers = Annotated[tuple[TierModel, ...], AfterValidator(_check_tiers)]


class Fee(_Strict):
    name: StrictStr = Field(min_length=1)
    amount: Amount


class DimensionPrice(_Strict):
    """The price of one dimension value, overriding the charge's own."""

    unit_price: Amount | None = None
    tiers: Tiers | None = None
    package_price: Amount | None = None


Model = Literal["per_unit", "graduated", "volume", "package"]
# The price fields each model uses; any other is an error, not silently ignored.
_FIELDS: dict[str, tuple[str, ...]] = {
    "per_unit": ("unit_price",),
    "graduated": ("tiers",),
    "volume": ("tiers",),
    "package": ("package_size", "package_price"),
}
_SHORTHAND = {"per_unit": "unit_price", "package": "package_price"}


class Charge(_Strict):
    meter: StrictStr = Field(min_length=1)
    name: StrictStr | None = None
    model: Model
    unit_price: Amount | None = None
    tiers: Tiers | None = None
    package_size: Amount | None = None
    package_price: Amount | None = None
    round: Literal["up", "down"] = "up"
    free_units: Amount = Decimal(0)
    price_by: dict[StrictStr, dict[StrictStr, DimensionPrice]] | None = None
    minimum: Amount | None = None
    maximum: Amount | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `price_by: {model: {gpt-large: 0.000006}}`: a bare number is the model's price.
        if not isinstance(data, dict) or not isinstance(data.get("price_by"), dict):
            return data
        model = data.get("model")
        field = _SHORTHAND.get(model) if isinstance(model, str) else None
        price_by = {}
        for key, values in data["price_by"].items():
            if isinstance(values, dict) and field:
                values = {v: ({field: p} if isinstance(p, (int, Decimal)) and not isinstance(p, bool) else p)
                          for v, p in values.items()}
            price_by[key] = values
        return {**data, "price_by": price_by}

    # Checks of one field against the fields before it (`model`, `minimum`) are field
    # validators: pydantic runs them even when another field of the charge fails, so a typo
    # in one price does not hide a second problem. (A model validator runs only on a charge
    # whose every field is valid.)
    @field_validator("unit_price", "tiers", "package_size", "package_price")
    @classmethod
    def _applies(cls, value: Any, info: ValidationInfo) -> Any:
        model = info.data.get("model")
        if value is not None and model in _FIELDS and info.field_name not in _FIELDS[model]:
            raise ValueError(f"'{info.field_name}' does not apply to model '{model}' (it uses {', '.join(_FIELDS[model])})")
        return value

    @field_validator("package_size")
    @classmethod
    def _positive_size(cls, size: Decimal | None) -> Decimal | None:
        if size is not None and size <= 0:
            raise ValueError("package_size must be above zero")
        return size

    @field_validator("round")
    @classmethod
    def _package_only(cls, value: str, info: ValidationInfo) -> str:
        model = info.data.get("model")
        if model in _FIELDS and model != "package":
            raise ValueError("'round' only applies to model 'package'")
        return value

    @field_validator("maximum")
    @classmethod
    def _above_minimum(cls, maximum: Decimal | None, info: ValidationInfo) -> Decimal | None:
        minimum = info.data.get("minimum")
        if maximum is not None and minimum is not None and minimum > maximum:
            raise ValueError(f"minimum {minimum} is above maximum {maximum}")
        return maximum

    @model_validator(mode="after")
    def _consistent(self) -> Charge:
        problems = [f"model '{self.model}' needs '{name}'" for name in _FIELDS[self.model] if getattr(self, name) is None]
        if self.price_by is not None:
            if len(self.price_by) != 1:
                problems.append("price_by prices by one dimension, e.g. {model: {gpt-large: 0.000006}}")
            for key, values in self.price_by.items():
                if not values:
                    problems.append(f"price_by.{key} lists no values")
                problems.extend(filter(None, (self._dimension_price_problem(f"price_by.{key}.{value}", price)
                                              for value, price in values.items())))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _dimension_price_problem(self, where: str, price: DimensionPrice) -> str | None:
        given = {f for f in ("unit_price", "tiers", "package_price") if getattr(price, f) is not None}
        allowed = {"per_unit": {"unit_price"}, "graduated": {"tiers"}, "volume": {"tiers"}, "package": {"package_price"}}[self.model]
        if not given:
            return f"{where}: gives no price"
        if given - allowed:
            return f"{where}: {', '.join(sorted(given - allowed))} does not apply to model '{self.model}'"
        return None

    @property
    def dimension(self) -> str | None:
        """The dimension this charge prices by, if any."""
        return next(iter(self.price_by)) if self.price_by else None

    @property
    def label(self) -> str:
        return self.name or self.meter

    def price(self, quantity: Decimal, dimension_value: str | None = None) -> pricing.Price:
        """Price `quantity` of this charge (for one value of its price_by dimension)."""
        override = None
        if self.price_by is not None and dimension_value is not None:
            override = self.price_by[self.dimension].get(dimension_value)  # type: ignore[index]
        model = self.model
        billable = quantity
        # (NaN and infinities go on to the model, which refuses them by name.)
        if model != "package" and self.free_units and quantity.is_finite() and quantity > 0:
            billable = pricing.after_free_units(quantity, self.free_units)
        if model == "per_unit":
            chosen = override.unit_price if override is not None else None
            return pricing.per_unit(billable, self.unit_price if chosen is None else chosen)  # type: ignore[arg-type]
        if model in ("graduated", "volume"):
            # The tiers as loaded: the pricing functions read up_to, unit_price and flat_fee.
            tiers = override.tiers if override is not None else self.tiers  # an override of these models has tiers
            return (pricing.graduated if model == "graduated" else pricing.volume)(billable, tiers)  # type: ignore[arg-type]
        chosen = override.package_price if override is not None else None
        return pricing.package(quantity, size=self.package_size, price=self.package_price if chosen is None else chosen,  # type: ignore[arg-type]
                               round=self.round, free_units=self.free_units)


class Pricebook(_Strict):
    plan: StrictStr
    version: int = Field(strict=True, ge=1)
    effective_from: date
    currency: StrictStr
    rounding: pricing.Rounding = "half_up"
    billing_cycle: Cycle = Cycle.MONTHLY
    description: StrictStr | None = None
    fees: tuple[Fee, ...] = ()
    charges: tuple[Charge, ...] = ()

    @field_validator("plan")
    @classmethod
    def _plan(cls, plan: str) -> str:
        if not _PLAN.match(plan):
            raise ValueError("must be lower case letters, digits, _ and - (starting with a letter)")
        return plan

    @field_validator("currency")
    @classmethod
    def _currency(cls, currency: str) -> str:
        pricing.minor_units(currency)  # ValueError for anything that is not an ISO 4217 code with minor units
        return currency

    @property
    def minor_units(self) -> int:
        return pricing.minor_units(self.currency)

    def content(self) -> dict:
        """Every field, defaults included, as JSON-ready data (decimals as plain text)."""
        return json.loads(json.dumps(self.model_dump(mode="python"), default=_json_value))

    def canonical(self) -> str:
        """The content as canonical JSON: what the hash covers and what the store keeps."""
        # Defaults left out: a key added to the format later (with a default) does not make
        # every frozen version look edited.
        return json.dumps(self.model_dump(mode="python", exclude_defaults=True), default=_json_value,
                          sort_keys=True, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return pricing.text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@dataclass(frozen=True)
class PricebookVersion:
    """One pricebook file, validated, with its content hash."""

    book: Pricebook
    path: str
    content_hash: str
    source_text: str
    key_lines: dict[str, int | None] = field(default_factory=dict, compare=False)  # top-level key → line

    @property
    def plan(self) -> str:
        return self.book.plan

    @property
    def version(self) -> int:
        return self.book.version

    @property
    def ref(self) -> str:
        return f"{self.book.plan}@{self.book.version}"


def _reference_problems(document: Document, meters: dict[str, Meter] | None) -> list[Problem]:
    """Checks that need more than the file: charged meters exist and group by what is priced.

    Done on the raw data, so that they are listed together with the file's own problems.
    """
    data = document.data if isinstance(document.data, dict) else {}
    charges = data.get("charges") if isinstance(data.get("charges"), list) else []
    problems = []
    path = Path(document.file)
    match = _FILE_VERSION.match(path.stem)
    version = data.get("version")
    if match and isinstance(version, int) and int(match[1]) != version:
        problems.append(document.problem(("version",), f"is {version} but the file is named {path.name}"))
    names = [charge.get("meter") if isinstance(charge, dict) else None for charge in charges]
    problems += [document.problem(("charges", index, "meter"), f"meter '{name}' is already charged by charges[{first}]")
                 for index, name, first in repeats(names)]
    # An invoice line, `pricebook diff` and a reader all tell fees apart by name.
    fees = data.get("fees") if isinstance(data.get("fees"), list) else []
    problems += [document.problem(("fees", index, "name"), f"fee '{name}' is already named by fees[{first}]")
                 for index, name, first in repeats(fee.get("name") if isinstance(fee, dict) else None for fee in fees)]
    for index, (charge, name) in enumerate(zip(charges, names)):
        if not isinstance(name, str) or meters is None:
            continue
        meter = meters.get(name)
        if meter is None:
            known = ", ".join(sorted(meters)) or "none"
            problems.append(document.problem(("charges", index, "meter"), f"unknown meter '{name}' (meters.yaml defines: {known})"))
            continue
        price_by = charge.get("price_by")
        for key in price_by if isinstance(price_by, dict) else ():
            if key not in meter.dimension_keys:
                problems.append(document.problem(
                    ("charges", index, "price_by", key),
                    f"meter '{meter.name}' does not group by '{key}' (its group_by: {list(meter.dimension_keys)})"))
    return problems


def load_pricebook(path: Path, meters: Sequence[Meter] | None = None) -> PricebookVersion:
    """Read and check one pricebook file; every problem in it is reported at once (exit 78)."""
    return _checked(load_document(path), path.read_text(encoding="utf-8"), meters)


def pricebook_from_text(source_text: str, source: str, meters: Sequence[Meter] | None = None) -> PricebookVersion:
    """A pricebook from its stored text (a frozen snapshot), checked like a file."""
    return _checked(parse_document(source_text, source), source_text, meters)


def _checked(document: Document, source_text: str, meters: Sequence[Meter] | None) -> PricebookVersion:
    problems = _reference_problems(document, {m.name: m for m in meters} if meters is not None else None)
    try:
        book = Pricebook.model_validate(document.data)
    except ValidationError as error:
        problems = validation_problems(document, error) + problems
    if problems:
        raise ConfigProblems(sorted(problems, key=lambda p: p.line or 0))
    canonical = book.canonical()
    content_hash = hashlib.sha256(canonical.encode()).hexdigest()
    lines = {key: document.line_of((key,)) for key in ("plan", "version", "effective_from", "currency", "billing_cycle")}
    return PricebookVersion(book, document.file, content_hash, source_text, lines)


def pricebook_files(directory: Path) -> tuple[Path, ...]:
    """Every pricebook file: the YAML files in the configuration directory's subdirectories.

    Files at the top (meters.yaml, perhaps a customers export) are not pricebooks.
    """
    found = (p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.parent != directory)
    return tuple(sorted(p for p in found if p.is_file()))


@dataclass(frozen=True)
class Catalog:
    """Every pricebook version of the configuration directory, by plan and version."""

    versions: tuple[PricebookVersion, ...]  # sorted by plan, then version

    def plans(self) -> tuple[str, ...]:
        return tuple(sorted({v.plan for v in self.versions}))

    def of_plan(self, plan: str) -> tuple[PricebookVersion, ...]:
        return tuple(v for v in self.versions if v.plan == plan)

    def get(self, plan: str, version: int | None = None) -> PricebookVersion:
        """A version (the latest when none is given); NotFoundError names what exists."""
        versions = self.of_plan(plan)
        if not versions:
            known = ", ".join(self.plans()) or "none"
            raise NotFoundError(f"no pricebook for plan '{plan}' (plans: {known})")
        if version is None:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise NotFoundError(f"plan '{plan}' has no version {version} (versions: {', '.join(str(v.version) for v in versions)})")

    def in_force(self, plan: str, day: date) -> PricebookVersion | None:
        """The latest version of `plan` effective on or before local date `day`."""
        chosen = None
        for candidate in self.of_plan(plan):
            if candidate.book.effective_from <= day:
                chosen = candidate
        return chosen

    def cycle(self, plan: str) -> Cycle | None:
        versions = self.of_plan(plan)
        return versions[0].book.billing_cycle if versions else None


def parse_ref(text: str) -> tuple[str, int | None]:
    """`pro` or `pro@2` → (plan, version or None)."""
    plan, _, version = text.partition("@")
    if not plan or (version and not version.isdigit()):
        raise ValueError(f"'{text}' is not PLAN or PLAN@VERSION (e.g. pro@2)")
    return plan, int(version) if version else None


def _catalog_problems(versions: Sequence[PricebookVersion]) -> list[Problem]:
    problems = []
    by_ref: dict[str, PricebookVersion] = {}
    for v in versions:
        if v.ref in by_ref:
            problems.append(Problem(v.path, v.key_lines.get("version"), "version", f"{v.ref} is also defined in {by_ref[v.ref].path}"))
        by_ref.setdefault(v.ref, v)
    plans: dict[str, list[PricebookVersion]] = {}
    for v in by_ref.values():
        plans.setdefault(v.plan, []).append(v)
    for plan_versions in plans.values():
        plan_versions.sort(key=lambda v: v.version)
        first = plan_versions[0]
        for before, after in zip(plan_versions, plan_versions[1:]):
            if after.book.effective_from <= before.book.effective_from:
                problems.append(Problem(after.path, after.key_lines.get("effective_from"), "effective_from",
                                        f"{after.ref} takes effect {after.book.effective_from}, not after {before.ref} ({before.book.effective_from})"))
        for later in plan_versions[1:]:
            for key in ("billing_cycle", "currency"):
                if getattr(later.book, key) != getattr(first.book, key):
                    problems.append(Problem(later.path, later.key_lines.get(key), key,
                                            f"is {getattr(later.book, key)} but {first.ref} has {getattr(first.book, key)}: "
                                            f"a plan keeps one {key.replace('_', ' ')} (make a new plan instead)"))
    return problems


def load_catalog(directory: Path, meters: Sequence[Meter] | None) -> Catalog:
    """Every pricebook below `directory`, checked alone and together; all problems at once."""
    problems: list[Problem] = []
    versions: list[PricebookVersion] = []
    for path in pricebook_files(directory):
        try:
            versions.append(load_pricebook(path, meters))
        except ConfigProblems as error:
            problems.extend(error.problems)
    problems.extend(_catalog_problems(versions))
    if problems:
        raise ConfigProblems(problems)
    return Catalog(tuple(sorted(versions, key=lambda v: (v.plan, v.version))))


def load_configuration(directory: Path) -> tuple[tuple[Meter, ...], Catalog]:
    """meters.yaml and every pricebook of the configuration directory; all problems of both
    at once. Pricebooks are still checked when meters.yaml has problems, on their own (a
    charge's meter cannot be checked against meters that did not load)."""
    from meterctl.meters import load_meters

    problems: list[Problem] = []
    meters: tuple[Meter, ...] | None = None
    try:
        meters = load_meters(directory)
    except ConfigProblems as error:
        problems.extend(error.problems)
    catalog = None
    if directory.is_dir():
        try:
            catalog = load_catalog(directory, meters)
        except ConfigProblems as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigProblems(problems)
    assert meters is not None and catalog is not None
    return meters, catalog


# ---------------------------------------------------------------- freezing


@dataclass(frozen=True)
class FrozenVersion:
    plan: str
    version: int
    content_hash: str
    source_path: str
    frozen_at: str
    first_run_id: int


def frozen_versions(con: duckdb.DuckDBPyConnection) -> dict[str, FrozenVersion]:
    if not has_table(con, "pricebook_versions"):
        return {}  # a store from before rating existed, opened read-only: nothing is frozen
    rows = con.execute(
        "SELECT plan, version, content_hash, source_path, strftime(frozen_at, '%Y-%m-%dT%H:%M:%SZ'), first_run_id "
        "FROM pricebook_versions ORDER BY plan, version"
    ).fetchall()
    return {f"{r[0]}@{r[1]}": FrozenVersion(*r) for r in rows}


def frozen_problems(catalog: Catalog, frozen: dict[str, FrozenVersion], plans: Iterable[str] | None = None) -> list[Problem]:
    """Frozen versions (of `plans`, or all) whose file was edited or removed."""
    wanted = None if plans is None else set(plans)
    problems = []
    present = {v.ref: v for v in catalog.versions}
    for ref, stored in frozen.items():
        if wanted is not None and stored.plan not in wanted:
            continue
        current = present.get(ref)
        if current is None:
            problems.append(Problem(stored.source_path, None, "",
                                    f"{ref} has rated usage (run {stored.first_run_id}) but its file is gone; restore it"))
        elif current.content_hash != stored.content_hash:
            problems.append(Problem(current.path, None, "",
                                    f"{ref} was edited after it rated usage (run {stored.first_run_id}, {stored.frozen_at}); "
                                    f"restore it and publish the change as a new version "
                                    f"(version: {max(v.version for v in catalog.of_plan(stored.plan)) + 1}) instead"))
    return problems


def check_frozen(con: duckdb.DuckDBPyConnection, catalog: Catalog, plans: Iterable[str] | None = None) -> None:
    problems = frozen_problems(catalog, frozen_versions(con), plans)
    if problems:
        raise ConfigProblems(problems)


def freeze(con: duckdb.DuckDBPyConnection, versions: Iterable[PricebookVersion], run_id: int) -> None:
    """Store the hash and content of versions rating for the first time (inside the caller's transaction)."""
    for v in versions:
        con.execute(
            "INSERT INTO pricebook_versions "
            "SELECT $plan, $version, $hash, $canonical, $path, $text, now(), $run "
            "WHERE NOT EXISTS (SELECT 1 FROM pricebook_versions WHERE plan = $plan AND version = $version)",
            {"plan": v.plan, "version": v.version, "hash": v.content_hash, "canonical": v.book.canonical(),
             "path": v.path, "text": v.source_text, "run": run_id},
        )


def schema() -> dict:
    """JSON Schema of a pricebook file, for editors.

    It checks the shape of a file (keys, types, signs); the rules that relate values to one
    another (tiers ascending, the price fields each model needs) are `pricebook validate`'s.
    """
    document = Pricebook.model_json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "meterctl pricebook"
    definitions = document["$defs"]
    # A price_by value is a price object or, for per_unit and package, the bare price.
    definitions["Charge"]["properties"]["price_by"] = {
        "anyOf": [
            {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {
                "type": "object", "minProperties": 1, "additionalProperties": {
                    "anyOf": [{**_NUMBER_SCHEMA, "minimum": 0}, {"$ref": "#/$defs/DimensionPrice"}]}}},
            {"type": "null"},
        ],
        "default": None,
        "title": "Price By",
    }
    for holder in (definitions["Charge"], definitions["DimensionPrice"]):
        tiers = holder["properties"]["tiers"]["anyOf"][0]
        tiers["minItems"] = 1
    return document


__all__ = [
    "Catalog", "Charge", "ConfigError", "Fee", "Pricebook", "PricebookVersion", "check_frozen", "freeze",
    "frozen_versions", "load_catalog", "load_pricebook", "parse_ref", "schema",
]
