-- The pricebook versions each rating run priced segments with. The lines name most of them,
-- but not a version without fees or charges (its segments give no lines): `invoice verify`
-- re-derives an invoice with exactly these versions, and `invoice` reuses a run only when
-- the month would be priced with the same ones. Runs recorded before this table existed
-- have no rows here; verify then uses the versions their lines name.
CREATE TABLE rating_run_pricebooks (
    run_id      BIGINT NOT NULL,
    plan        VARCHAR NOT NULL,
    version     INTEGER NOT NULL
);
