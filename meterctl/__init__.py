"""meterctl: usage-event logs in, auditable invoices out.

    import meterctl

    with meterctl.Session(db="meterctl.duckdb", config="pricebooks") as s:
        s.ingest(["events/"])
        run = s.invoice(period="2026-10")

See `meterctl.session.Session` for every operation; the command line is built on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Session", "__version__"]

if TYPE_CHECKING:
    from meterctl.session import Session


def __getattr__(name: str) -> Any:
    # Imported on first use: `meterctl.errors` and friends should not pull the session in.
    if name == "Session":
        from meterctl.session import Session

        return Session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
