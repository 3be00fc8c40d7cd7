-- Decide the fate of every valid line in `stage` against what is stored.
--
-- For each event_id the reference payload is the stored one (the first accepted version
-- stays billed) or, for a new id, that of its first line in this chunk. The first line
-- of a new id is accepted; any other line with the reference hash is an identical
-- duplicate, and one with another hash is a conflict.
--
-- The join reads only (event_id, payload_hash, batch_id, line_no) of the stored events; the
-- hash table is built on the chunk's ids, so memory follows the chunk, not the history.
CREATE OR REPLACE TEMP TABLE classified AS
WITH firsts AS (
    SELECT event_id, min(line_no) AS first_line, arg_min(payload_hash, line_no) AS first_hash
    FROM stage
    WHERE reason IS NULL
    GROUP BY event_id
),
reference AS (
    SELECT
        f.event_id,
        f.first_line,
        s.event_id IS NOT NULL AS is_stored,
        coalesce(s.payload_hash, f.first_hash) AS ref_hash,
        coalesce(s.batch_id, $batch_id) AS ref_batch_id,
        coalesce(s.line_no, f.first_line) AS ref_line_no
    FROM firsts AS f
    LEFT JOIN events AS s ON s.event_id = f.event_id
)
SELECT
    st.line_no,
    st.payload_hash,
    r.ref_hash,
    r.ref_batch_id,
    r.ref_line_no,
    st.event_id,
    CASE
        WHEN NOT r.is_stored AND st.line_no = r.first_line THEN 'accepted'
        WHEN st.payload_hash = r.ref_hash THEN 'duplicate'
        ELSE 'conflict'
    END AS outcome
FROM stage AS st
JOIN reference AS r ON r.event_id = st.event_id
WHERE st.reason IS NULL
