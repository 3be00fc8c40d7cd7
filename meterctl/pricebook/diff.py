"""What changed between two versions of a plan: charges matched by meter, fees by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterctl.pricebook.catalog import PricebookVersion


class _Absent:
    """A key or list item one version does not have (unlike a null value)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    key: str  # charges.tokens.unit_price, fees.Platform fee.amount, tiers[2].up_to
    before: Any  # ABSENT where the older version has no such key
    after: Any  # ABSENT where the newer version has none


@dataclass(frozen=True)
class PricebookDiff:
    before: str  # plan@version
    after: str
    changes: tuple[Change, ...]


def diff(before: PricebookVersion, after: PricebookVersion) -> PricebookDiff:
    """The leaf differences between two versions, defaults included (an omitted key still
    has its value), the version number itself left out."""
    documents = []
    for chosen in (before, after):
        content = chosen.book.content()
        content["charges"] = {c["meter"]: c for c in content["charges"]}
        content["fees"] = {f["name"]: f for f in content["fees"]}
        content["credits"] = {c["name"]: c for c in content.get("credits", [])}
        documents.append(content)
    changes = tuple(Change(key, old, new) for key, old, new in _changes(documents[0], documents[1]) if key != "version")
    return PricebookDiff(before.ref, after.ref, changes)


def _changes(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after)):
            found += _changes(before.get(key, ABSENT), after.get(key, ABSENT), f"{path}.{key}" if path else key)
        return found
    if isinstance(before, list) and isinstance(after, list):
        found = []
        for index in range(max(len(before), len(after))):
            found += _changes(before[index] if index < len(before) else ABSENT,
                              after[index] if index < len(after) else ABSENT, f"{path}[{index}]")
        return found
    return [] if before == after else [(path, before, after)]
