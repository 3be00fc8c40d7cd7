-- Write the outcome of one classified chunk. Parameters: $batch_id, $now.
INSERT INTO events (event_id, customer_id, event_name, ts, quantity, properties, batch_id, line_no, id_hash)
SELECT s.event_id, s.customer_id, s.event_name, s.ts, s.quantity, s.properties, $batch_id, s.line_no, s.id_hash
FROM stage AS s
ANTI JOIN repeats AS r ON r.line_no = s.line_no
WHERE s.reason IS NULL;

INSERT INTO conflicts
SELECT
    (SELECT coalesce(max(conflict_id), 0) FROM conflicts) + row_number() OVER (ORDER BY r.line_no),
    r.event_id, r.billed_hash, r.ref_batch_id, r.ref_line_no, r.new_hash, $batch_id, r.line_no,
    regexp_replace(l.txt, '\r?\n$', ''), $now
FROM repeats AS r
JOIN chunk_text AS l ON l.line_no = r.line_no
WHERE r.outcome = 'conflict';

-- An identical resend has the timestamp of the event it repeats.
INSERT INTO duplicate_days
SELECT $batch_id, CAST(timezone('UTC', ts) AS DATE), count(*)
FROM repeats
WHERE outcome = 'duplicate'
GROUP BY ALL;

INSERT INTO dead_letters
SELECT
    (SELECT coalesce(max(dead_letter_id), 0) FROM dead_letters) + row_number() OVER (ORDER BY line_no),
    $batch_id, line_no, reason, event_id, regexp_replace(raw, '\r?\n$', ''), $now
FROM stage
WHERE reason IS NOT NULL;
