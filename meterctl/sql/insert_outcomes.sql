-- Write the outcome of one classified chunk. Parameters: $batch_id, $now.
INSERT INTO events
SELECT st.event_id, st.customer_id, st.event_name, st.ts, st.quantity, st.properties,
       st.payload_hash, $batch_id, st.line_no
FROM classified AS c
JOIN stage AS st ON st.line_no = c.line_no
WHERE c.outcome = 'accepted';

INSERT INTO conflicts
SELECT
    (SELECT coalesce(max(conflict_id), 0) FROM conflicts) + row_number() OVER (ORDER BY c.line_no),
    c.event_id, c.ref_hash, c.ref_batch_id, c.ref_line_no, c.payload_hash, $batch_id, c.line_no,
    regexp_replace(l.txt, '\r?\n$', ''), $now
FROM classified AS c
JOIN chunk_lines AS l ON l.line_no = c.line_no
WHERE c.outcome = 'conflict';

INSERT INTO dead_letters
SELECT
    (SELECT coalesce(max(dead_letter_id), 0) FROM dead_letters) + row_number() OVER (ORDER BY line_no),
    $batch_id, line_no, reason, event_id, regexp_replace(raw, '\r?\n$', ''), $now
FROM stage
WHERE reason IS NOT NULL;
