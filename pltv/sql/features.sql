-- features.sql: point-in-time pLTV features and labels, one query for training and daily scoring.
--
-- Grain: one row per user of the selected population.  Time column: occurred_at (UTC TIMESTAMP).
-- Feature window (no leakage): signup_at <= occurred_at < least(signup_at + $send_day days, $as_of).
-- Labels, NULL unless the user has matured (signup_at + $horizon_days days <= $as_of):
--   actual_ltv    = net revenue in [signup_at, signup_at + $horizon_days days)
--   actual_future = net revenue in [signup_at + $send_day days, signup_at + $horizon_days days)
-- Units: revenue in the source currency (refunds negative), durations in hours, counts.
--
-- Bound parameters: $send_day INTEGER, $horizon_days INTEGER, $as_of TIMESTAMP,
--   $population VARCHAR ('matured' | 'send_window' | 'all'), $send_from / $send_to TIMESTAMP
--   (send_window: signup_at + $send_day days in [$send_from, $send_to)), $event_names VARCHAR[].
-- Templated by pltv.features (allow-listed only, never data values):
--   the attributes placeholder: quoted user columns checked against the users table (or NULL::VARCHAR);
--   the event_counts placeholder: count(*) FILTER (WHERE event_name = $event_names[i]) AS event_i, i = 1..n
WITH population AS (
    SELECT
        u.user_id,
        u.signup_at,
        u.signup_at + to_days(CAST($send_day AS INTEGER)) AS send_at,
        least(u.signup_at + to_days(CAST($send_day AS INTEGER)), CAST($as_of AS TIMESTAMP)) AS cutoff,
        u.signup_at + to_days(CAST($horizon_days AS INTEGER)) AS horizon_end,
        {attributes}
    FROM users AS u
    WHERE u.signup_at < CAST($as_of AS TIMESTAMP)
),

selected AS (
    SELECT *
    FROM population
    WHERE CASE CAST($population AS VARCHAR)
        WHEN 'matured' THEN horizon_end <= CAST($as_of AS TIMESTAMP)
        WHEN 'send_window' THEN send_at >= CAST($send_from AS TIMESTAMP)
            AND send_at < CAST($send_to AS TIMESTAMP)
        WHEN 'all' THEN true
        ELSE error('population must be matured, send_window or all')
    END
),

window_transactions AS (
    SELECT s.user_id, s.signup_at, t.occurred_at, t.revenue
    FROM selected AS s
    JOIN transactions AS t
        ON t.user_id = s.user_id
        AND t.occurred_at >= s.signup_at
        AND t.occurred_at < s.cutoff
),

transaction_features AS (
    SELECT
        user_id,
        coalesce(sum(revenue) FILTER (WHERE revenue > 0), 0) AS early_gross_revenue,
        coalesce(-sum(revenue) FILTER (WHERE revenue < 0), 0) AS early_refunds,
        sum(revenue) AS early_net_revenue,
        count(*) FILTER (WHERE revenue > 0) AS early_purchases,
        count(*) FILTER (WHERE revenue < 0) AS early_refund_count,
        coalesce(max(revenue) FILTER (WHERE revenue > 0), 0) AS early_max_purchase,
        epoch(min(occurred_at) FILTER (WHERE revenue > 0) - any_value(signup_at)) / 3600
            AS hours_to_first_purchase,
        max(occurred_at) AS last_transaction_at
    FROM window_transactions
    GROUP BY user_id
),

window_events AS (
    SELECT s.user_id, s.signup_at, e.occurred_at, e.event_name
    FROM selected AS s
    JOIN events AS e
        ON e.user_id = s.user_id
        AND e.occurred_at >= s.signup_at
        AND e.occurred_at < s.cutoff
),

event_features AS (
    SELECT
        user_id,
        count(*) AS early_events,
        {event_counts}
        max(occurred_at) AS last_event_at
    FROM window_events
    GROUP BY user_id
),

activity_days AS (
    SELECT user_id, count(DISTINCT floor(epoch(occurred_at - signup_at) / 86400)) AS early_active_days
    FROM (
        SELECT user_id, signup_at, occurred_at FROM window_transactions
        UNION ALL
        SELECT user_id, signup_at, occurred_at FROM window_events
    )
    GROUP BY user_id
),

labels AS (
    SELECT
        s.user_id,
        sum(t.revenue) AS actual_ltv,
        coalesce(sum(t.revenue) FILTER (WHERE t.occurred_at >= s.send_at), 0) AS actual_future
    FROM selected AS s
    JOIN transactions AS t
        ON t.user_id = s.user_id
        AND t.occurred_at >= s.signup_at
        AND t.occurred_at < s.horizon_end
        AND t.occurred_at < CAST($as_of AS TIMESTAMP)
    WHERE s.horizon_end <= CAST($as_of AS TIMESTAMP)
    GROUP BY s.user_id
),

final AS (
    SELECT
        s.* EXCLUDE (cutoff, horizon_end),
        isodow(s.signup_at) AS signup_weekday,
        hour(s.signup_at) AS signup_hour,
        coalesce(tf.early_gross_revenue, 0) AS early_gross_revenue,
        coalesce(tf.early_refunds, 0) AS early_refunds,
        coalesce(tf.early_net_revenue, 0) AS early_net_revenue,
        coalesce(tf.early_purchases, 0) AS early_purchases,
        coalesce(tf.early_refund_count, 0) AS early_refund_count,
        CAST(coalesce(tf.early_purchases, 0) > 0 AS INTEGER) AS early_payer,
        coalesce(tf.early_max_purchase, 0) AS early_max_purchase,
        tf.hours_to_first_purchase,
        coalesce(ad.early_active_days, 0) AS early_active_days,
        epoch(s.cutoff - greatest(tf.last_transaction_at, ef.last_event_at)) / 3600 AS hours_since_last_activity,
        coalesce(ef.early_events, 0) AS early_events,
        ef.* EXCLUDE (user_id, early_events, last_event_at),
        CASE WHEN s.horizon_end <= CAST($as_of AS TIMESTAMP) THEN coalesce(l.actual_ltv, 0) END AS actual_ltv,
        CASE WHEN s.horizon_end <= CAST($as_of AS TIMESTAMP) THEN coalesce(l.actual_future, 0) END
            AS actual_future
    FROM selected AS s
    LEFT JOIN transaction_features AS tf ON tf.user_id = s.user_id
    LEFT JOIN event_features AS ef ON ef.user_id = s.user_id
    LEFT JOIN activity_days AS ad ON ad.user_id = s.user_id
    LEFT JOIN labels AS l ON l.user_id = s.user_id
)

SELECT * FROM final ORDER BY signup_at, user_id
