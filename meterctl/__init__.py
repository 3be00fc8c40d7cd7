"""meterctl: usage-event logs in, auditable invoices out."""

__version__ = "0.1.0"
