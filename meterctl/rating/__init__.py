"""Usage × pricebook → rated lines, deterministically.

- `lines`: the rated line and its canonical encoding (what a run hash covers);
- `plan`: which segments a month rates, with which pricebook version;
- `price`: pricing those segments from their usage;
- `record`: recording a run, or finding the one that already holds the lines;
- `unbilled`: metered events no invoice will carry;
- `month`: the whole of it for one month (`price_month`, `rate`).
"""

from meterctl.rating.lines import LineContext, RatedLine, run_hash
from meterctl.rating.month import PricedMonth, RatingResult, price_month, rate
from meterctl.rating.plan import Job, customer_cycle, full_period_days, plan_jobs
from meterctl.rating.record import record_month

__all__ = [
    "Job", "LineContext", "PricedMonth", "RatedLine", "RatingResult", "customer_cycle", "full_period_days",
    "plan_jobs", "price_month", "rate", "record_month", "run_hash",
]
