-- Validate and normalise one chunk of input lines.
--
-- Input: the relation `chunk_lines(line_no BIGINT, txt VARCHAR, raw VARCHAR)` where `txt` is
-- NULL for a line that is not valid UTF-8 (then `raw` holds it with bytes escaped) and blank
-- lines are already left out. Parameters: $now (ingest time), $max_future_seconds,
-- $max_age_seconds (NULL = no lower bound).
--
-- Output: one row per line with either `reason` (why it is dead-lettered) or the normalised
-- event and the hash of its canonical payload.
CREATE OR REPLACE TEMP TABLE stage AS
WITH parsed AS (
    SELECT
        line_no,
        txt,
        raw,
        txt IS NOT NULL AND json_valid(txt) AS is_json
    FROM chunk_lines
),
extracted AS (
    SELECT
        line_no, txt, raw, is_json,
        is_json AND starts_with(ltrim(txt, E' \t\r'), '{') AS is_object,
        CASE
            WHEN NOT (is_json AND starts_with(ltrim(txt, E' \t\r'), '{')) THEN NULL
            WHEN contains(txt, '"specversion"') THEN json_extract(txt, [
                '$.event_id', '$.customer_id', '$.event_name', '$.timestamp', '$.quantity',
                '$.properties', '$.specversion', '$.id', '$.source', '$.type', '$.subject',
                '$.time', '$.data', '$.data.quantity', '$.data.properties', '$.data.customer_id'])
            ELSE json_extract(txt, [
                '$.event_id', '$.customer_id', '$.event_name', '$.timestamp', '$.quantity',
                '$.properties'])
        END AS v
    FROM parsed
),
-- Map both shapes onto the event contract. CloudEvents: key = source || ' ' || id (a source
-- is a URI-reference, which holds no whitespace, so the pair is recoverable), customer =
-- subject (or data.customer_id), name = type, timestamp = time, quantity = data.quantity,
-- properties = data.properties, or else data without quantity and customer_id.
fields AS (
    SELECT
        line_no, txt, raw, is_json, is_object,
        coalesce(v[7] NOT IN ('null'), false) AS is_ce,
        v[1] AS j_event_id,
        v[8] AS j_ce_id,
        v[9] AS j_ce_source,
        CASE WHEN v[7] IS NOT NULL AND v[7] <> 'null' THEN coalesce(v[11], v[16]) ELSE v[2] END AS j_customer,
        CASE WHEN v[7] IS NOT NULL AND v[7] <> 'null' THEN v[10] ELSE v[3] END AS j_name,
        CASE WHEN v[7] IS NOT NULL AND v[7] <> 'null' THEN v[12] ELSE v[4] END AS j_ts,
        CASE WHEN v[7] IS NOT NULL AND v[7] <> 'null' THEN v[14] ELSE v[5] END AS j_quantity,
        CASE
            WHEN v[7] IS NULL OR v[7] = 'null' THEN v[6]
            WHEN v[15] IS NOT NULL THEN v[15]
            WHEN starts_with(v[13], '{') THEN json_merge_patch(v[13], '{"quantity":null,"customer_id":null}')
            ELSE v[13]
        END AS j_properties
    FROM extracted
),
typed AS (
    SELECT
        *,
        CASE WHEN starts_with(j_ts, '"') THEN j_ts ->> '$' END AS ts_text,
        CASE WHEN j_ts IS NOT NULL AND json_type(j_ts) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
             THEN TRY_CAST(CAST(j_ts AS VARCHAR) AS DECIMAL(38, 6)) END AS ts_epoch,
        mc_number_text(j_quantity) AS q_text,
        CASE WHEN starts_with(j_properties, '{') AND contains(j_properties, ',')
             THEN TRY_CAST(j_properties AS MAP(VARCHAR, JSON)) END AS props_map
    FROM fields
),
valued AS (
    SELECT
        *,
        CASE
            WHEN ts_text IS NOT NULL THEN
                CASE WHEN regexp_full_match(ts_text,
                        '[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?')
                     THEN TRY_CAST(upper(ts_text) AS TIMESTAMPTZ) END
            -- Epoch numbers: seconds, or milliseconds from 1e11 on (1e11 s is the year 5138).
            WHEN abs(ts_epoch) < 100000000000 THEN TRY(make_timestamptz(CAST(ts_epoch * 1000000 AS BIGINT)))
            WHEN ts_epoch IS NOT NULL THEN TRY(make_timestamptz(CAST(ts_epoch * 1000 AS BIGINT)))
        END AS ts,
        CASE WHEN mc_is_decimal_text(q_text) THEN TRY_CAST(q_text AS DECIMAL(38, 18)) END AS quantity
    FROM typed
),
judged AS (
    SELECT
        *,
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
            WHEN NOT is_ce AND mc_string_problem(j_event_id, 'event_id') IS NOT NULL
                THEN mc_string_problem(j_event_id, 'event_id')
            WHEN is_ce AND mc_string_problem(j_customer, 'subject') IS NOT NULL
                THEN 'CloudEvent: ' || mc_string_problem(j_customer, 'subject')
            WHEN NOT is_ce AND mc_string_problem(j_customer, 'customer_id') IS NOT NULL
                THEN mc_string_problem(j_customer, 'customer_id')
            WHEN mc_string_problem(j_name, CASE WHEN is_ce THEN 'type' ELSE 'event_name' END) IS NOT NULL
                THEN CASE WHEN is_ce THEN 'CloudEvent: ' ELSE '' END
                     || mc_string_problem(j_name, CASE WHEN is_ce THEN 'type' ELSE 'event_name' END)
            WHEN j_ts IS NULL OR j_ts = 'null'
                THEN 'missing required field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END || ''''
            WHEN ts_text IS NULL AND ts_epoch IS NULL
                THEN 'field ''' || CASE WHEN is_ce THEN 'time' ELSE 'timestamp' END
                     || ''' must be an RFC 3339 string or epoch seconds/milliseconds, got ' || json_type(j_ts)
            WHEN ts IS NULL
                THEN 'timestamp ' || CAST(j_ts AS VARCHAR) || ' is not a valid RFC 3339 date-time or epoch'
            WHEN ts > CAST($now AS TIMESTAMPTZ) + to_seconds(CAST($max_future_seconds AS BIGINT))
                THEN 'timestamp ' || CAST(j_ts AS VARCHAR) || ' is more than ' || CAST($max_future_seconds AS VARCHAR)
                     || ' s after the ingest time ' || strftime(CAST($now AS TIMESTAMPTZ), '%Y-%m-%dT%H:%M:%SZ')
            WHEN $max_age_seconds IS NOT NULL
                 AND ts < CAST($now AS TIMESTAMPTZ) - to_seconds(CAST($max_age_seconds AS BIGINT))
                THEN 'timestamp ' || CAST(j_ts AS VARCHAR) || ' is older than the maximum age of '
                     || CAST($max_age_seconds AS VARCHAR) || ' s'
            WHEN j_quantity IS NOT NULL AND j_quantity <> 'null' AND q_text IS NULL
                THEN 'quantity must be a number or a numeric string, got ' || json_type(j_quantity)
            WHEN q_text IS NOT NULL AND NOT mc_is_decimal_text(q_text)
                THEN 'quantity ' || CAST(j_quantity AS VARCHAR) || ' is not a finite decimal number'
            WHEN q_text IS NOT NULL AND NOT mc_fits_decimal(q_text, quantity)
                THEN 'quantity ' || CAST(j_quantity AS VARCHAR)
                     || ' does not fit DECIMAL(38, 18) exactly (at most 20 integer and 18 fractional digits)'
            WHEN j_properties IS NOT NULL AND j_properties <> 'null' AND NOT starts_with(j_properties, '{')
                THEN 'field ''' || CASE WHEN is_ce THEN 'data.properties' ELSE 'properties' END
                     || ''' must be a JSON object, got ' || json_type(j_properties)
            WHEN contains(j_properties, ',') AND props_map IS NULL
                THEN 'field ''' || CASE WHEN is_ce THEN 'data.properties' ELSE 'properties' END
                     || ''' has duplicate keys'
        END AS reason
    FROM valued
),
events AS (
    SELECT
        line_no,
        reason,
        CASE WHEN reason IS NOT NULL THEN coalesce(raw, txt) END AS raw,
        CASE
            WHEN is_ce THEN (j_ce_source ->> '$') || ' ' || (j_ce_id ->> '$')
            ELSE j_event_id ->> '$'
        END AS event_id,
        j_customer ->> '$' AS customer_id,
        j_name ->> '$' AS event_name,
        ts,
        quantity,
        CASE
            WHEN j_properties IS NULL OR j_properties IN ('null', '{}') THEN NULL
            WHEN props_map IS NULL THEN CAST(j_properties AS JSON)
            ELSE CAST(to_json(map_from_entries(list_sort(map_entries(props_map)))) AS JSON)
        END AS properties
    FROM judged
)
SELECT
    line_no,
    reason,
    raw,
    event_id,
    customer_id,
    event_name,
    ts,
    quantity,
    properties,
    CASE WHEN reason IS NULL THEN md5_number_lower(concat_ws(chr(31),
        customer_id, event_name, CAST(epoch_us(ts) AS VARCHAR),
        coalesce(CAST(quantity AS VARCHAR), '-'), coalesce(CAST(properties AS VARCHAR), '-')))
    END AS payload_hash
FROM events
