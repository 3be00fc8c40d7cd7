-- Helpers for validating values taken out of an input line.
-- `j` is a JSON value as json_extract / json_transform return it (minified text), or NULL
-- when the key is absent.

-- Is the JSON value absent or null?
CREATE OR REPLACE TEMP MACRO mc_absent(j) AS j IS NULL OR j = 'null';

-- Why a required string field is unusable, or NULL when it is fine.
CREATE OR REPLACE TEMP MACRO mc_string_problem(j, field) AS
    CASE
        WHEN mc_absent(j) THEN 'missing required field ''' || field || ''''
        WHEN NOT starts_with(j, '"') THEN 'field ''' || field || ''' must be a string, got ' || json_type(j)
        WHEN length(j) < 16 AND trim(j ->> '$') = '' THEN 'field ''' || field || ''' must not be empty'
    END;

-- Strict decimal syntax: no underscores, hex, NaN or Infinity, which DuckDB's cast would accept.
CREATE OR REPLACE TEMP MACRO mc_is_decimal_text(t) AS
    regexp_full_match(t, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?');

-- The text of a quantity: a JSON number as written, or the content of a numeric string.
CREATE OR REPLACE TEMP MACRO mc_quantity_text(j) AS
    CASE
        WHEN mc_absent(j) THEN NULL
        WHEN starts_with(j, '"') THEN j ->> '$'
        WHEN starts_with(j, '{') OR starts_with(j, '[') OR j IN ('true', 'false') THEN NULL
        ELSE CAST(j AS VARCHAR)
    END;

-- The quantity as DECIMAL(38, 18), or NULL when the text is not a plain finite decimal.
CREATE OR REPLACE TEMP MACRO mc_quantity(t, from_string) AS
    CASE
        WHEN t IS NULL THEN NULL
        WHEN from_string AND NOT mc_is_decimal_text(t) THEN NULL
        ELSE TRY_CAST(t AS DECIMAL(38, 18))
    END;

-- Would DECIMAL(38, 18) hold this decimal text without rounding it?
CREATE OR REPLACE TEMP MACRO mc_fits_decimal(t, d) AS
    d IS NOT NULL AND (
        CASE
            WHEN length(t) < 20 AND NOT (contains(t, 'e') OR contains(t, 'E')) THEN true
            WHEN contains(t, 'e') OR contains(t, 'E') THEN CAST(d AS DOUBLE) = CAST(t AS DOUBLE)
            ELSE length(regexp_extract(t, '\.([0-9]*?)0*$', 1)) <= 18
        END
    );

-- An RFC 3339 date-time (or one without offset, taken as UTC) as TIMESTAMPTZ. The shape test
-- keeps out what DuckDB's cast would also take (a bare date, a time zone name).
CREATE OR REPLACE TEMP MACRO mc_rfc3339(s) AS
    CASE
        WHEN length(s) BETWEEN 16 AND 40
             AND regexp_full_match(s[1:16], '[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}')
             AND NOT regexp_matches(s[17:], '[A-Ya-y]')
            THEN TRY_CAST(upper(s) AS TIMESTAMPTZ)
    END;

-- Epoch seconds, or milliseconds from 1e11 on (1e11 seconds is the year 5138).
CREATE OR REPLACE TEMP MACRO mc_epoch(n) AS
    CASE
        WHEN n IS NULL THEN NULL
        WHEN abs(n) < 100000000000 THEN TRY(make_timestamptz(CAST(n * 1000000 AS BIGINT)))
        ELSE TRY(make_timestamptz(CAST(n * 1000 AS BIGINT)))
    END;

-- Canonical JSON for a properties object: top-level keys sorted, an empty object = absent.
-- Only used to compare two versions of one event, never on the whole stream.
CREATE OR REPLACE TEMP MACRO mc_canonical_object(j) AS
    CASE
        WHEN j IS NULL OR CAST(j AS VARCHAR) IN ('{}', 'null') THEN NULL
        ELSE CAST(to_json(map_from_entries(list_sort(map_entries(TRY_CAST(j AS MAP(VARCHAR, JSON)))))) AS VARCHAR)
    END;

-- The canonical payload of an event: what must be equal for a resend to be identical.
CREATE OR REPLACE TEMP MACRO mc_payload(customer_id, event_name, ts, quantity, properties) AS
    concat_ws(chr(31), customer_id, event_name, CAST(epoch_us(ts) AS VARCHAR),
              coalesce(CAST(quantity AS VARCHAR), '-'), coalesce(mc_canonical_object(properties), '-'));

-- A stable hash of the canonical payload, shown for conflicts.
CREATE OR REPLACE TEMP MACRO mc_payload_hash(customer_id, event_name, ts, quantity, properties) AS
    md5(mc_payload(customer_id, event_name, ts, quantity, properties));

-- For the fast path: a field read as VARCHAR is certainly a non-empty JSON string when its
-- text could not be a number, boolean, object or array written without quotes. Anything
-- else (including a numeric-looking string id) is left to the full rules. DuckDB's JSON
-- parser also takes nan, inf and infinity, in any case and with a leading '-'.
-- A value that starts with an ASCII letter none of those spellings starts with (f, i, n, t
-- in either case) or with '_' is text for sure, and not blank: most ids and names settle on
-- that test. Those first characters, ABCDEGHJKLMOPQRSUVWXYZ_abcdeghjklmopqrsuvwxyz, are the
-- set bits (code point - 64) of 0x07efbdbe87efbdbe: one integer test per value, three times
-- faster than comparing the string against eleven ranges. (Both sides of AND are computed
-- for every row, so the shift stays in 0..63 whatever the first character.)
CREATE OR REPLACE TEMP MACRO mc_fast_text(v) AS
    v IS NOT NULL
    AND CASE
        WHEN unicode(v) BETWEEN 64 AND 127
             AND ((571884303721414078 >> ((unicode(v) - 64) & 63)) & 1) = 1
            THEN true
        ELSE NOT regexp_full_match(v, '[-+0-9.][0-9.eE+-]*|true|false|null|\{.*|\[.*')
             AND NOT regexp_full_match(lower(v), '[-+]?(nan|inf|infinity)')
             AND (length(v) >= 14 OR trim(v) <> '')
    END;
