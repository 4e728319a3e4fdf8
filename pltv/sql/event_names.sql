-- event_names.sql: the behaviour event names that become count features, most frequent first.
--
-- Grain: one row per event_name.  Time column: occurred_at (UTC TIMESTAMP).
-- Reads only rows inside some user's feature window [signup_at, signup_at + $send_day days) and before
-- $as_of, so the list is known at training time without peeking at later behaviour.
-- Units: n = number of event rows.  Bound parameters: $send_day INTEGER, $as_of TIMESTAMP, $limit INTEGER.
WITH window_events AS (
    SELECT e.event_name
    FROM events AS e
    JOIN users AS u ON u.user_id = e.user_id
    WHERE e.occurred_at >= u.signup_at
        AND e.occurred_at < u.signup_at + to_days(CAST($send_day AS INTEGER))
        AND e.occurred_at < CAST($as_of AS TIMESTAMP)
        AND e.event_name IS NOT NULL
),

final AS (
    SELECT event_name, count(*) AS n
    FROM window_events
    GROUP BY event_name
    ORDER BY n DESC, event_name
    LIMIT CAST($limit AS INTEGER)
)

SELECT * FROM final
