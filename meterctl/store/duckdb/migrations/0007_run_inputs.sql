-- What a rating run was derived from, so that `invoice` after `rate` can take the run's lines
-- as they are instead of rating the month again: `inputs_sha256` covers the month, the
-- customer filter, every segment with its customer and pricebook versions, the meters, the
-- last ingest batch and meterctl's version (see rating._inputs_digest). `notes` keeps what
-- the run reported besides its lines (unmeterable events, open sessions). Runs recorded
-- before this migration have neither, and are never reused that way.
ALTER TABLE rating_runs ADD COLUMN inputs_sha256 VARCHAR;
ALTER TABLE rating_runs ADD COLUMN notes JSON;
