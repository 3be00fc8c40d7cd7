-- A 64-bit hash of event_id beside it. Deduplication semi-joins a chunk's ids against the
-- stored history on this fixed-width column (8 bytes read per stored event instead of its
-- id string, so the cost stays flat as the history grows), then compares the full ids of
-- the few matches. DuckDB does not promise that hash() stays the same across its versions:
-- `event_key_hash` records the hashes of fixed probe strings under which the column was
-- computed, and ingest recomputes the column when they differ (meterctl/store/duckdb/key_hashes.py).
ALTER TABLE events ADD COLUMN id_hash UBIGINT;

CREATE TABLE event_key_hash (
    probe       VARCHAR NOT NULL,      -- hash() of the probe strings, as computed then
    computed_at TIMESTAMPTZ NOT NULL
);
