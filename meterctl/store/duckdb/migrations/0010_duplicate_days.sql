-- Identical resends dropped by each ingest batch, per UTC day of the event they repeat, so
-- that reconciliation can count a month's duplicates (a batch holding only resends brings
-- no event of its own to date it by). Batches ingested before this table existed have no
-- rows here: their duplicates are counted in ingest_batches only.
CREATE TABLE duplicate_days (
    batch_id    BIGINT NOT NULL,
    day         DATE NOT NULL,          -- UTC
    duplicates  BIGINT NOT NULL
);
