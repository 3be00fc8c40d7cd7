-- Helpers for validating values taken out of an input line.
-- `j` is a JSON value as json_extract / json_transform return it (minified text), or NULL
-- when the key is absent.

-- Is the JSON value absent or null?
CREATE OR REPLACE TEMP MACRO mc_absent(j) AS j IS NULL OR j = 'null';

-- Why a required string field is unusable, or NULL when it is fine. Identifiers (ids, names)
-- are at most mc_max_id_length() characters: a key is not a payload.
CREATE OR REPLACE TEMP MACRO mc_string_problem(j, field) AS
    CASE
        WHEN mc_absent(j) THEN 'missing required field ''' || field || ''''
        WHEN NOT starts_with(j, '"') THEN 'field ''' || field || ''' must be a string, got ' || json_type(j)
        WHEN mc_blank(j ->> '$') THEN 'field ''' || field || ''' must not be empty'
        WHEN length(j ->> '$') > mc_max_id_length()
            THEN 'field ''' || field || ''' is ' || length(j ->> '$') || ' characters long; at most '
                 || mc_max_id_length() || ' are allowed (' || mc_shown(j ->> '$') || ')'
    END;

CREATE OR REPLACE TEMP MACRO mc_max_id_length() AS 256;

-- A value quoted in a reason: its first characters when it is long.
CREATE OR REPLACE TEMP MACRO mc_shown(t) AS
    CASE WHEN length(t) > 64 THEN left(t, 60) || '…' ELSE t END;

-- Empty or only whitespace (spaces, tabs, line breaks, form feeds), however long.
CREATE OR REPLACE TEMP MACRO mc_blank(v) AS trim(v, chr(32) || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) = '';

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

-- The same decimal written without exponent, exactly (string work, no float): '1.5e3' is
-- '1500', '-2.5E-3' is '-0.0025'. NULL for an exponent beyond ±100, which no DECIMAL(38, 18)
-- holds anyway. Text without exponent is returned as it is.
CREATE OR REPLACE TEMP MACRO mc_plain_decimal(t) AS
    CASE
        WHEN t IS NULL OR NOT (contains(t, 'e') OR contains(t, 'E')) THEN t
        ELSE mc_place_point(regexp_extract(t, '^([+-]?)([0-9]*)\.?([0-9]*)[eE]([+-]?[0-9]+)$',
                                           ['sign', 'whole', 'fraction', 'exponent']))
    END;

CREATE OR REPLACE TEMP MACRO mc_place_point(p) AS
    CASE
        WHEN p.whole || p.fraction = '' OR coalesce(abs(TRY_CAST(p.exponent AS INTEGER)) > 100, true) THEN NULL
        ELSE p.sign || mc_digits_with_point(p.whole || p.fraction, length(p.whole) + TRY_CAST(p.exponent AS INTEGER))
    END;

-- Digits `d` with the decimal point after the first `point` of them (zeros added as needed).
CREATE OR REPLACE TEMP MACRO mc_digits_with_point(d, point) AS
    CASE
        WHEN point <= 0 THEN '0.' || repeat('0', -point) || d
        WHEN point >= length(d) THEN d || repeat('0', point - length(d))
        ELSE d[1:point] || '.' || d[point + 1:]
    END;

-- The quantity as DECIMAL(38, 18), or NULL when the text is not a plain finite decimal.
CREATE OR REPLACE TEMP MACRO mc_quantity(t, from_string) AS
    CASE
        WHEN t IS NULL THEN NULL
        WHEN from_string AND NOT mc_is_decimal_text(t) THEN NULL
        ELSE TRY_CAST(mc_plain_decimal(t) AS DECIMAL(38, 18))
    END;

-- Would DECIMAL(38, 18) hold this decimal text without rounding it? (At most 18 places once
-- trailing zeros are dropped; too many whole digits already made the cast fail.)
CREATE OR REPLACE TEMP MACRO mc_fits_decimal(t, d) AS
    d IS NOT NULL AND (
        (length(t) < 20 AND NOT (contains(t, 'e') OR contains(t, 'E')))
        OR length(regexp_extract(mc_plain_decimal(t), '\.([0-9]*?)0*$', 1)) <= 18
    );

-- Plain decimal text in one spelling per value: no leading zeros before the units digit, no
-- trailing zeros after the point ('001.50' and '1.5' are both '1.5', '2.0' is '2').
CREATE OR REPLACE TEMP MACRO mc_decimal_key(t) AS
    regexp_replace(regexp_replace(regexp_replace(t, '(\.[0-9]*?)0+$', '\1'), '\.$', ''), '^(-?)0+([0-9])', '\1\2');

-- The first of the numbers written for each distinct decimal value, as written.
CREATE OR REPLACE TEMP MACRO mc_one_per_value(numbers) AS
    list_transform(list_distinct(list_transform(numbers, lambda c: coalesce(mc_decimal_key(mc_plain_decimal(c)), c))),
                   lambda k: list_filter(numbers, lambda c: coalesce(mc_decimal_key(mc_plain_decimal(c)), c) = k)[1]);

-- For a JSON number: DuckDB's JSON reader holds it as a double, so the text it gives back
-- for 0.30000000000000001 is '0.3'. The number as written is taken from the line itself:
-- the "quantity" members written there whose value reads as that same double, as distinct
-- decimals (one expected; none when the key was written with escapes, several in a
-- contrived line). A nested "quantity" of the same value written otherwise (1.50 beside
-- 1.5) is the same decimal, not a second one.
CREATE OR REPLACE TEMP MACRO mc_written_quantities(line, j) AS
    mc_one_per_value(list_filter(regexp_extract_all(line, '"quantity"\s*:\s*(-?[0-9][0-9.eE+-]*)', 1),
                                 lambda c: TRY_CAST(c AS DOUBLE) = CAST(j AS DOUBLE)));

-- For the fast path: is `q`, the text DuckDB gives for the line's quantity, what the line
-- says? Always for an integer (never held as a double); for a fraction, when the line's one
-- "quantity" member is written as exactly this text (no escapes could hide another).
CREATE OR REPLACE TEMP MACRO mc_quantity_as_written(line, q) AS
    NOT contains(q, '.')
    OR (NOT contains(line, '\u')
        AND (contains(line, '"quantity":' || q || ',') OR contains(line, '"quantity":' || q || '}')
             OR contains(line, '"quantity":"' || q || '"'))
        AND strlen(line) - strlen(replace(line, '"quantity"', '')) = 10);

-- An RFC 3339 date-time (or one without offset, taken as UTC) as TIMESTAMPTZ. The shape is
-- checked first, field by field: DuckDB's cast would also take a bare date, a time zone
-- name, hour 24, or an offset of +25:00 or +05:30:15 (and move the instant by it).
CREATE OR REPLACE TEMP MACRO mc_rfc3339(s) AS
    CASE
        WHEN length(s) BETWEEN 16 AND 40 AND regexp_full_match(s, mc_rfc3339_shape())
            THEN TRY_CAST(upper(s) AS TIMESTAMPTZ)
    END;

-- Date, hours 00-23, minutes and seconds 00-59 (seconds and their fraction optional), then
-- Z, an offset within ±23:59 (+05:30; also +0530 or +05), or nothing (UTC).
CREATE OR REPLACE TEMP MACRO mc_rfc3339_shape() AS
    '[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?([Zz]|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?';

-- A date-time whose offset is beyond ±23:59 (RFC 3339 allows no more), for its own reason.
CREATE OR REPLACE TEMP MACRO mc_offset_out_of_range(s) AS
    coalesce(regexp_full_match(s, '[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?[+-][0-9]{2}(:?[0-9]{2})?')
             AND NOT regexp_matches(s, '[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?$'), false);

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
        -- An object that is no map (a key given twice) is compared as written: two such
        -- objects are never "equal" just because neither could be sorted.
        ELSE coalesce(CAST(to_json(map_from_entries(list_sort(map_entries(TRY_CAST(j AS MAP(VARCHAR, JSON)))))) AS VARCHAR),
                      CAST(j AS VARCHAR))
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
    v IS NOT NULL AND strlen(v) <= mc_max_id_length()
    AND CASE
        WHEN unicode(v) BETWEEN 64 AND 127
             AND ((571884303721414078 >> ((unicode(v) - 64) & 63)) & 1) = 1
            THEN true
        ELSE NOT regexp_full_match(v, '[-+0-9.][0-9.eE+-]*|true|false|null|\{.*|\[.*')
             AND NOT regexp_full_match(lower(v), '[-+]?(nan|inf|infinity)')
             AND NOT mc_blank(v)
    END;
