"""The events behind invoice lines as JSONL (`meterctl explain --events -o FILE`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from meterctl.audit import Explanation


@dataclass(frozen=True)
class EventsExport:
    path: str
    events: int


def events_jsonl(explanation: Explanation) -> tuple[bytes, int]:
    """One JSON object per event, naming the invoice and line it is behind; and the count."""
    rows = [json.dumps({"invoice_id": explanation.invoice.invoice_id, "invoice_line": x.line.line_no,
                        **dataclasses.asdict(e)}, ensure_ascii=False)
            for x in explanation.lines for e in x.events]
    return ("\n".join(rows) + ("\n" if rows else "")).encode(), len(rows)
