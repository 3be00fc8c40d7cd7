"""A simulation's comparison as CSV: a row per customer, then a total per currency."""

from __future__ import annotations

import csv
import io

from meterctl.simulate import SimulationResult


def simulation_csv(result: SimulationResult) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_id", "plan", "current_pricebook", "candidate_pricebook", "currency", "current", "candidate",
                     "difference"])
    for r in result.rows:
        writer.writerow([r.customer_id, r.plan, r.current_pricebook, r.candidate_pricebook, r.currency, r.current,
                         r.candidate, r.difference])
    plan = result.candidate.partition("@")[0]
    for t in result.totals:  # one row per currency: amounts in different currencies never add up
        writer.writerow(["TOTAL", plan, "", result.candidate, t.currency, t.current, t.candidate, t.difference])
    return buffer.getvalue().encode()
