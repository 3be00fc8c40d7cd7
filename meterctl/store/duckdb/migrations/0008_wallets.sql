-- Prepaid credits: the grants made to customers' wallets, and the wallet ledger. Both are
-- append-only: a grant is never changed (a void is an entry of the ledger), and every
-- balance is the sum of entries.
CREATE TABLE wallet_grants (
    grant_id          VARCHAR NOT NULL,         -- <customer>-g<n>: the customer's n-th grant
    customer_id       VARCHAR NOT NULL,
    currency          VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,
    amount            DECIMAL(38, 18) NOT NULL, -- the money granted (credits × rate when given so)
    credits           DECIMAL(38, 18),
    rate              DECIMAL(38, 18),          -- money per credit
    priority          INTEGER,                  -- lower burns first; NULL after every set one
    effective_at      TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ,
    applies_to        VARCHAR[] NOT NULL,       -- ['usage'], ['all'] or meter names
    reason            VARCHAR,
    idempotency_key   VARCHAR,                  -- one grant per key, ever
    request_sha256    VARCHAR NOT NULL,         -- what the key was first given with
    source            VARCHAR NOT NULL,         -- command, a grants file, or a plan version
    sequence          BIGINT NOT NULL,          -- the order grants were made in (burn order's last key)
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE wallet_entries (
    entry_id          BIGINT NOT NULL,          -- the order entries were written in
    customer_id       VARCHAR NOT NULL,
    grant_id          VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,         -- grant | void | debit | reversal | expiry
    amount            DECIMAL(38, 18) NOT NULL, -- signed: + grant, reversal; − void, debit, expiry
    effective_at      TIMESTAMPTZ NOT NULL,     -- when it takes effect
    invoice_id        VARCHAR,                  -- debit, reversal: the invoice revision
    created_at        TIMESTAMPTZ NOT NULL
);

-- What credits each invoice revision takes, line by line: written with the invoice (a
-- draft's go with it when it is regenerated); a finalized revision's match its debits.
CREATE TABLE invoice_credits (
    invoice_id        VARCHAR NOT NULL,
    grant_id          VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,         -- the grant's name, as the invoice shows it
    line_no           INTEGER NOT NULL,         -- the invoice line it pays
    applied_minor     BIGINT NOT NULL,
    grant_left        DECIMAL(38, 18) NOT NULL  -- what the grant held after this invoice took from it
);
