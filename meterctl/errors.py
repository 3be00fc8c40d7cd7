"""One exception tree: every expected failure knows its exit code.

The CLI prints an error as one line on stderr and exits with `exit_code`; anything that is
not a `MeterctlError` is a bug (exit 1).

A message may name the parameter at fault (the billing period, the window, the time zone)
with `Param`: the library's own text names it as the domain does (`period: invalid month`),
and a caller that knows the parameter by another name shows it that way (the command line
says `--period: invalid month`). The core never needs to know how a command spells it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """A parameter named in an error message, e.g. Param("period")."""

    name: str


class MeterctlError(Exception):
    """Base of every expected failure."""

    exit_code = 1

    def __init__(self, *parts: str | Param) -> None:
        self.parts = parts
        super().__init__(self.spelled({}))

    def spelled(self, names: Mapping[str, str]) -> str:
        """The message with each parameter written as `names` spells it (else by its name)."""
        return "".join(names.get(part.name, part.name) if isinstance(part, Param) else part for part in self.parts)

    def __str__(self) -> str:
        return self.spelled({})


class UsageError(MeterctlError):
    """Something was asked that cannot be done as asked (a malformed period, an unknown window)."""

    exit_code = 2


class DataError(MeterctlError):
    """Bad input data where the command was asked to be strict, or nothing valid to do."""

    exit_code = 65


class UsageOverflowError(DataError):
    """A sum of usage beyond what a quantity holds (10^20), for these (customer_id, meter)."""

    def __init__(self, overflowing: tuple[tuple[str, str], ...]) -> None:
        self.overflowing = overflowing
        shown = ", ".join(f"{customer} / {meter}" for customer, meter in overflowing[:3])
        more = f" and {len(overflowing) - 3} more" if len(overflowing) > 3 else ""
        super().__init__(f"usage cannot be totalled: the sum reaches 10^20 or more, beyond DECIMAL(38, 18), for "
                         f"{shown}{more}; find the events with huge values (e.g. meterctl usage --customer ID "
                         "--meter NAME --window day) and correct them at the source")


class InputNotFoundError(MeterctlError):
    """An input file or the store does not exist or cannot be read."""

    exit_code = 66


class StoreDamagedError(InputNotFoundError):
    """The store's file cannot be read: damaged (a checksum that does not match, a truncated
    file, a write-ahead log that belongs to another file) or not a DuckDB file at all."""


class OutputError(MeterctlError):
    """An output, or the store, cannot be written (a full disk, a read-only file system)."""

    exit_code = 73


class UnavailableError(MeterctlError):
    """A service meterctl talks to (Redis) cannot be reached or refused the work."""

    exit_code = 69


class StoreLockedError(MeterctlError):
    """Another meterctl process holds the database (retry later)."""

    exit_code = 75


class ConfigError(MeterctlError):
    """Invalid configuration: pricebook, meters, customers."""

    exit_code = 78


class NotFoundError(DataError):
    """A record asked for by id (a dead letter, a batch) does not exist."""
