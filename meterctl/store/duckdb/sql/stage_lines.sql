-- Validate and normalise one chunk of input lines.
--
-- Input: `chunk_lines(line_no BIGINT, txt VARCHAR, raw VARCHAR)`, the lines stage_fast.sql
-- did not settle: `txt` is NULL for a line that is not valid UTF-8 (`raw` then holds it with
-- its bytes escaped); blank lines are already left out. Parameters: $now (ingest time), $max_future_seconds, $max_age_seconds
-- (NULL = no lower bound).
--
-- Output: rows added to `slow_stage` (stage_tables.sql; emptied before each chunk), one per
-- line, with either `reason` (why it goes to the dead letters, with its raw text) or the
-- normalised event. Every JSON document is parsed once to check it and once to take its
-- fields out; the rest works on the small extracted values.
INSERT INTO slow_stage BY NAME
WITH unmarked AS (
    -- A byte-order mark starts a line when files were concatenated (cat a.jsonl b.jsonl): it
    -- is read past, as at the start of a file, and kept in the raw text of a dead letter.
    SELECT
        line_no,
        CASE WHEN starts_with(txt, chr(65279)) THEN txt[2:] ELSE txt END AS txt,
        CASE WHEN starts_with(txt, chr(65279)) THEN coalesce(raw, txt) ELSE raw END AS raw
    FROM chunk_lines
),
checked AS (
    SELECT
        line_no, txt, raw,
        txt IS NOT NULL AND json_valid(txt) AS is_json
    FROM unmarked
),
shaped AS (
    SELECT
        *,
        is_json AND (starts_with(txt, '{') OR regexp_matches(txt, '^[ \t\r\n]*\{')) AS is_object,
        is_json AND contains(txt, '"specversion"') AS maybe_ce
    FROM checked
),
-- The plain event contract: one parse takes out every field as JSON text.
plain AS (
    SELECT
        line_no, txt, raw, is_json, is_object, false AS is_ce,
        f.event_id AS j_event_id, NULL AS j_ce_id, NULL AS j_ce_source,
        f.customer_id AS j_customer, f.event_name AS j_name, f."timestamp" AS j_ts,
        f.quantity AS j_quantity, f.properties AS j_properties
    FROM (
        SELECT *, CASE WHEN is_object THEN json_transform(txt,
            '{"event_id":"JSON","customer_id":"JSON","event_name":"JSON","timestamp":"JSON","quantity":"JSON","properties":"JSON"}')
        END AS f
        FROM shaped
        WHERE NOT maybe_ce
    )
),
-- CloudEvents: key = source || ' ' || id (a source is a URI-reference, which holds no
-- whitespace, so the pair stays recoverable), customer = subject (or data.customer_id),
-- name = type, timestamp = time, quantity = data.quantity, properties = data.properties,
-- or else data without quantity and customer_id. `data_base64` (when there is no `data`)
-- is read the same way once decoded, and must then hold a JSON object: a payload meterctl
-- cannot read is a dead letter, not an event whose quantity quietly went missing. A line
-- that only mentions "specversion" somewhere else is read as a plain event.
cloud AS (
    SELECT
        line_no, txt, raw, is_json, is_object, is_ce,
        CASE WHEN NOT is_ce THEN v[1] END AS j_event_id,
        CASE WHEN is_ce THEN v[8] END AS j_ce_id,
        CASE WHEN is_ce THEN v[9] END AS j_ce_source,
        CASE WHEN is_ce THEN CASE WHEN mc_absent(v[11]) THEN d[4] ELSE v[11] END ELSE v[2] END AS j_customer,
        CASE WHEN is_ce THEN v[10] ELSE v[3] END AS j_name,
        CASE WHEN is_ce THEN v[12] ELSE v[4] END AS j_ts,
        CASE WHEN is_ce THEN d[2] ELSE v[5] END AS j_quantity,
        CASE
            WHEN NOT is_ce THEN v[6]
            WHEN d[3] IS NOT NULL THEN d[3]
            WHEN starts_with(d[1], '{') THEN json_merge_patch(d[1], '{"quantity":null,"customer_id":null}')
            ELSE d[1]
        END AS j_properties,
        CASE WHEN is_ce AND d[3] IS NULL THEN 'data' END AS properties_field,
        -- Where a fraction's digits are looked for as written (see mc_written_quantities).
        CASE WHEN is_base64 THEN decoded END AS written_in,
        is_base64 AND NOT coalesce(starts_with(d[1], '{'), false) AS base64_unreadable
    FROM (
        SELECT *,
            CASE
                WHEN NOT is_base64 THEN [v[13], v[14], v[15], v[16]]
                WHEN json_valid(decoded) THEN json_extract(decoded, ['$', '$.quantity', '$.properties', '$.customer_id'])
            END AS d
        FROM (
            SELECT *,
                is_ce AND mc_absent(v[13]) AND NOT mc_absent(v[17]) AS is_base64,
                CASE WHEN is_ce AND mc_absent(v[13]) AND json_type(v[17]) = 'VARCHAR'
                     THEN TRY(decode(from_base64(v[17] ->> '$'))) END AS decoded
            FROM (
                SELECT *, coalesce(NOT mc_absent(v[7]), false) AS is_ce
                FROM (
                    SELECT *, CASE WHEN is_object THEN json_extract(txt, [
                        '$.event_id', '$.customer_id', '$.event_name', '$.timestamp', '$.quantity',
                        '$.properties', '$.specversion', '$.id', '$.source', '$.type', '$.subject',
                        '$.time', '$.data', '$.data.quantity', '$.data.properties', '$.data.customer_id',
                        '$.data_base64'])
                    END AS v
                    FROM shaped
                    WHERE maybe_ce
                )
            )
        )
    )
),
fields AS (
    SELECT * FROM plain
    UNION ALL BY NAME
    SELECT * FROM cloud
),
valued AS (
    SELECT
        *,
        CASE
            WHEN starts_with(j_ts, '"') THEN mc_rfc3339(j_ts ->> '$')
            WHEN NOT mc_absent(j_ts) AND NOT starts_with(j_ts, '{') AND NOT starts_with(j_ts, '[')
                THEN mc_epoch(TRY_CAST(CAST(j_ts AS VARCHAR) AS DECIMAL(38, 6)))
        END AS ts,
        -- (NaN and infinities stay with mc_quantity_text, which refuses them.)
        CASE WHEN json_type(j_quantity) = 'DOUBLE' AND isfinite(TRY_CAST(j_quantity AS DOUBLE))
             THEN mc_written_quantities(coalesce(written_in, txt), j_quantity) END AS q_written,
        starts_with(j_quantity, '"') AS q_is_string
    FROM fields
),
exact AS (
    SELECT
        *,
        -- A number as written in the line (see mc_written_quantities), a string's content.
        CASE
            WHEN q_written IS NULL THEN mc_quantity_text(j_quantity)
            WHEN len(q_written) = 1 THEN q_written[1]
        END AS q_text
    FROM valued
),
judged AS (
    SELECT
        *,
        mc_quantity(q_text, q_is_string) AS quantity,
        CASE
            WHEN txt IS NULL THEN 'not valid UTF-8'
            WHEN NOT is_json THEN 'malformed JSON'
            WHEN NOT is_object THEN 'not a JSON object'
            WHEN is_ce AND mc_string_problem(j_ce_id, 'id') IS NOT NULL
                THEN 'CloudEvent: ' || mc_string_problem(j_ce_id, 'id')
            WHEN is_ce AND mc_string_problem(j_ce_source, 'source') IS NOT NULL
                THEN 'CloudEvent: ' || mc_string_problem(j_ce_source, 'source')
            WHEN is_ce AND regexp_matches(j_ce_source ->> '$', '\s')
                THEN 'CloudEvent: field ''source'' must be a URI-reference without whitespace'
            WHEN base64_unreadable
                THEN 'CloudEvent: field ''data_base64'' must hold a JSON object in base64 (UTF-8 text); '
                     || 'meterctl reads quantity and properties from JSON data only'
            WHEN NOT is_ce AND mc_string_problem(j_event_id, 'event_id') IS NOT NULL
                THEN mc_string_problem(j_event_id, 'event_id')
            WHEN mc_string_problem(j_customer, CASE WHEN is_ce THEN 'subject' ELSE 'customer_id' END) IS NOT NULL
                THEN CASE WHEN is_ce THEN 'CloudEvent: ' ELSE '' END
                     || mc_string_problem(j_customer, CASE WHEN is_ce THEN 'subject' ELSE 'customer_id' END)
            WHEN mc_string_problem(j_name, CASE WHEN is_ce THEN 'type' ELSE 'event_name' END) IS NOT NULL
                THEN CASE WHEN is_ce THEN 'CloudEvent: ' ELSE '' END
                     || mc_string_problem(j_name, CASE WHEN is_ce THEN 'type' ELSE 'event_name' END)
            WHEN mc_absent(j_ts)
                THEN 'missing required field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END || ''''
            WHEN ts IS NULL AND starts_with(j_ts, '"') AND mc_offset_out_of_range(j_ts ->> '$')
                THEN 'field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END || ''' value '
                     || mc_shown(CAST(j_ts AS VARCHAR)) || ' has a UTC offset beyond ±23:59, which RFC 3339 does not allow'
            WHEN ts IS NULL AND (starts_with(j_ts, '"') OR json_type(j_ts) IN ('BIGINT', 'UBIGINT', 'DOUBLE'))
                THEN 'field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END || ''' value '
                     || mc_shown(CAST(j_ts AS VARCHAR)) || ' is not an RFC 3339 date-time or epoch seconds/milliseconds'
            WHEN ts IS NULL
                THEN 'field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END
                     || ''' must be an RFC 3339 string or an epoch number, got ' || json_type(j_ts)
            WHEN ts > CAST($now AS TIMESTAMPTZ) + to_seconds(CAST($max_future_seconds AS BIGINT))
                THEN 'timestamp ' || mc_shown(CAST(j_ts AS VARCHAR)) || ' is more than '
                     || CAST($max_future_seconds AS VARCHAR) || ' s after the ingest time '
                     || strftime(CAST($now AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%SZ')
            WHEN $max_age_seconds IS NOT NULL
                 AND ts < CAST($now AS TIMESTAMPTZ) - to_seconds(CAST($max_age_seconds AS BIGINT))
                THEN 'timestamp ' || mc_shown(CAST(j_ts AS VARCHAR)) || ' is older than the maximum age of '
                     || CAST($max_age_seconds AS VARCHAR) || ' s'
            WHEN len(q_written) = 0
                THEN 'quantity ' || mc_shown(CAST(j_quantity AS VARCHAR)) || ' cannot be read exactly: the number was not found '
                     || 'as written in the line (write the key "quantity" without escapes)'
            WHEN len(q_written) > 1
                THEN 'quantity cannot be read exactly: the line has several "quantity" members whose numbers '
                     || 'differ only beyond double precision (' || array_to_string(q_written, ', ') || ')'
            WHEN NOT mc_absent(j_quantity) AND q_text IS NULL
                THEN 'quantity must be a number or a numeric string, got ' || json_type(j_quantity)
            WHEN q_text IS NOT NULL AND mc_quantity(q_text, q_is_string) IS NULL
                THEN 'quantity ' || mc_shown(CASE WHEN q_is_string THEN CAST(j_quantity AS VARCHAR) ELSE q_text END)
                     || ' is not a finite decimal number that fits DECIMAL(38, 18)'
            WHEN q_text IS NOT NULL AND NOT mc_fits_decimal(q_text, mc_quantity(q_text, q_is_string))
                THEN 'quantity ' || mc_shown(CASE WHEN q_is_string THEN CAST(j_quantity AS VARCHAR) ELSE q_text END)
                     || ' would be rounded: DECIMAL(38, 18) keeps at most 20 integer and 18 fractional digits'
            WHEN NOT mc_absent(j_properties) AND NOT starts_with(j_properties, '{')
                THEN CASE WHEN is_ce THEN 'CloudEvent: ' ELSE '' END || 'field '''
                     || CASE WHEN is_ce THEN coalesce(properties_field, 'data.properties') ELSE 'properties' END
                     || ''' must be a JSON object, got ' || json_type(j_properties)
        END AS reason
    FROM exact
)
SELECT
    line_no,
    reason,
    CASE WHEN reason IS NOT NULL THEN coalesce(raw, txt) END AS raw,
    CASE
        WHEN is_ce THEN (j_ce_source ->> '$') || ' ' || (j_ce_id ->> '$')
        WHEN starts_with(j_event_id, '"') THEN j_event_id ->> '$'
    END AS event_id,
    CASE WHEN reason IS NULL THEN j_customer ->> '$' END AS customer_id,
    CASE WHEN reason IS NULL THEN j_name ->> '$' END AS event_name,
    CASE WHEN reason IS NULL THEN ts END AS ts,
    CASE WHEN reason IS NULL THEN quantity END AS quantity,
    CASE WHEN reason IS NULL AND NOT mc_absent(j_properties) AND j_properties <> '{}'
         THEN CAST(j_properties AS JSON) END AS properties
FROM judged;
