-- golden: send day 3, population matured
-- rendered by `pltv sql` from pltv/sql/features.sql (feature SQL hash e3f8c202f71c02fc)
-- dialect: snowflake; parameters: :name; bind variables of the connector or a Snowflake Scripting block; TIMEZONE = 'UTC'
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
    DATEADD(DAY, CAST(:send_day AS INT), u.signup_at) AS send_at,
    LEAST_IGNORE_NULLS(DATEADD(DAY, CAST(:send_day AS INT), u.signup_at), CAST(:as_of AS TIMESTAMPNTZ)) AS cutoff,
    DATEADD(DAY, CAST(:horizon_days AS INT), u.signup_at) AS horizon_end,
    CAST(u.country AS VARCHAR) AS country,
    CAST(u.platform AS VARCHAR) AS platform,
    CAST(u.channel AS VARCHAR) AS channel
  FROM users AS u
  WHERE
    u.signup_at < CAST(:as_of AS TIMESTAMPNTZ)
), selected AS (
  SELECT
    *
  FROM population
  WHERE
    CASE CAST(:population AS VARCHAR)
      WHEN 'matured'
      THEN horizon_end <= CAST(:as_of AS TIMESTAMPNTZ)
      WHEN 'reached'
      THEN send_at <= CAST(:as_of AS TIMESTAMPNTZ)
      WHEN 'send_window'
      THEN send_at >= CAST(:send_from AS TIMESTAMPNTZ)
      AND send_at < CAST(:send_to AS TIMESTAMPNTZ)
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
    COALESCE(
      CAST(SUM(CASE WHEN revenue > 0 THEN CAST(revenue AS DECIMAL(18, 6)) END) AS DOUBLE),
      0
    ) AS early_gross_revenue,
    COALESCE(
      -CAST(SUM(CASE WHEN revenue < 0 THEN CAST(revenue AS DECIMAL(18, 6)) END) AS DOUBLE),
      0
    ) AS early_refunds,
    CAST(SUM(CAST(revenue AS DECIMAL(18, 6))) AS DOUBLE) AS early_net_revenue,
    COUNT(CASE WHEN revenue > 0 THEN 1 END) AS early_purchases,
    COUNT(CASE WHEN revenue < 0 THEN 1 END) AS early_refund_count,
    COALESCE(MAX(CASE WHEN revenue > 0 THEN revenue END), 0) AS early_max_purchase,
    CAST(DATE_PART(EPOCH_MICROSECOND, MIN(CASE WHEN revenue > 0 THEN occurred_at END)) - DATE_PART(EPOCH_MICROSECOND, signup_at) AS DOUBLE) / 1000000 / 3600 AS hours_to_first_purchase,
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
    COUNT(CASE WHEN event_name = :event_1 THEN 1 END) AS event_1,
    COUNT(CASE WHEN event_name = :event_2 THEN 1 END) AS event_2,
    COUNT(CASE WHEN event_name = :event_3 THEN 1 END) AS event_3,
    MAX(occurred_at) AS last_event_at
  FROM window_events
  GROUP BY
    user_id
), activity_days AS (
  SELECT
    user_id,
    COUNT(
      DISTINCT FLOOR(
        CAST(DATE_PART(EPOCH_MICROSECOND, occurred_at) - DATE_PART(EPOCH_MICROSECOND, signup_at) AS DOUBLE) / 1000000 / 86400
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
    CAST(SUM(CAST(t.revenue AS DECIMAL(18, 6))) AS DOUBLE) AS actual_ltv,
    COALESCE(
      CAST(SUM(CASE WHEN t.occurred_at >= s.send_at THEN CAST(t.revenue AS DECIMAL(18, 6)) END) AS DOUBLE),
      0
    ) AS actual_future
  FROM selected AS s
  JOIN transactions AS t
    ON t.user_id = s.user_id
    AND t.occurred_at >= s.signup_at
    AND t.occurred_at < s.horizon_end
    AND t.occurred_at < CAST(:as_of AS TIMESTAMPNTZ)
  WHERE
    s.horizon_end <= CAST(:as_of AS TIMESTAMPNTZ)
  GROUP BY
    s.user_id
), final AS (
  SELECT
    s.user_id,
    s.signup_at,
    s.send_at,
    s.country,
    s.platform,
    s.channel,
    CAST((
      CAST(FLOOR(CAST(DATE_PART(EPOCH_MICROSECOND, s.signup_at) AS DOUBLE) / 1000000 / 86400) AS BIGINT) % 7 + 10
    ) % 7 + 1 AS INT) AS signup_weekday,
    HOUR(s.signup_at) AS signup_hour,
    COALESCE(tf.early_gross_revenue, 0) AS early_gross_revenue,
    COALESCE(tf.early_refunds, 0) AS early_refunds,
    COALESCE(tf.early_net_revenue, 0) AS early_net_revenue,
    COALESCE(tf.early_purchases, 0) AS early_purchases,
    COALESCE(tf.early_refund_count, 0) AS early_refund_count,
    CAST(COALESCE(tf.early_purchases, 0) > 0 AS INT) AS early_payer,
    COALESCE(tf.early_max_purchase, 0) AS early_max_purchase,
    tf.hours_to_first_purchase,
    COALESCE(ad.early_active_days, 0) AS early_active_days,
    CAST(DATE_PART(EPOCH_MICROSECOND, s.cutoff) - CASE
      WHEN ef.last_event_at IS NULL OR tf.last_transaction_at >= ef.last_event_at
      THEN DATE_PART(EPOCH_MICROSECOND, tf.last_transaction_at)
      ELSE DATE_PART(EPOCH_MICROSECOND, ef.last_event_at)
    END AS DOUBLE) / 1000000 / 3600 AS hours_since_last_activity,
    COALESCE(ef.early_events, 0) AS early_events,
    ef.event_1,
    ef.event_2,
    ef.event_3,
    CASE
      WHEN s.horizon_end <= CAST(:as_of AS TIMESTAMPNTZ)
      THEN COALESCE(l.actual_ltv, 0)
    END AS actual_ltv,
    CASE
      WHEN s.horizon_end <= CAST(:as_of AS TIMESTAMPNTZ)
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
  signup_at,
  user_id

-- golden: event names
-- rendered by `pltv sql` from pltv/sql/event_names.sql (feature SQL hash e3f8c202f71c02fc)
-- dialect: snowflake; parameters: :name; bind variables of the connector or a Snowflake Scripting block; TIMEZONE = 'UTC'
--   as_of TIMESTAMP = '2026-11-01 00:00:00'
--   limit INTEGER = 30
WITH known_events AS (
  SELECT
    event_name
  FROM events
  WHERE
    occurred_at < CAST(:as_of AS TIMESTAMPNTZ) AND NOT event_name IS NULL
), final AS (
  SELECT
    event_name,
    COUNT(*) AS n
  FROM known_events
  GROUP BY
    event_name
  ORDER BY
    n DESC NULLS LAST,
    event_name
  LIMIT CAST(:limit AS INT)
)
SELECT
  *
FROM final
