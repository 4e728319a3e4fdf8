-- features.sql: point-in-time pLTV features and labels, one query for training and daily scoring.
--
-- Grain: one row per user of the selected population.  Time column: occurred_at (UTC TIMESTAMP).
-- Feature window (no leakage): signup_at <= occurred_at < least(signup_at + $send_day days, $as_of).
-- Labels, NULL unless the user has matured (signup_at + $horizon_days days <= $as_of):
--   actual_ltv    = net revenue in [signup_at, signup_at + $horizon_days days)
--   actual_future = net revenue in [signup_at + $send_day days, signup_at + $horizon_days days)
-- Units: revenue in the source currency (refunds negative; summed to 6 decimals), durations in hours, counts.
--
-- Bound parameters: $send_day INTEGER, $horizon_days INTEGER, $as_of TIMESTAMP,
--   $population VARCHAR ('matured' | 'reached' | 'send_window' | 'all'; checked by pltv.features),
--   $send_from / $send_to TIMESTAMP (send_window: signup_at + $send_day days in [$send_from, $send_to)),
--   $event_1 .. $event_n VARCHAR (the event names counted as features).
-- Templated by pltv.features (allow-listed only, never data values):
--   the attributes placeholder: quoted user columns checked against the users table (or NULL::VARCHAR);
--   attribute_columns: the same names selected from the population; event_counts / event_columns:
--   count(CASE WHEN event_name = $event_i THEN 1 END) AS event_i, and ef.event_i, i = 1..n.
--
-- Portable subset: pltv.sql_render renders this file for Spark, Databricks, BigQuery and Snowflake with
-- sqlglot. Only two DuckDB functions are rewritten there, per dialect: `ts + to_days(n)` and
-- `epoch_us(ts)` (microseconds since 1970 as BIGINT). Everything else is written in constructs sqlglot
-- transpiles correctly: no FILTER, EXCLUDE, isodow, greatest, any_value, error() or INTERVAL parameters;
-- divisions are DOUBLE / integer literal (a decimal literal becomes DECIMAL in Spark). Revenue is summed
-- as DECIMAL(18, 6), exactly, then cast to DOUBLE: a sum of doubles depends on the order rows arrive in,
-- which differs between engines (and between DuckDB runs with several threads) in the last bit.
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
        WHEN 'reached' THEN send_at <= CAST($as_of AS TIMESTAMP)
        WHEN 'send_window' THEN send_at >= CAST($send_from AS TIMESTAMP)
            AND send_at < CAST($send_to AS TIMESTAMP)
        WHEN 'all' THEN true
        ELSE false
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
        coalesce(CAST(sum(CASE WHEN revenue > 0 THEN CAST(revenue AS DECIMAL(18, 6)) END) AS DOUBLE), 0)
            AS early_gross_revenue,
        coalesce(-CAST(sum(CASE WHEN revenue < 0 THEN CAST(revenue AS DECIMAL(18, 6)) END) AS DOUBLE), 0)
            AS early_refunds,
        CAST(sum(CAST(revenue AS DECIMAL(18, 6))) AS DOUBLE) AS early_net_revenue,
        count(CASE WHEN revenue > 0 THEN 1 END) AS early_purchases,
        count(CASE WHEN revenue < 0 THEN 1 END) AS early_refund_count,
        coalesce(max(CASE WHEN revenue > 0 THEN revenue END), 0) AS early_max_purchase,
        CAST(epoch_us(min(CASE WHEN revenue > 0 THEN occurred_at END)) - epoch_us(signup_at) AS DOUBLE)
            / 1000000 / 3600 AS hours_to_first_purchase,
        max(occurred_at) AS last_transaction_at
    FROM window_transactions
    GROUP BY user_id, signup_at
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
    SELECT
        user_id,
        count(DISTINCT floor(CAST(epoch_us(occurred_at) - epoch_us(signup_at) AS DOUBLE) / 1000000 / 86400))
            AS early_active_days
    FROM (
        SELECT user_id, signup_at, occurred_at FROM window_transactions
        UNION ALL
        SELECT user_id, signup_at, occurred_at FROM window_events
    ) AS activity
    GROUP BY user_id
),

labels AS (
    SELECT
        s.user_id,
        CAST(sum(CAST(t.revenue AS DECIMAL(18, 6))) AS DOUBLE) AS actual_ltv,
        coalesce(
            CAST(sum(CASE WHEN t.occurred_at >= s.send_at THEN CAST(t.revenue AS DECIMAL(18, 6)) END) AS DOUBLE), 0
        ) AS actual_future
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
        s.user_id,
        s.signup_at,
        s.send_at,
        {attribute_columns}
        -- ISO weekday (Monday 1 .. Sunday 7): day 0 of the epoch, 1970-01-01, was a Thursday (4)
        CAST((CAST(floor(CAST(epoch_us(s.signup_at) AS DOUBLE) / 1000000 / 86400) AS BIGINT) % 7 + 10) % 7 + 1
            AS INTEGER) AS signup_weekday,
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
        CAST(
            epoch_us(s.cutoff) - CASE
                WHEN ef.last_event_at IS NULL OR tf.last_transaction_at >= ef.last_event_at
                    THEN epoch_us(tf.last_transaction_at)
                ELSE epoch_us(ef.last_event_at)
            END AS DOUBLE
        ) / 1000000 / 3600 AS hours_since_last_activity,
        coalesce(ef.early_events, 0) AS early_events,
        {event_columns}
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
