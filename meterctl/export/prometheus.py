"""Readings in the Prometheus text exposition format, through prometheus_client (its own
registry: nothing of the process's own metrics), for node_exporter's textfile collector.

Prometheus keeps every sample as a float: this is the one place meterctl's decimals become
floats, on their way out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meterctl.unbilled import REASONS

if TYPE_CHECKING:
    from meterctl.monitoring import CustomerValue, Readings

LAG_QUANTILES = ("0.5", "0.99", "1")


class _ReadingsCollector(Collector):
    def __init__(self, readings: Readings, currencies: Sequence[str]) -> None:
        self.readings = readings
        self.currencies = currencies

    def collect(self) -> Iterator[Metric]:
        r = self.readings
        ingest = r.ingest
        events = CounterMetricFamily("meterctl_events", "Lines ever ingested, by outcome.", labels=["outcome"])
        for outcome, count in (("accepted", ingest.accepted), ("duplicate", ingest.duplicates),
                               ("conflict", ingest.conflicts), ("dead_letter", ingest.dead_lettered)):
            events.add_metric([outcome], count)
        yield events
        yield GaugeMetricFamily("meterctl_duplicate_ratio",
                                "Identical resends / lines read, over the ingests of the last 24 hours.",
                                value=float(r.duplicate_ratio))
        yield GaugeMetricFamily("meterctl_dead_letter_ratio",
                                "Dead letters / lines read, over the ingests of the last 24 hours.",
                                value=float(r.dead_letter_ratio))
        lag = Metric("meterctl_ingest_lag_seconds",
                     "Ingest time minus the event's timestamp, over the events accepted in the last "
                     "24 hours.", "summary")
        if ingest.lag_seconds is not None:
            for quantile, value in zip(LAG_QUANTILES, ingest.lag_seconds, strict=True):
                lag.add_sample("meterctl_ingest_lag_seconds", {"quantile": quantile}, float(value))
        lag.add_sample("meterctl_ingest_lag_seconds_sum", {}, float(ingest.lag_sum_seconds))
        lag.add_sample("meterctl_ingest_lag_seconds_count", {}, float(ingest.recent_events))
        yield lag
        if ingest.last_ingest_at is not None:
            yield GaugeMetricFamily("meterctl_last_ingest_timestamp_seconds",
                                    "When the last ingest ran (Unix time).", value=ingest.last_ingest_at.timestamp())
        success = GaugeMetricFamily("meterctl_last_success_timestamp_seconds",
                                    "When each command last did its work (Unix time).", labels=["command"])
        for command, at in sorted(r.last_success.items()):
            success.add_metric([command], at.timestamp())
        yield success
        unbilled = GaugeMetricFamily("meterctl_unbilled_events",
                                     "Events of the month no invoice carries, by reason.", labels=["period", "reason"])
        for tallied in r.unbilled:
            for reason in REASONS:
                unbilled.add_metric([tallied.period, reason], tallied[reason].events)
        yield unbilled
        gap = GaugeMetricFamily("meterctl_reconciliation_gap_minor",
                                "What late events would change on the month's finalized invoices, in minor units.",
                                labels=["period", "currency"])
        found = r.gap_minor()
        for period in (u.period for u in r.unbilled):
            for currency in sorted(set(self.currencies) | {c for m, c in found if m == period}):
                gap.add_metric([period, currency], found.get((period, currency), 0))
        yield gap
        yield GaugeMetricFamily("meterctl_metrics_timestamp_seconds", "When these readings were taken (Unix time).",
                                value=r.at.timestamp())
        if not r.customer_series:
            return
        yield _per_customer("meterctl_usage", "Usage of each meter over the billing period open now, so far.",
                            "meter", r.usage)
        yield _per_customer("meterctl_burn_rate_deviation",
                            "Usage of the last 24 hours over the daily mean of the 7 days before (at least the floor).",
                            "meter", r.burn_rate_deviation)
        yield _per_customer("meterctl_wallet_available", "What the active prepaid credits hold.", "currency",
                            r.wallet_available)
        yield _per_customer("meterctl_entitlement_usage_ratio", "Usage of a metered feature over its limit.", "feature",
                            r.entitlement_usage_ratio)


def _per_customer(name: str, documentation: str, key: str, values: Sequence[CustomerValue]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["customer", key])
    for found in values:
        family.add_metric([found.customer_id, found.key], float(found.value))
    return family


def exposition(readings: Readings, currencies: Sequence[str]) -> bytes:
    """The readings as Prometheus text (`currencies`: those a gap is reported in, 0 or not)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReadingsCollector(readings, currencies))
    return generate_latest(registry)
