"""One exception tree: every expected failure knows its exit code.

The CLI prints `str(error)` as one line on stderr and exits with `exit_code`;
anything that is not a `MeterctlError` is a bug (exit 1).
"""

from __future__ import annotations


class MeterctlError(Exception):
    """Base of every expected failure."""

    exit_code = 1


class UsageError(MeterctlError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class DataError(MeterctlError):
    """Bad input data where the command was asked to be strict, or nothing valid to do."""

    exit_code = 65


class InputNotFoundError(MeterctlError):
    """An input file does not exist or cannot be read."""

    exit_code = 66


class OutputError(MeterctlError):
    """An output cannot be written."""

    exit_code = 73


class StoreLockedError(MeterctlError):
    """Another meterctl process holds the database (retry later)."""

    exit_code = 75


class ConfigError(MeterctlError):
    """Invalid configuration: pricebook, meters, customers."""

    exit_code = 78


class NotFoundError(DataError):
    """A record asked for by id (a dead letter, a batch) does not exist."""
