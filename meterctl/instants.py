"""Instants: timezone-aware datetimes in UTC, and the one way they are written as text.

Every instant meterctl computes with (usage windows, billing segments, when an invoice was
finalized) is an aware `datetime` in UTC. Text is made only where something is shown or
hashed, always as `2026-10-01T00:00:00Z` (to the second: every such instant is a local
midnight, hour or record time, and the hashes stored in ledgers have always used this form).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterctl.errors import Param, UsageError

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


def time_zone(tz: str, name: str = "tz") -> ZoneInfo:
    """The IANA time zone `tz`; an unknown one is the caller's error on parameter `name`."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(Param(name), f": unknown time zone '{tz}' (use an IANA name such as Europe/Paris)") from None


def local_instant(given: str | date | datetime, zone: ZoneInfo, name: str) -> datetime:
    """An instant from a date (local midnight in `zone`), a date-time (without an offset: in
    `zone`), or their text (2026-10-01, 2026-10-01T12:00:00Z); bad text is an error on `name`."""
    if isinstance(given, str):
        try:
            given = date.fromisoformat(given) if len(given) == 10 else datetime.fromisoformat(given.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(Param(name), f": '{given}' is not a date (2026-10-01) or date-time "
                             "(2026-10-01T12:00:00Z)") from None
    if not isinstance(given, datetime):
        return datetime.combine(given, time(), zone)
    return given if given.tzinfo else given.replace(tzinfo=zone)


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Far beyond any bound a user means, and well inside what timestamps and timedelta can hold.
_LONGEST = timedelta(days=365_250)


def parse_duration(text: str, name: str) -> timedelta:
    """'300', '300s', '5m', '2h', '90d' → timedelta; anything else is an error on `name`."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(Param(name), f": '{text}' is not a duration (use e.g. 300s, 5m, 2h, 90d)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > _LONGEST.total_seconds():
        raise UsageError(Param(name), f": '{text}' is longer than {_LONGEST.days}d (a thousand years)")
    return timedelta(seconds=seconds)


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
