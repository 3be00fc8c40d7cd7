"""Instants: timezone-aware datetimes in UTC, and the one way they are written as text.

Every instant meterctl computes with (usage windows, billing segments, when an invoice was
finalized) is an aware `datetime` in UTC. Text is made only where something is shown or
hashed, always as `2026-10-01T00:00:00Z` (to the second: every such instant is a local
midnight, hour or record time, and the hashes stored in ledgers have always used this form).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(at: datetime) -> str:
    """'2026-10-01T04:00:00Z' for an aware instant (any zone)."""
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.strftime(ISO_SECONDS)


def from_epoch_us(micros: int) -> datetime:
    """The instant `micros` microseconds after 1970-01-01T00:00:00Z."""
    return EPOCH + timedelta(microseconds=micros)


class EpochCache(dict[int, datetime]):
    """Instants from epoch microseconds, each distinct value built once: window bounds repeat
    on every row of a usage result, and rows can number in the hundreds of thousands."""

    def __missing__(self, micros: int) -> datetime:
        instant = self[micros] = from_epoch_us(micros)
        return instant


class IsoCache(dict[datetime, str]):
    """`iso()` of each distinct instant once, for writing many rows that share few instants."""

    def __missing__(self, at: datetime) -> str:
        text = self[at] = iso(at)
        return text
