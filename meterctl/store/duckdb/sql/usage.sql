-- Usage aggregation: the statements usage_sql.py builds a query from, one section each.
--
-- A section is a statement with slots, a name in double braces, that usage_sql.py fills with fragments it
-- composes from a meter definition (WHERE clauses, dimension and window expressions, one of
-- a fixed set of aggregates). Every value (event names, property keys, filter values, time
-- zone, bounds) is a bound parameter: `$p_` parameters belong to one meter and are renamed
-- per meter ($m0_event_name, $m1_event_name, ...); $start, $end, $tz, $customers and
-- $as_of_batch are shared. Window bounds come back as epoch microseconds: Python makes each
-- distinct instant once.

-- section: plain
-- One count, sum, max, min, latest or count_unique meter: a row per customer × window ×
-- dimension values. A window whose events are all unmeterable still appears, with no value.
SELECT {{meter_index}} AS meter_index, e.customer_id,
       epoch_us({{window_start}}) AS window_start, epoch_us({{window_end}}) AS window_end,
       [{{dimension_list}}]::VARCHAR[] AS dims,
       CAST({{aggregate}} AS DECIMAL(38, 18)) AS value, CAST({{unmeterable}} AS BIGINT) AS unmeterable
FROM (
    SELECT customer_id, ts, event_id, {{value}} AS v{{dimension_columns}}
    FROM events WHERE {{where}}
) AS e{{period_join}}
GROUP BY e.customer_id, {{window_start}}, {{window_end}}{{dimension_names}}

-- section: duration_spans
-- The seconds of a duration meter per customer × window × dimension values. `spans` are the
-- counted stretches between consecutive events of a session, cut at the edges of the range;
-- the pieces slot cuts them at window edges into `bounded(..., a, b, w_start, w_end)`.
WITH selected AS (
    SELECT customer_id, ts, event_id, properties ->> $p_sk AS session,
           coalesce(event_name = $p_stop_event, false) AS is_stop{{dimension_columns}}
    FROM events WHERE {{where}}
),
ordered AS (
    SELECT *, lag(ts) OVER w AS prev_ts, lag(is_stop) OVER w AS prev_stop
    FROM selected WHERE session IS NOT NULL
    WINDOW w AS (PARTITION BY customer_id, session{{dimension_names}} ORDER BY ts, event_id)
),
spans AS (
    SELECT customer_id, session{{dimension_names}},
           greatest(prev_ts, CAST($start AS TIMESTAMPTZ)) AS a, least(ts, CAST($end AS TIMESTAMPTZ)) AS b
    FROM ordered
    WHERE prev_ts IS NOT NULL AND NOT prev_stop
      AND (is_stop OR ts - prev_ts <= to_seconds(CAST($p_gap AS BIGINT)))
      AND ts > CAST($start AS TIMESTAMPTZ) AND prev_ts < CAST($end AS TIMESTAMPTZ)
),
{{pieces}}
SELECT customer_id, epoch_us(w_start), epoch_us(w_end), [{{dimension_names_list}}]::VARCHAR[],
       -- DECIMAL division would give a DOUBLE: multiply by an exact 10^-6 instead.
       CAST(sum(epoch_us(least(b, w_end)) - epoch_us(greatest(a, w_start))) AS DECIMAL(38, 6)) * CAST(0.000001 AS DECIMAL(7, 6)),
       0
FROM bounded
WHERE least(b, w_end) > greatest(a, w_start)
GROUP BY customer_id, w_start, w_end{{dimension_names}}
ORDER BY ALL

-- section: duration_pieces_period
-- Spans cut at the customers' billing windows.
bounded AS (
    SELECT s.*, w.window_start AS w_start, w.window_end AS w_end
    FROM spans AS s JOIN usage_windows AS w
      ON w.customer_id = s.customer_id AND w.window_start < s.b AND w.window_end > s.a
)

-- section: duration_pieces_clock
-- Spans cut at clock windows: the series slot lists the starts of the windows a span
-- touches, the next_start slot is the start of the window after `w_start`.
pieces AS (
    SELECT s.*, w.ws AS w_start
    FROM spans AS s,
         LATERAL (SELECT {{series}} AS ws) AS w
),
bounded AS (
    SELECT *, {{next_start}} AS w_end
    FROM pieces
)

-- section: duration_unmeterable
-- Events of a duration meter without a session: unmeterable, counted per window.
SELECT e.customer_id, epoch_us({{window_start}}), epoch_us({{window_end}}), [{{dimension_list}}]::VARCHAR[], NULL, count(*)
FROM (SELECT * FROM events WHERE {{where}} AND ts >= CAST($start AS TIMESTAMPTZ)) AS e{{period_join}}
WHERE (properties ->> $p_sk) IS NULL
GROUP BY ALL

-- section: duration_open_sessions
-- Sessions whose last event is not a stop and lies within the gap of the end: they may
-- still be running.
SELECT customer_id, session, epoch_us(max(ts))
FROM (SELECT customer_id, ts, properties ->> $p_sk AS session,
             coalesce(event_name = $p_stop_event, false) AS is_stop, event_id
      FROM events WHERE {{where}})
WHERE session IS NOT NULL
GROUP BY customer_id, session
HAVING NOT arg_max(is_stop, (ts, event_id))
   AND max(ts) > CAST($end AS TIMESTAMPTZ) - to_seconds(CAST($p_gap AS BIGINT))
ORDER BY ALL
