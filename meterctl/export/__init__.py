"""Invoices → JSON, CSV, Parquet and HTML files, byte for byte reproducible.

Nothing that depends on when or in which order things were computed goes into a file:
no export time, no creation times, no rating-run ids; invoices are ordered by period and
customer, lines by number. Two exports of the same invoices are identical, and so are
exports from a store rebuilt from the same event files ingested in another order.

- JSON: money in integer minor units, decimals (quantities, prices) as strings.
- CSV: one row per invoice line; money in major units at the currency's scale, with the
  currency code; the invoice's totals repeated on each of its rows.
- Parquet: the same rows with decimal columns.
- HTML: one self-contained, printable page per invoice, in a directory that holds this
  export's pages and no others.

Every file is written to a temporary file and renamed, and the HTML directory is built
beside its place and renamed into it (see io/files.py): an export completes or leaves what
was there before.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meterctl.errors import OutputError, Param, UsageError
from meterctl.export.documents import invoice_document, to_json
from meterctl.export.pages import to_html
from meterctl.export.tables import to_csv, write_parquet
from meterctl.invoices import Invoice
from meterctl.io.files import write_bytes_atomically, write_directory_atomically

FORMATS = ("json", "csv", "parquet", "html")

__all__ = ["FORMATS", "ExportResult", "export", "invoice_document", "to_csv", "to_html", "to_json", "write_parquet"]


@dataclass(frozen=True)
class ExportResult:
    format: str
    files: tuple[str, ...]
    invoices: int


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _html_names(invoices: Sequence[Invoice]) -> list[str]:
    """A file name per invoice, inside the directory and distinct from the others.

    A customer id is data from a CRM: "a/b" or "../x" must stay a name inside the directory,
    and must not take the file of "a_b". A name that had to be changed (a character outside
    A-Z a-z 0-9 . _ -, or a leading dot that would hide it), or that differs from another
    only in case (one file on macOS and Windows), ends with a short hash of the invoice's
    number or id instead.
    """
    names, taken = [], set()
    for invoice in invoices:
        given = invoice.number or invoice.invoice_id
        name = _UNSAFE.sub("_", given)
        name = "_" + name[1:] if name.startswith(".") else name
        if name != given or name.casefold() in taken:
            name += "-" + hashlib.sha256(given.encode()).hexdigest()[:10]
        if name.casefold() in taken:
            raise OutputError(f"two invoices would be written to the same file {name}.html (one is {given})")
        taken.add(name.casefold())
        names.append(name + ".html")
    return names


def export(invoices: Sequence[Invoice], fmt: str, output: Path | str) -> ExportResult:
    """Write `invoices` as `fmt` to `output`: a file, or a directory (created if missing).

    HTML always writes one file per invoice into a directory; the other formats write one
    file (`invoices.<fmt>` when `output` is an existing directory).
    """
    if fmt not in FORMATS:
        raise UsageError(Param("format"), f" must be one of {', '.join(FORMATS)}, not '{fmt}'")
    wants_directory = isinstance(output, str) and output.endswith(("/", "\\"))
    output = Path(output)
    if fmt == "html":
        # All pages or none: built beside the directory and renamed into place.
        pages = [(name, to_html(invoice)) for invoice, name in zip(invoices, _html_names(invoices), strict=True)]
        written = write_directory_atomically(output, pages)
        return ExportResult(fmt, tuple(str(output / path.name) for path in written), len(invoices))
    if wants_directory:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{output}: cannot create the directory: {error}") from error
    path = output / f"invoices.{fmt}" if output.is_dir() else output
    if fmt == "json":
        write_bytes_atomically(path, to_json(invoices))
    elif fmt == "csv":
        write_bytes_atomically(path, to_csv(invoices))
    else:
        write_parquet(invoices, path)
    return ExportResult(fmt, (str(path),), len(invoices))
