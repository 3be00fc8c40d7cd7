-- Customers and their subscriptions, as imported from a CRM export. Append-only: an import
-- that changes a customer adds a new version; history is never overwritten.
CREATE TABLE customer_versions (
    customer_id     VARCHAR NOT NULL,
    version         INTEGER NOT NULL,      -- 1, 2, ... per customer
    name            VARCHAR NOT NULL,
    currency        VARCHAR NOT NULL,
    timezone        VARCHAR NOT NULL,
    billing         VARCHAR NOT NULL,      -- calendar | anniversary
    subscriptions   JSON NOT NULL,         -- [{"plan", "start", "end"}], ordered by start
    content_sha256  VARCHAR NOT NULL,      -- of the canonical record; equal = unchanged
    source          VARCHAR NOT NULL,
    imported_at     TIMESTAMPTZ NOT NULL
);
