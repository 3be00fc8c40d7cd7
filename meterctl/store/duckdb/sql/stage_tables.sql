-- Work tables that outlive a chunk, created once per ingest.
--
-- `slow_stage` holds the lines of the current chunk that stage_lines.sql judged: one row per
-- line, with either `reason` (why it goes to the dead letters, with its raw text) or the
-- normalised event. It is emptied before each chunk; a chunk whose lines all took the fast
-- path leaves it empty without running stage_lines.sql at all.
CREATE OR REPLACE TEMP TABLE slow_stage (
    line_no     BIGINT,
    reason      VARCHAR,
    raw         VARCHAR,
    event_id    VARCHAR,
    customer_id VARCHAR,
    event_name  VARCHAR,
    ts          TIMESTAMPTZ,
    quantity    DECIMAL(38, 18),
    properties  JSON
);
