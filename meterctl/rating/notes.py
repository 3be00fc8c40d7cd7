"""What a rating run reports besides its lines, recorded with it so that a run taken again
from the ledger reports the same."""

from __future__ import annotations

from dataclasses import dataclass

from meterctl.usage import OpenSession, Unmeterable


@dataclass(frozen=True)
class RunNotes:
    unmeterable: tuple[Unmeterable, ...] = ()
    open_sessions: tuple[OpenSession, ...] = ()
    # Customers whose usage could not be priced (customer_id, why): no lines, so no bill,
    # until their events are corrected; everyone else was rated.
    unpriceable: tuple[tuple[str, str], ...] = ()
