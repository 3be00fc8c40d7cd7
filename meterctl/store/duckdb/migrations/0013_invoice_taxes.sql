-- The taxes of each invoice revision, per tax code: written with the invoice (a draft's go
-- with it when it is regenerated). The rate is kept as it was applied, so that the invoice
-- can be derived again whatever taxes.yaml says later.
CREATE TABLE invoice_taxes (
    invoice_id      VARCHAR NOT NULL,
    code            VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,
    rate            DECIMAL(38, 18) NOT NULL,
    taxable_minor   BIGINT NOT NULL,        -- Σ net of the taxed lines, after credits
    amount_minor    BIGINT NOT NULL
);
