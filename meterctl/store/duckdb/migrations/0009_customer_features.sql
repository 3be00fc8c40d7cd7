-- Per-customer overrides of their plans' features (a limit, a value, soft or hard), as the
-- customers file gives them: {"tokens": {"limit": "5000000"}, "seats": {"value": 25}}.
-- Versioned with the customer; NULL for customers imported before (and without any).
ALTER TABLE customer_versions ADD COLUMN features JSON;
