"""Entitlement states as one JSON document: what an API gateway loads to gate requests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from meterctl.entitlements import CheckAnswer, EntitlementState
from meterctl.instants import iso
from meterctl.pricing import text


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else text(value)


def answer_document(answer: CheckAnswer) -> dict[str, Any]:
    """A check answer as JSON-ready data (decimals as strings, instants in UTC)."""
    return {
        "customer_id": answer.customer_id, "feature": answer.feature, "allowed": answer.allowed,
        "reason": answer.reason, "kind": answer.kind,
        "value": _decimal(answer.value) if isinstance(answer.value, Decimal) else answer.value,
        "usage": _decimal(answer.usage), "limit": _decimal(answer.limit), "remaining": _decimal(answer.remaining),
        "soft": answer.soft,
        "window": ({"start": iso(answer.window[0]), "end": iso(answer.window[1]) if answer.window[1] else None}
                   if answer.window else None),
        "pricebook": answer.pricebook,
    }


def state_document(state: EntitlementState) -> dict[str, Any]:
    return {**answer_document(state.answer), "state": state.state, "percent": _decimal(state.percent),
            "alert": _decimal(state.alert)}


def snapshot(states: Sequence[EntitlementState], at: datetime) -> bytes:
    """{"at": ..., "entitlements": [...]}, one customer × feature per line, by customer and feature."""
    rows = sorted(states, key=lambda s: (s.answer.customer_id, s.answer.feature))
    body = ",\n".join(json.dumps(state_document(s), ensure_ascii=False, separators=(",", ":")) for s in rows)
    return ('{"at":' + json.dumps(iso(at)) + ',"entitlements":[\n' + body + ("\n" if body else "") + "]}\n").encode()
