-- Write the outcome of one classified chunk. Parameters: $batch_id, $now.
INSERT INTO events
SELECT s.event_id, s.customer_id, s.event_name, s.ts, s.quantity, s.properties, $batch_id, s.line_no
FROM stage AS s
WHERE s.reason IS NULL
  AND s.line_no NOT IN (SELECT line_no FROM repeats);

INSERT INTO conflicts
SELECT
    (SELECT coalesce(max(conflict_id), 0) FROM conflicts) + row_number() OVER (ORDER BY r.line_no),
    r.event_id, r.billed_hash, r.ref_batch_id, r.ref_line_no, r.new_hash, $batch_id, r.line_no,
    regexp_replace(l.txt, '\r?\n$', ''), $now
FROM repeats AS r
JOIN chunk_text AS l ON l.line_no = r.line_no
WHERE r.outcome = 'conflict';

INSERT INTO dead_letters
SELECT
    (SELECT coalesce(max(dead_letter_id), 0) FROM dead_letters) + row_number() OVER (ORDER BY line_no),
    $batch_id, line_no, reason, event_id, regexp_replace(raw, '\r?\n$', ''), $now
FROM stage
WHERE reason IS NOT NULL;
