"""Pricebook versions as loaded, the catalog of a configuration directory, and frozen versions.

For a billing segment, the version in force is the plan's latest version whose
`effective_from` is on or before the segment's first day (in the customer's time zone): a
new version takes effect from the next period (or plan-change segment) that starts on or
after its date, never in the middle of one.

A version that has rated anything is frozen: the ledger keeps its content hash, and a file
that no longer matches it (edited, or gone) stops every command that would use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from meterctl.config_yaml import ConfigProblems, Problem
from meterctl.cycles import Cycle
from meterctl.errors import NotFoundError
from meterctl.instants import iso
from meterctl.store.ports import FrozenVersion

if TYPE_CHECKING:
    from meterctl.pricebook.models import Pricebook


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


@dataclass(frozen=True)
class ConfigSummary:
    directory: str
    meters: tuple[str, ...]
    pricebooks: tuple[str, ...]  # plan@version
    seller: bool = False  # seller.yaml is there
    taxes: tuple[str, ...] = ()  # the codes of taxes.yaml


@dataclass(frozen=True)
class PricebookListing:
    pricebook: str
    plan: str
    version: int
    effective_from: date
    currency: str
    billing_cycle: str
    file: str
    hash: str
    frozen: bool  # it has rated usage: its file may no longer change
    edited_after_freeze: bool


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




def frozen_problems(catalog: Catalog, frozen: Mapping[str, FrozenVersion], plans: Iterable[str] | None = None) -> list[Problem]:
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
                                    f"{ref} was edited after it rated usage (run {stored.first_run_id}, {iso(stored.frozen_at)}); "
                                    f"restore it and publish the change as a new version "
                                    f"(version: {max(v.version for v in catalog.of_plan(stored.plan)) + 1}) instead"))
    return problems


def check_frozen(catalog: Catalog, frozen: Mapping[str, FrozenVersion], plans: Iterable[str] | None = None) -> None:
    """Refuse (exit 78) when a frozen version of `plans` (or of any plan) no longer matches its file."""
    problems = frozen_problems(catalog, frozen, plans)
    if problems:
        raise ConfigProblems(problems)

