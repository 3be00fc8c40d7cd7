-- Rating: pricebook versions frozen by content hash, rating runs and their rated lines.
-- All append-only: a run never changes; rating again adds a run (with the same run_hash
-- when nothing changed).

-- The first time a pricebook version rates anything, its content is kept here; the file
-- may not change afterwards (a price change is a new version).
CREATE TABLE pricebook_versions (
    plan            VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    content_hash    VARCHAR NOT NULL,       -- sha256 of the canonical content
    canonical       JSON NOT NULL,          -- the canonical content itself (decimals as strings)
    source_path     VARCHAR NOT NULL,
    source_text     VARCHAR NOT NULL,       -- the YAML file as it was
    frozen_at       TIMESTAMPTZ NOT NULL,
    first_run_id    BIGINT NOT NULL
);

CREATE TABLE rating_runs (
    run_id          BIGINT NOT NULL,        -- 1, 2, ...
    period          VARCHAR NOT NULL,       -- the month asked for, YYYY-MM
    customers       JSON,                   -- the --customer filter, or null for everyone
    run_hash        VARCHAR NOT NULL,       -- sha256 of the lines: same inputs, same hash
    line_count      BIGINT NOT NULL,
    meters          JSON NOT NULL,          -- the meter definitions used, to trace lines to events
    as_of_batch     BIGINT NOT NULL,        -- the last ingest batch stored when it rated (0: none)
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE rated_lines (
    run_id          BIGINT NOT NULL,
    line_no         INTEGER NOT NULL,       -- 1, 2, ... within the run
    customer_id     VARCHAR NOT NULL,
    currency        VARCHAR NOT NULL,
    timezone        VARCHAR NOT NULL,
    period_start    DATE NOT NULL,          -- the billing period, local dates [start, end)
    period_end      DATE NOT NULL,
    segment_start   DATE NOT NULL,          -- the part billed on this plan (a plan change splits a period)
    segment_end     DATE NOT NULL,
    window_start    TIMESTAMPTZ NOT NULL,   -- the usage window behind the line: the segment's instants
    window_end      TIMESTAMPTZ NOT NULL,
    plan            VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    pricebook_hash  VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,       -- fee | usage | minimum | maximum
    name            VARCHAR NOT NULL,
    meter           VARCHAR,                -- usage, minimum and maximum lines
    dimensions      JSON NOT NULL,          -- {"model": "gpt-large"} where the charge prices by it
    quantity        DECIMAL(38, 18) NOT NULL,
    unit_price      DECIMAL(38, 18),
    tiers           JSON NOT NULL,          -- tier breakdown: [{tier, lower, up_to, units, unit_price, flat_fee, amount}]
    proration       VARCHAR,                -- "days/period days" for prorated fees and limits
    precise_amount  VARCHAR NOT NULL,       -- exact, unrounded (may need more places than a DECIMAL holds)
    amount          DECIMAL(38, 18) NOT NULL,   -- rounded once, to the currency's minor units
    amount_minor    BIGINT NOT NULL,
    unmeterable     BIGINT NOT NULL         -- events in the window whose meter value was unusable
);
