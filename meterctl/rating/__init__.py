"""Usage × pricebook → rated lines, deterministically.

- `lines`: the rated line and its canonical encoding (what a run hash covers);
- `plan`: which segments a month rates, with which pricebook version;
- `price`: pricing those segments from their usage;
- `record`: recording a run, or finding the one that already holds the lines;
- `scope`: the stretches of time a month accounts for, per customer;
- `month`: the whole of it for one month (`price_month`, `rate`).

The names below are imported on first use: the ledger reads rated lines back without
loading pricing (and pydantic with it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterctl.rating.lines import LineContext, RatedLine, run_hash
    from meterctl.rating.month import PricedMonth, RatingResult, price_month, rate
    from meterctl.rating.plan import Job, customer_cycle, full_period_days, plan_jobs
    from meterctl.rating.record import record_month

_WHERE = {
    "LineContext": "lines", "RatedLine": "lines", "run_hash": "lines",
    "PricedMonth": "month", "RatingResult": "month", "price_month": "month", "rate": "month",
    "Job": "plan", "customer_cycle": "plan", "full_period_days": "plan", "plan_jobs": "plan",
    "record_month": "record",
}

__all__ = [
    "Job", "LineContext", "PricedMonth", "RatedLine", "RatingResult", "customer_cycle", "full_period_days", "plan_jobs", "price_month", "rate", "record_month", "run_hash",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
