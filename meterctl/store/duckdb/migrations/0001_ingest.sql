-- Ingestion: the batch manifest, accepted events, conflicts and dead letters.
-- Every table here is append-only. No PRIMARY KEY / UNIQUE constraints: they make bulk
-- loads several times slower; deduplication joins each batch against what is stored.

-- One row per input file that was ingested (committed together with its effects).
CREATE TABLE ingest_batches (
    batch_id        BIGINT NOT NULL,
    source          VARCHAR NOT NULL,      -- the path as given, or '-' for standard input
    source_path     VARCHAR,               -- absolute path (NULL for standard input)
    format          VARCHAR NOT NULL,      -- jsonl | jsonl.gz | parquet
    content_sha256  VARCHAR NOT NULL,      -- of the decompressed content; a repeat is skipped
    size_bytes      BIGINT NOT NULL,
    mtime_ns        BIGINT,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    lines_read      BIGINT NOT NULL,       -- non-blank lines (or Parquet rows)
    blank_lines     BIGINT NOT NULL,
    accepted        BIGINT NOT NULL,
    duplicates      BIGINT NOT NULL,
    conflicts       BIGINT NOT NULL,
    dead_lettered   BIGINT NOT NULL,
    meterctl_version VARCHAR NOT NULL
);

CREATE TABLE events (
    event_id        VARCHAR NOT NULL,      -- idempotency key; for CloudEvents: source || ' ' || id
    customer_id     VARCHAR NOT NULL,
    event_name      VARCHAR NOT NULL,
    ts              TIMESTAMPTZ NOT NULL,
    quantity        DECIMAL(38, 18),       -- NULL when the event carries none
    properties      JSON,                  -- NULL when absent or empty
    batch_id        BIGINT NOT NULL,
    line_no         BIGINT NOT NULL
);

CREATE TABLE conflicts (
    conflict_id         BIGINT NOT NULL,
    event_id            VARCHAR NOT NULL,
    billed_hash         VARCHAR NOT NULL,  -- md5 of the canonical payload that stays billed
    billed_batch_id     BIGINT NOT NULL,
    billed_line_no      BIGINT NOT NULL,
    new_hash            VARCHAR NOT NULL,  -- md5 of the canonical payload that was refused
    batch_id            BIGINT NOT NULL,
    line_no             BIGINT NOT NULL,
    raw                 VARCHAR NOT NULL,
    detected_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE dead_letters (
    dead_letter_id  BIGINT NOT NULL,
    batch_id        BIGINT NOT NULL,
    line_no         BIGINT NOT NULL,
    reason          VARCHAR NOT NULL,
    event_id        VARCHAR,               -- when it could be read
    raw             VARCHAR NOT NULL,      -- the line as read (invalid UTF-8 bytes escaped as \xNN)
    created_at      TIMESTAMPTZ NOT NULL
);
