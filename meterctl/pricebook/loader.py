"""Reading the configuration directory: meters.yaml and every pricebook file, each problem
named at its file, line and key, all of them at once (exit 78).

The content hash is taken over the canonical content (decimals normalised, keys sorted), so
comments and formatting may change; prices, tiers or any other value may not once the
version has rated something.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meterctl.config_yaml import ConfigProblems, Document, Problem, load_document, parse_document, repeats, validation_problems
from meterctl.meters import Meter, MetersFile, load_meter_file
from meterctl.pricebook.catalog import Catalog, PricebookVersion
from meterctl.pricebook.models import Pricebook

_FILE_VERSION = re.compile(r"^v([0-9]+)$")


def _reference_problems(document: Document, meters: dict[str, Meter] | None) -> list[Problem]:
    """Checks that need more than the file: charged meters exist and group by what is priced.

    Done on the raw data, so that they are listed together with the file's own problems.
    """
    data: dict[str, Any] = document.data if isinstance(document.data, dict) else {}
    charges = _listed(data, "charges")
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
    fees = _listed(data, "fees")
    problems += [document.problem(("fees", index, "name"), f"fee '{name}' is already named by fees[{first}]")
                 for index, name, first in repeats(fee.get("name") if isinstance(fee, dict) else None for fee in fees)]
    for index, (charge, name) in enumerate(zip(charges, names, strict=True)):
        if not isinstance(name, str) or meters is None:
            continue
        meter = meters.get(name)
        if meter is None:
            problems.append(document.problem(("charges", index, "meter"), _unknown_meter(name, meters)))
            continue
        price_by = charge.get("price_by")
        for key in price_by if isinstance(price_by, dict) else ():
            if key not in meter.dimension_keys:
                problems.append(document.problem(
                    ("charges", index, "price_by", key),
                    f"meter '{meter.name}' does not group by '{key}' (its group_by: {list(meter.dimension_keys)})"))
    features = _listed(data, "features")
    problems += [document.problem(("features", index, "key"), f"feature '{key}' is already listed by features[{first}]")
                 for index, key, first in repeats(f.get("key") if isinstance(f, dict) else None for f in features)]
    for index, feature in enumerate(features):
        name = feature.get("meter") if isinstance(feature, dict) else None
        if isinstance(name, str) and meters is not None and name not in meters:
            problems.append(document.problem(("features", index, "meter"), _unknown_meter(name, meters)))
    credits = _listed(data, "credits")
    problems += [document.problem(("credits", index, "name"), f"credit '{name}' is already named by credits[{first}]")
                 for index, name, first in repeats(c.get("name") if isinstance(c, dict) else None for c in credits)]
    for index, credit in enumerate(credits):
        scopes = credit.get("applies_to") if isinstance(credit, dict) else None
        for position, scope in enumerate(scopes if isinstance(scopes, list) and meters is not None else ()):
            if isinstance(scope, str) and scope not in ("usage", "all") and scope not in meters:  # type: ignore[operator]
                problems.append(document.problem(("credits", index, "applies_to", position),
                                                 _unknown_meter(scope, meters or {}, "; or usage, all")))
    return problems


def _listed(data: dict[str, Any], key: str) -> list[Any]:
    """A list the file gives under `key` (anything else is the model's to report)."""
    given = data.get(key)
    return given if isinstance(given, list) else []


def _unknown_meter(name: str, meters: Mapping[str, Meter], also: str = "") -> str:
    return f"unknown meter '{name}' (meters.yaml defines: {', '.join(sorted(meters)) or 'none'}{also})"


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
        for before, after in itertools.pairwise(plan_versions):
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


def load_configuration(directory: Path) -> tuple[MetersFile, Catalog]:
    """meters.yaml and every pricebook of the configuration directory; all problems of both
    at once. Pricebooks are still checked when meters.yaml has problems, on their own (a
    charge's meter cannot be checked against meters that did not load)."""
    problems: list[Problem] = []
    meter_file: MetersFile | None = None
    try:
        meter_file = load_meter_file(directory)
    except ConfigProblems as error:
        problems.extend(error.problems)
    catalog = None
    if directory.is_dir():
        try:
            catalog = load_catalog(directory, meter_file.meters if meter_file else None)
        except ConfigProblems as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigProblems(problems)
    assert meter_file is not None and catalog is not None
    return meter_file, catalog
