-- Decide the fate of every valid line in `stage` against what is stored.
--
-- Most lines carry an id seen for the first time: they are accepted without further work.
-- Only ids that repeat inside the chunk or are already stored get a reference version: the
-- stored one (the first accepted version stays billed) or else the id's first line in this
-- chunk. A repeat whose canonical payload equals the reference is an identical duplicate;
-- any other is a conflict.
--
-- Candidates are found by the 64-bit key hash (events.id_hash, see key_hashes.py): the
-- stored history is read one fixed-width column at a time, and full ids are compared only
-- for lines whose hash repeats or matches a stored one. A hash collision costs a closer
-- look, never a wrong outcome.

-- Stored events that may share an id with this chunk (usually none or few): their rowids
-- first, reading only the hash column, then those rows alone.
CREATE OR REPLACE TEMP TABLE stored_matches AS
SELECT e.rowid AS stored_row
FROM events AS e
SEMI JOIN (SELECT id_hash FROM stage WHERE reason IS NULL) AS s ON s.id_hash = e.id_hash;

CREATE OR REPLACE TEMP TABLE stored_candidates AS
SELECT event_id, id_hash, customer_id, event_name, ts, quantity, properties, batch_id, line_no
FROM events
WHERE rowid IN (SELECT stored_row FROM stored_matches);

CREATE OR REPLACE TEMP TABLE suspect_hashes AS
SELECT id_hash FROM stage WHERE reason IS NULL GROUP BY id_hash HAVING count(*) > 1
UNION
SELECT id_hash FROM stored_candidates;

CREATE OR REPLACE TEMP TABLE keyed AS
SELECT event_id, min(line_no) AS first_line, count(*) AS copies
FROM stage SEMI JOIN suspect_hashes USING (id_hash)
WHERE reason IS NULL
GROUP BY event_id;

CREATE OR REPLACE TEMP TABLE refs AS
SELECT
    k.event_id, k.first_line, true AS is_stored,
    e.customer_id, e.event_name, e.ts, e.quantity, e.properties,
    e.batch_id AS ref_batch_id, e.line_no AS ref_line_no
FROM keyed AS k
JOIN stored_candidates AS e ON e.event_id = k.event_id;

INSERT INTO refs
SELECT
    k.event_id, k.first_line, false AS is_stored,
    s.customer_id, s.event_name, s.ts, s.quantity, s.properties,
    $batch_id AS ref_batch_id, s.line_no AS ref_line_no
FROM keyed AS k
JOIN stage AS s ON s.line_no = k.first_line
WHERE k.copies > 1
  AND k.event_id NOT IN (SELECT event_id FROM refs);

-- Lines whose id has a reference and that are not themselves the accepted first line.
CREATE OR REPLACE TEMP TABLE repeats AS
SELECT
    s.line_no, s.event_id, r.ref_batch_id, r.ref_line_no, s.ts,
    CASE
        WHEN s.customer_id = r.customer_id AND s.event_name = r.event_name AND s.ts = r.ts
             AND s.quantity IS NOT DISTINCT FROM r.quantity
             AND (s.properties IS NOT DISTINCT FROM r.properties
                  OR mc_canonical_object(s.properties) IS NOT DISTINCT FROM mc_canonical_object(r.properties))
            THEN 'duplicate'
        ELSE 'conflict'
    END AS outcome,
    CASE WHEN outcome = 'conflict'
         THEN mc_payload_hash(r.customer_id, r.event_name, r.ts, r.quantity, r.properties) END AS billed_hash,
    CASE WHEN outcome = 'conflict'
         THEN mc_payload_hash(s.customer_id, s.event_name, s.ts, s.quantity, s.properties) END AS new_hash
FROM (SELECT * FROM stage SEMI JOIN suspect_hashes USING (id_hash) WHERE reason IS NULL) AS s
JOIN refs AS r ON r.event_id = s.event_id
WHERE r.is_stored OR s.line_no <> r.first_line;
