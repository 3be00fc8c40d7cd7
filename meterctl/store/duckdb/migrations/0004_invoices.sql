-- Invoices: one per customer per billing period, in revisions. A draft may be regenerated
-- (deleted and written again); a finalized revision is never changed or deleted. Late
-- events for a finalized period make a new revision that supersedes it.

CREATE TABLE invoices (
    invoice_id        VARCHAR NOT NULL,     -- <customer>-<period start YYYYMMDD>-r<revision>
    customer_id       VARCHAR NOT NULL,
    customer_version  INTEGER NOT NULL,     -- the customers version it was billed from
    customer_name     VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    timezone          VARCHAR NOT NULL,
    period_start      DATE NOT NULL,        -- local dates [start, end)
    period_end        DATE NOT NULL,
    revision          INTEGER NOT NULL,     -- 1, 2, ... per customer and period
    status            VARCHAR NOT NULL,     -- draft | finalized (superseded: a later revision is finalized)
    number            VARCHAR,              -- INV-<year>-<6 digits> once finalized: sequential, gap-free
    number_year       INTEGER,
    number_seq        INTEGER,
    supersedes        VARCHAR,              -- the finalized revision this one replaces
    rating_run_id     BIGINT NOT NULL,
    subtotal_minor    BIGINT NOT NULL,      -- Σ rounded lines
    credits_minor     BIGINT NOT NULL,
    tax_minor         BIGINT NOT NULL,
    total_minor       BIGINT NOT NULL,      -- subtotal − credits + tax, never below zero
    delta_minor       BIGINT,               -- total minus the superseded revision's total
    content_hash      VARCHAR NOT NULL,     -- of the lines and totals: equal = nothing changed
    created_at        TIMESTAMPTZ NOT NULL,
    finalized_at      TIMESTAMPTZ,
    billed_until      DATE NOT NULL         -- end of the last billed day: the period's end, or the
                                            -- end of a subscription that stopped inside it
);

CREATE TABLE invoice_lines (
    invoice_id        VARCHAR NOT NULL,
    line_no           INTEGER NOT NULL,
    rating_run_id     BIGINT NOT NULL,      -- the rated record behind the line
    rated_line_no     INTEGER NOT NULL,
    kind              VARCHAR NOT NULL,     -- fee | usage | minimum | maximum
    name              VARCHAR NOT NULL,
    meter             VARCHAR,
    plan              VARCHAR NOT NULL,
    version           INTEGER NOT NULL,
    pricebook_hash    VARCHAR NOT NULL,
    segment_start     DATE NOT NULL,
    segment_end       DATE NOT NULL,
    window_start      TIMESTAMPTZ NOT NULL,
    window_end        TIMESTAMPTZ NOT NULL,
    dimensions        JSON NOT NULL,
    quantity          DECIMAL(38, 18) NOT NULL,
    unit_price        DECIMAL(38, 18),
    tiers             JSON NOT NULL,
    proration         VARCHAR,
    precise_amount    VARCHAR NOT NULL,
    amount            DECIMAL(38, 18) NOT NULL,
    amount_minor      BIGINT NOT NULL,
    unmeterable       BIGINT NOT NULL
);
