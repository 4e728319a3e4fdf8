-- event_names.sql: the behaviour event names that become count features, most frequent first.
--
-- Grain: one row per event_name.  Time column: occurred_at (UTC TIMESTAMP).
-- Reads only rows before $as_of. The names are column names, not values: counting them over all users
-- (not only inside feature windows) keeps discovery a single scan; the counts themselves stay windowed in
-- features.sql, and a name never seen inside a window is a constant-zero column the models ignore.
-- Units: n = number of event rows.  Bound parameters: $as_of TIMESTAMP, $limit INTEGER.
WITH known_events AS (
    SELECT event_name
    FROM events
    WHERE occurred_at < CAST($as_of AS TIMESTAMP)
        AND event_name IS NOT NULL
),

final AS (
    SELECT event_name, count(*) AS n
    FROM known_events
    GROUP BY event_name
    ORDER BY n DESC, event_name
    LIMIT CAST($limit AS INTEGER)
)

SELECT * FROM final
