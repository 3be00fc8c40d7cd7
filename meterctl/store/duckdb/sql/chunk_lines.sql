-- The lines of the current JSONL chunk (registered as `chunk(line_no, raw BLOB)`), decoded
-- as UTF-8 where they are valid (`txt`; NULL otherwise, and `raw` then holds the line with
-- its invalid bytes escaped). Blank lines are kept here; stage_fast.sql sets them apart.
CREATE OR REPLACE TEMP VIEW chunk_text AS
SELECT line_no, txt, CASE WHEN txt IS NULL THEN CAST(raw AS VARCHAR) END AS raw
FROM (SELECT line_no, raw, TRY(decode(raw)) AS txt FROM chunk)
