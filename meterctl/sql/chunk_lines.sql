-- The lines of the current JSONL chunk (registered as `chunk(line_no, raw BLOB)`):
-- decoded as UTF-8 where they are valid, blank lines left out (they are counted apart).
CREATE OR REPLACE TEMP VIEW chunk_lines AS
SELECT line_no, txt, CASE WHEN txt IS NULL THEN CAST(raw AS VARCHAR) END AS raw
FROM (SELECT line_no, raw, TRY(decode(raw)) AS txt FROM chunk)
WHERE txt IS NULL OR NOT regexp_full_match(txt, '[ \t\r\n\f\v]*')
