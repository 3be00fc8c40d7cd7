-- Helpers for validating one JSON value taken out of an input line.
-- `j` is a JSON value as json_extract returns it (minified text) or NULL when absent.

-- Why a required string field is unusable, or NULL when it is fine.
CREATE OR REPLACE TEMP MACRO mc_string_problem(j, field) AS
    CASE
        WHEN j IS NULL OR j = 'null' THEN 'missing required field ''' || field || ''''
        WHEN NOT starts_with(j, '"') THEN 'field ''' || field || ''' must be a string, got ' || json_type(j)
        WHEN trim(j ->> '$') = '' THEN 'field ''' || field || ''' must not be empty'
    END;

-- A number's text as it appeared, or a numeric string's content; NULL for other types.
CREATE OR REPLACE TEMP MACRO mc_number_text(j) AS
    CASE
        WHEN j IS NULL OR j = 'null' THEN NULL
        WHEN starts_with(j, '"') THEN j ->> '$'
        WHEN json_type(j) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT', 'UHUGEINT') THEN CAST(j AS VARCHAR)
    END;

-- Strict decimal syntax: no underscores, hex, NaN or Infinity, which DuckDB's cast would accept.
CREATE OR REPLACE TEMP MACRO mc_is_decimal_text(t) AS
    regexp_full_match(t, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?');

-- Would DECIMAL(38, 18) hold this decimal text without rounding it?
CREATE OR REPLACE TEMP MACRO mc_fits_decimal(t, d) AS
    d IS NOT NULL AND (
        CASE
            WHEN contains(t, 'e') OR contains(t, 'E') THEN CAST(d AS DOUBLE) = CAST(t AS DOUBLE)
            WHEN length(t) < 20 THEN true
            ELSE length(regexp_extract(t, '\.([0-9]*?)0*$', 1)) <= 18
        END
    );

-- Canonical JSON for a properties object: top-level keys sorted, empty object = absent.
CREATE OR REPLACE TEMP MACRO mc_canonical_object(j) AS
    CASE
        WHEN j IS NULL OR j = '{}' THEN NULL
        WHEN NOT contains(j, ',') THEN j
        ELSE CAST(to_json(map_from_entries(list_sort(map_entries(CAST(j AS MAP(VARCHAR, JSON)))))) AS JSON)
    END;
