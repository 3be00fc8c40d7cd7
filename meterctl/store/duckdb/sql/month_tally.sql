-- The events a month accounts for, each given one fate, counted in one pass over the
-- month's events (rate, invoice and reconcile share it).
--
-- month_windows (window_id, customer_id, start_at, end_at, covered, late_after) are the
-- known customers' stretches of the month: segments of the billing periods ending in it,
-- and (covered = false) the stretches of their calendar month no subscription covers. An
-- event of a customer id never imported counts in the UTC month [$start, $end), when
-- $known (the imported ids) is given. The scan range [$scan_start, $scan_end) covers both.
--
-- The quantity slot sums the events' quantity as (whole, fraction): in one DECIMAL sum,
-- or, when that overflows, whole and fractional parts apart (three times the cost).
-- The meters slot is Σ 2^i over the meters that select the event (event names and
-- filters, as usage selects); the unreadable slot is true when one of them cannot read
-- the event's value (usage counts it as unmeterable).
WITH scoped AS (
    SELECT e.customer_id, e.event_name, e.ts, e.event_id, e.quantity, e.properties, e.batch_id,
           w.window_id, w.covered, w.late_after
    FROM (SELECT * FROM events
          WHERE ts >= CAST($scan_start AS TIMESTAMPTZ) AND ts < CAST($scan_end AS TIMESTAMPTZ)) AS e
    LEFT JOIN month_windows AS w
      ON w.customer_id = e.customer_id AND e.ts >= w.start_at AND e.ts < w.end_at
),
judged AS (
    SELECT *, {{meters}} AS meters, {{unreadable}} AS unreadable
    FROM scoped
    WHERE window_id IS NOT NULL
       OR (CAST($known AS VARCHAR[]) IS NOT NULL
           AND ts >= CAST($start AS TIMESTAMPTZ) AND ts < CAST($end AS TIMESTAMPTZ)
           AND customer_id NOT IN (SELECT unnest(CAST($known AS VARCHAR[]))))
)
SELECT CASE WHEN list_contains(CAST($ignored AS VARCHAR[]), event_name) THEN 'ignored'
            WHEN meters = 0 THEN 'no_meter'
            WHEN window_id IS NULL THEN 'unknown_customer'
            WHEN NOT covered THEN 'outside_subscription'
            WHEN unreadable THEN 'unmeterable'
            ELSE 'billable' END AS fate,
       window_id, customer_id, event_name, meters,
       count(*) AS events,
       {{quantity}},
       count(*) FILTER (batch_id > late_after) AS late_events,
       -- The first event matters where an event is not billed (and costs a third of the
       -- statement for every billable one).
       epoch_us(min(ts) FILTER (fate <> 'billable')) AS first_at,
       arg_min(event_id, (ts, event_id)) FILTER (fate <> 'billable') AS first_event_id
FROM judged
GROUP BY ALL
ORDER BY ALL
