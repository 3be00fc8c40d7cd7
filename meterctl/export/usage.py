"""Usage rows as a JSON-ready document, CSV or Parquet (`meterctl usage`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from meterctl.instants import IsoCache
from meterctl.io.files import write_atomically
from meterctl.pricing import text
from meterctl.usage import UsageResult

USAGE_FORMATS = ("csv", "parquet")


def usage_document(result: UsageResult) -> list[dict[str, Any]]:
    shown = IsoCache()
    return [
        {
            "customer_id": r.customer_id,
            "meter": r.meter,
            "window_start": shown[r.window_start],
            "window_end": shown[r.window_end],
            "dimensions": r.dimensions,
            "value": None if r.value is None else text(r.value),
            "unmeterable": r.unmeterable,
        }
        for r in result.rows
    ]


def write_usage(result: UsageResult, path: Path, fmt: str | None = None) -> None:
    """The rows as CSV or Parquet (`fmt`, or the file's suffix; CSV when neither says)."""
    chosen = fmt or path.suffix.lstrip(".")
    (_write_parquet if chosen == "parquet" else _write_csv)(result, path)


def _write_csv(result: UsageResult, path: Path) -> None:
    keys = sorted({k for r in result.rows for k in r.dimensions})
    shown = IsoCache()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_id", "meter", "window_start", "window_end", *keys, "value", "unmeterable"])
    for r in result.rows:
        writer.writerow([r.customer_id, r.meter, shown[r.window_start], shown[r.window_end],
                         *(r.dimensions.get(k) or "" for k in keys),
                         "" if r.value is None else text(r.value), r.unmeterable])
    def write(temporary: Path) -> None:
        temporary.write_text(buffer.getvalue(), encoding="utf-8")

    write_atomically(path, write)


def _write_parquet(result: UsageResult, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "customer_id": [r.customer_id for r in result.rows],
        "meter": [r.meter for r in result.rows],
        "window_start": pa.array([r.window_start for r in result.rows], pa.timestamp("us", "UTC")),
        "window_end": pa.array([r.window_end for r in result.rows], pa.timestamp("us", "UTC")),
        "dimensions": pa.array([list(r.dimensions.items()) for r in result.rows], pa.map_(pa.string(), pa.string())),
        "value": pa.array([r.value for r in result.rows], pa.decimal128(38, 18)),
        "unmeterable": pa.array([r.unmeterable for r in result.rows], pa.int64()),
    })
    write_atomically(path, lambda tmp: pq.write_table(table, tmp))
