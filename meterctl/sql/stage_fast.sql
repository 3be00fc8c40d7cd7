-- Validate and normalise one chunk of input lines, fast path first.
--
-- Input: `chunk_text(line_no BIGINT, txt VARCHAR, raw VARCHAR)` for every line of the chunk
-- (`txt` NULL for a line that is not valid UTF-8, `raw` then holds it with its bytes
-- escaped). Parameters: $now, $max_future_seconds, $max_age_seconds (NULL = no lower bound),
-- $fast_path (false leaves every line to stage_lines.sql).
--
-- Most lines are plain, well-formed events. For those, one parse takes out the fields and a
-- few cheap tests prove that the full rule set of stage_lines.sql would accept the line
-- unchanged; the values are then the very expressions stage_lines.sql would compute. Every
-- test is conservative: a line that fails any of them (malformed, CloudEvents, a string or
-- exponent quantity, an epoch or escaped timestamp, ...) is left for stage_lines.sql, which
-- decides its fate and reason exactly as before. The text of such a line is kept here; the
-- text of a clean line is not copied.
CREATE OR REPLACE TEMP TABLE fast AS
WITH parsed AS (
    SELECT
        line_no, txt, raw,
        CASE WHEN starts_with(txt, '{') AND json_valid(txt)
             THEN json_transform(txt,
                '{"event_id":"JSON","customer_id":"JSON","event_name":"JSON","timestamp":"JSON","quantity":"JSON","properties":"JSON","specversion":"JSON"}')
        END AS f
    FROM chunk_text
),
fields AS (
    SELECT
        line_no, txt, raw,
        -- A top-level "specversion" makes the line a CloudEvent candidate: left to stage_lines.sql.
        -- (That file reads a line that only mentions "specversion" elsewhere with json_extract, and
        -- json_transform takes out the same values, the first of duplicate keys included.)
        f IS NOT NULL AND f.specversion IS NULL AS plain,
        f.event_id AS j_event_id, f.customer_id AS j_customer, f.event_name AS j_name,
        f."timestamp" AS j_ts, f.quantity AS j_quantity, f.properties AS j_properties
    FROM parsed
),
valued AS (
    SELECT
        *,
        CASE WHEN starts_with(j_event_id, '"') THEN j_event_id ->> '$' END AS event_id,
        CASE WHEN starts_with(j_customer, '"') THEN j_customer ->> '$' END AS customer_id,
        CASE WHEN starts_with(j_name, '"') THEN j_name ->> '$' END AS event_name,
        -- mc_rfc3339 of the string inside the quotes, for the common shapes only: the pattern
        -- implies mc_rfc3339's shape test, and leaves no escape and no lower-case letter, so
        -- the string is the quoted text as it is and upper() would not change it.
        CASE WHEN strlen(j_ts) BETWEEN 18 AND 42
                  AND regexp_full_match(j_ts, '"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}[0-9:.+Z -]*"')
             THEN TRY_CAST(substring(j_ts, 2, strlen(j_ts) - 2) AS TIMESTAMPTZ)
        END AS ts,
        -- A plain JSON number shorter than 20 characters without exponent always fits.
        CASE WHEN NOT starts_with(j_quantity, '"') AND length(j_quantity) < 20
                  AND NOT contains(j_quantity, 'e') AND NOT contains(j_quantity, 'E')
             THEN TRY_CAST(CAST(j_quantity AS VARCHAR) AS DECIMAL(38, 18))
        END AS q
    FROM fields
),
judged AS (
    SELECT
        *,
        coalesce(
            $fast_path AND plain AND event_id IS NOT NULL AND (length(j_event_id) >= 16 OR trim(event_id) <> '')
            AND customer_id IS NOT NULL AND (length(j_customer) >= 16 OR trim(customer_id) <> '')
            AND event_name IS NOT NULL AND (length(j_name) >= 16 OR trim(event_name) <> '')
            AND ts IS NOT NULL
            AND ts <= CAST($now AS TIMESTAMPTZ) + to_seconds(CAST($max_future_seconds AS BIGINT))
            AND ($max_age_seconds IS NULL
                 OR ts >= CAST($now AS TIMESTAMPTZ) - to_seconds(CAST($max_age_seconds AS BIGINT)))
            AND (mc_absent(j_quantity) OR q IS NOT NULL)
            AND (mc_absent(j_properties) OR starts_with(j_properties, '{')),
            false) AS clean
    FROM valued
)
SELECT
    line_no,
    clean,
    CASE WHEN NOT clean THEN txt END AS txt,
    CASE WHEN NOT clean THEN raw END AS raw,
    CASE WHEN clean THEN event_id END AS event_id,
    CASE WHEN clean THEN customer_id END AS customer_id,
    CASE WHEN clean THEN event_name END AS event_name,
    CASE WHEN clean THEN ts END AS ts,
    CASE WHEN clean THEN q END AS quantity,
    CASE WHEN clean AND NOT mc_absent(j_properties) AND j_properties <> '{}'
         THEN CAST(j_properties AS JSON) END AS properties
FROM judged;

-- The lines the fast path did not settle, blank lines left out (they are counted apart):
-- the input of stage_lines.sql.
CREATE OR REPLACE TEMP VIEW chunk_lines AS
SELECT line_no, txt, raw
FROM fast
WHERE NOT clean AND (txt IS NULL OR NOT regexp_full_match(txt, '[ \t\r\n\f\v]*'));
