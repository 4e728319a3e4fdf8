-- golden: send day 3, population matured
-- rendered by `pltv sql` from pltv/sql/features.sql (feature SQL hash e3f8c202f71c02fc)
-- dialect: bigquery; parameters: @name; bq query --use_legacy_sql=false --parameter=name:TYPE:value
--   send_day INTEGER = 3
--   horizon_days INTEGER = 365
--   as_of TIMESTAMP = '2026-11-01 00:00:00'
--   population STRING = 'matured'
--   send_from TIMESTAMP = NULL
--   send_to TIMESTAMP = NULL
--   event_1 STRING = 'session'
--   event_2 STRING = 'view_item'
--   event_3 STRING = 'add_to_cart'
WITH population AS (
  SELECT
    u.user_id,
    u.signup_at,
    TIMESTAMP_ADD(u.signup_at, INTERVAL (CAST(@send_day AS INT64)) DAY) AS send_at,
    LEAST(
      TIMESTAMP_ADD(u.signup_at, INTERVAL (CAST(@send_day AS INT64)) DAY),
      CAST(@as_of AS TIMESTAMP)
    ) AS cutoff,
    TIMESTAMP_ADD(u.signup_at, INTERVAL (CAST(@horizon_days AS INT64)) DAY) AS horizon_end,
    CAST(u.`country` AS STRING) AS `country`,
    CAST(u.`platform` AS STRING) AS `platform`,
    CAST(u.`channel` AS STRING) AS `channel`
  FROM users AS u
  WHERE
    u.signup_at < CAST(@as_of AS TIMESTAMP)
), selected AS (
  SELECT
    *
  FROM population
  WHERE
    CASE CAST(@population AS STRING)
      WHEN 'matured'
      THEN horizon_end <= CAST(@as_of AS TIMESTAMP)
      WHEN 'reached'
      THEN send_at <= CAST(@as_of AS TIMESTAMP)
      WHEN 'send_window'
      THEN send_at >= CAST(@send_from AS TIMESTAMP)
      AND send_at < CAST(@send_to AS TIMESTAMP)
      WHEN 'all'
      THEN TRUE
      ELSE FALSE
    END
), window_transactions AS (
  SELECT
    s.user_id,
    s.signup_at,
    t.occurred_at,
    t.revenue
  FROM selected AS s
  JOIN transactions AS t
    ON t.user_id = s.user_id
    AND t.occurred_at >= s.signup_at
    AND t.occurred_at < s.cutoff
), transaction_features AS (
  SELECT
    user_id,
    COALESCE(CAST(SUM(CASE WHEN revenue > 0 THEN CAST(revenue AS NUMERIC) END) AS FLOAT64), 0) AS early_gross_revenue,
    COALESCE(-CAST(SUM(CASE WHEN revenue < 0 THEN CAST(revenue AS NUMERIC) END) AS FLOAT64), 0) AS early_refunds,
    CAST(SUM(CAST(revenue AS NUMERIC)) AS FLOAT64) AS early_net_revenue,
    COUNT(CASE WHEN revenue > 0 THEN 1 END) AS early_purchases,
    COUNT(CASE WHEN revenue < 0 THEN 1 END) AS early_refund_count,
    COALESCE(MAX(CASE WHEN revenue > 0 THEN revenue END), 0) AS early_max_purchase,
    CAST(UNIX_MICROS(MIN(CASE WHEN revenue > 0 THEN occurred_at END)) - UNIX_MICROS(signup_at) AS FLOAT64) / 1000000 / 3600 AS hours_to_first_purchase,
    MAX(occurred_at) AS last_transaction_at
  FROM window_transactions
  GROUP BY
    user_id,
    signup_at
), window_events AS (
  SELECT
    s.user_id,
    s.signup_at,
    e.occurred_at,
    e.event_name
  FROM selected AS s
  JOIN events AS e
    ON e.user_id = s.user_id
    AND e.occurred_at >= s.signup_at
    AND e.occurred_at < s.cutoff
), event_features AS (
  SELECT
    user_id,
    COUNT(*) AS early_events,
    COUNT(CASE WHEN event_name = @event_1 THEN 1 END) AS event_1,
    COUNT(CASE WHEN event_name = @event_2 THEN 1 END) AS event_2,
    COUNT(CASE WHEN event_name = @event_3 THEN 1 END) AS event_3,
    MAX(occurred_at) AS last_event_at
  FROM window_events
  GROUP BY
    user_id
), activity_days AS (
  SELECT
    user_id,
    COUNT(
      DISTINCT FLOOR(
        CAST(UNIX_MICROS(occurred_at) - UNIX_MICROS(signup_at) AS FLOAT64) / 1000000 / 86400
      )
    ) AS early_active_days
  FROM (
    SELECT
      user_id,
      signup_at,
      occurred_at
    FROM window_transactions
    UNION ALL
    SELECT
      user_id,
      signup_at,
      occurred_at
    FROM window_events
  ) AS activity
  GROUP BY
    user_id
), labels AS (
  SELECT
    s.user_id,
    CAST(SUM(CAST(t.revenue AS NUMERIC)) AS FLOAT64) AS actual_ltv,
    COALESCE(
      CAST(SUM(CASE WHEN t.occurred_at >= s.send_at THEN CAST(t.revenue AS NUMERIC) END) AS FLOAT64),
      0
    ) AS actual_future
  FROM selected AS s
  JOIN transactions AS t
    ON t.user_id = s.user_id
    AND t.occurred_at >= s.signup_at
    AND t.occurred_at < s.horizon_end
    AND t.occurred_at < CAST(@as_of AS TIMESTAMP)
  WHERE
    s.horizon_end <= CAST(@as_of AS TIMESTAMP)
  GROUP BY
    s.user_id
), final AS (
  SELECT
    s.user_id,
    s.signup_at,
    s.send_at,
    s.`country`,
    s.`platform`,
    s.`channel`,
    CAST(MOD(
      MOD(
        CAST(FLOOR(CAST(UNIX_MICROS(s.signup_at) AS FLOAT64) / 1000000 / 86400) AS INT64),
        7
      ) + 10,
      7
    ) + 1 AS INT64) AS signup_weekday,
    EXTRACT(HOUR FROM s.signup_at) AS signup_hour,
    COALESCE(tf.early_gross_revenue, 0) AS early_gross_revenue,
    COALESCE(tf.early_refunds, 0) AS early_refunds,
    COALESCE(tf.early_net_revenue, 0) AS early_net_revenue,
    COALESCE(tf.early_purchases, 0) AS early_purchases,
    COALESCE(tf.early_refund_count, 0) AS early_refund_count,
    CAST(COALESCE(tf.early_purchases, 0) > 0 AS INT64) AS early_payer,
    COALESCE(tf.early_max_purchase, 0) AS early_max_purchase,
    tf.hours_to_first_purchase,
    COALESCE(ad.early_active_days, 0) AS early_active_days,
    CAST(UNIX_MICROS(s.cutoff) - CASE
      WHEN ef.last_event_at IS NULL OR tf.last_transaction_at >= ef.last_event_at
      THEN UNIX_MICROS(tf.last_transaction_at)
      ELSE UNIX_MICROS(ef.last_event_at)
    END AS FLOAT64) / 1000000 / 3600 AS hours_since_last_activity,
    COALESCE(ef.early_events, 0) AS early_events,
    ef.event_1,
    ef.event_2,
    ef.event_3,
    CASE
      WHEN s.horizon_end <= CAST(@as_of AS TIMESTAMP)
      THEN COALESCE(l.actual_ltv, 0)
    END AS actual_ltv,
    CASE
      WHEN s.horizon_end <= CAST(@as_of AS TIMESTAMP)
      THEN COALESCE(l.actual_future, 0)
    END AS actual_future
  FROM selected AS s
  LEFT JOIN transaction_features AS tf
    ON tf.user_id = s.user_id
  LEFT JOIN event_features AS ef
    ON ef.user_id = s.user_id
  LEFT JOIN activity_days AS ad
    ON ad.user_id = s.user_id
  LEFT JOIN labels AS l
    ON l.user_id = s.user_id
)
SELECT
  *
FROM final
ORDER BY
  signup_at NULLS LAST,
  user_id NULLS LAST

-- golden: event names
-- rendered by `pltv sql` from pltv/sql/event_names.sql (feature SQL hash e3f8c202f71c02fc)
-- dialect: bigquery; parameters: @name; bq query --use_legacy_sql=false --parameter=name:TYPE:value
--   as_of TIMESTAMP = '2026-11-01 00:00:00'
--   limit INTEGER = 30
WITH known_events AS (
  SELECT
    event_name
  FROM events
  WHERE
    occurred_at < CAST(@as_of AS TIMESTAMP) AND NOT event_name IS NULL
), final AS (
  SELECT
    event_name,
    COUNT(*) AS n
  FROM known_events
  GROUP BY
    event_name
  ORDER BY
    n DESC,
    event_name NULLS LAST
  LIMIT CAST(@limit AS INT64)
)
SELECT
  *
FROM final
