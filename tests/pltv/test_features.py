"""Feature SQL: rows in / rows out on in-memory DuckDB, point-in-time windows, maturity, leakage audits."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pltv.errors import ConfigError
from pltv.features import (
    build_features,
    default_as_of,
    discover_event_names,
    event_columns,
    feature_columns,
    feature_sql_hash,
)

T0 = datetime(2025, 1, 1, 12, 0)
AS_OF = datetime(2026, 3, 1)


def _con(users, transactions, events=()) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE users (user_id VARCHAR, signup_at TIMESTAMP, country VARCHAR, platform VARCHAR, "
        "channel VARCHAR)"
    )
    con.execute("CREATE TABLE transactions (user_id VARCHAR, occurred_at TIMESTAMP, revenue DOUBLE)")
    con.execute("CREATE TABLE events (user_id VARCHAR, occurred_at TIMESTAMP, event_name VARCHAR)")
    con.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", [list(u) for u in users])
    if transactions:
        con.executemany("INSERT INTO transactions VALUES (?, ?, ?)", [list(t) for t in transactions])
    if events:
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", [list(e) for e in events])
    return con


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


@pytest.fixture()
def small():
    """Two matured users (one payer with a refund, one browser) and one user signed up too recently."""
    users = [
        ("a", T0, "US", "web", "paid_social"),
        ("b", T0 + _h(30), "DE", "ios", "organic"),
        ("c", AS_OF - timedelta(days=10), "US", "android", "referral"),
    ]
    transactions = [
        ("a", T0 + _h(2), 50.0),  # inside d=1 and d=3
        ("a", T0 + _h(30), -20.0),  # refund, inside d=3 only
        ("a", T0 + _h(24 * 10), 100.0),  # after d=7: future
        ("a", T0 + timedelta(days=366), 999.0),  # after the 365-day horizon: in no label
        ("c", AS_OF - timedelta(days=9), 10.0),
    ]
    events = [
        ("a", T0 + _h(1), "session"),
        ("a", T0 + _h(1.5), "add_to_cart"),
        ("b", T0 + _h(31), "session"),
        ("b", T0 + _h(40), "session"),
        ("b", T0 + _h(30 + 24 * 5), "view_item"),
    ]
    return _con(users, transactions, events)


def test_matured_population_holds_only_matured_users_with_labels(small):
    """Rows out: one per matured user; the unmatured user never appears; labels follow the horizon."""
    f = build_features(small, send_day=1, as_of=AS_OF, horizon_days=365)
    assert list(f["user_id"]) == ["a", "b"]
    a = f.set_index("user_id").loc["a"]
    assert a["actual_ltv"] == pytest.approx(130.0)  # 50 - 20 + 100; the day-366 purchase is excluded
    assert a["actual_future"] == pytest.approx(80.0)  # -20 + 100 after the send moment
    assert f.set_index("user_id").loc["b", "actual_ltv"] == 0.0


def test_window_features_are_hand_computed_values(small):
    """Send day 3: revenue, refunds, counts, timing and event counts match a hand computation."""
    f = build_features(small, send_day=3, as_of=AS_OF).set_index("user_id")
    a = f.loc["a"]
    assert a["early_gross_revenue"] == 50.0
    assert a["early_refunds"] == 20.0
    assert a["early_net_revenue"] == 30.0
    assert a["early_purchases"] == 1 and a["early_refund_count"] == 1
    assert a["early_payer"] == 1 and a["early_max_purchase"] == 50.0
    assert a["hours_to_first_purchase"] == pytest.approx(2.0)
    assert a["early_active_days"] == 2  # day 0 (purchase, events) and day 1 (refund)
    assert a["hours_since_last_activity"] == pytest.approx(72 - 30)
    assert a["event__session"] == 1 and a["event__add_to_cart"] == 1 and a["early_events"] == 2
    b = f.loc["b"]
    assert b["early_payer"] == 0 and pd.isna(b["hours_to_first_purchase"])
    assert b["event__session"] == 2 and b["event__view_item"] == 0  # the view is on day 5
    assert (a["country"], a["platform"], a["channel"]) == ("US", "web", "paid_social")
    assert a["signup_weekday"] == 3 and a["signup_hour"] == 12  # 2025-01-01 was a Wednesday


def test_send_day_zero_sees_attributes_only(small):
    """d = 0: the window is empty, so every behaviour feature is zero or missing."""
    f = build_features(small, send_day=0, as_of=AS_OF)
    assert (f["early_gross_revenue"] == 0).all() and (f["early_events"] == 0).all()
    assert f["hours_to_first_purchase"].isna().all()
    events = [c for c in f.columns if c.startswith("event__")]
    assert events and (f[events] == 0).all().all()  # names exist, counts in empty windows are 0


def test_send_window_population_selects_by_send_moment_without_labels(small):
    """send_window: users whose signup + d days lies in [from, to); labels stay empty."""
    send_from, send_to = AS_OF - timedelta(days=10) + timedelta(days=1), AS_OF - timedelta(days=8)
    f = build_features(
        small, send_day=1, as_of=send_to, population="send_window", send_from=send_from, send_to=send_to
    )
    assert list(f["user_id"]) == ["c"]
    assert f["actual_ltv"].isna().all() and f["actual_future"].isna().all()
    assert f.loc[0, "early_gross_revenue"] == 0.0  # the purchase is 24 h after signup: outside d = 1


def test_scoring_with_stored_event_names_builds_the_same_columns(small):
    """Names stored in a model give the same columns; a name absent from the data counts zero."""
    names = ["session", "never_seen", "add_to_cart"]
    f = build_features(small, send_day=3, as_of=AS_OF, event_names=names)
    assert [c for c in f.columns if c.startswith("event__")] == event_columns(names)
    assert (f["event__never_seen"] == 0).all()
    assert discover_event_names(small, as_of=AS_OF) == ["session", "add_to_cart", "view_item"]
    assert discover_event_names(small, as_of=T0 + _h(1.2)) == ["session"]  # only rows before as_of


def test_appending_rows_after_the_send_day_or_as_of_changes_no_feature(small):
    """Leakage: transactions and events after the send moment (or after as_of) leave features unchanged."""
    before = build_features(small, send_day=3, as_of=AS_OF, event_names=["session", "add_to_cart"])
    small.executemany(
        "INSERT INTO transactions VALUES (?, ?, ?)",
        [["a", T0 + timedelta(days=3), 500.0], ["b", T0 + _h(30 + 72), 7.0], ["c", AS_OF, 5.0]],
    )
    small.executemany(
        "INSERT INTO events VALUES (?, ?, ?)",
        [["a", T0 + timedelta(days=3), "session"], ["b", AS_OF + _h(1), "add_to_cart"]],
    )
    after = build_features(small, send_day=3, as_of=AS_OF, event_names=["session", "add_to_cart"])
    cols = feature_columns(before)
    pd.testing.assert_frame_equal(before[cols], after[cols])


def test_rows_after_as_of_never_reach_features_in_the_send_window():
    """Scoring: a window truncated by as_of ignores rows at or after as_of."""
    con = _con([("u", AS_OF - _h(12), "US", "web", "organic")], [("u", AS_OF - _h(1), 10.0)])
    kwargs = dict(send_day=1, as_of=AS_OF, population="all", event_names=[])  # send moment after as_of
    before = build_features(con, **kwargs)
    con.execute("INSERT INTO transactions VALUES ('u', ?, 99.0)", [AS_OF + _h(1)])
    after = build_features(con, **kwargs)
    assert before["early_gross_revenue"].item() == after["early_gross_revenue"].item() == 10.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=24 * 30, allow_nan=False), min_size=1, max_size=12),
    send_day=st.integers(min_value=0, max_value=14),
)
def test_features_only_count_rows_inside_the_window(offsets, send_day):
    """Property: early revenue equals the sum over rows with signup <= t < signup + d days, whatever the rows."""
    tx = [("u", T0 + _h(h), 1.0 + i) for i, h in enumerate(offsets)]
    con = _con([("u", T0, "US", "web", "organic")], tx)
    f = build_features(con, send_day=send_day, as_of=AS_OF, event_names=[])
    expected = sum(r for _, t, r in tx if t < T0 + timedelta(days=send_day))
    assert f["early_gross_revenue"].item() == pytest.approx(expected)
    assert f["actual_ltv"].item() == pytest.approx(sum(r for *_, r in tx))


def test_missing_attribute_columns_become_empty_categoricals():
    """A source without platform/channel still yields the columns (all missing)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE users AS SELECT 'u' AS user_id, TIMESTAMP '2025-01-01' AS signup_at")
    con.execute("CREATE TABLE transactions (user_id VARCHAR, occurred_at TIMESTAMP, revenue DOUBLE)")
    con.execute("CREATE TABLE events (user_id VARCHAR, occurred_at TIMESTAMP, event_name VARCHAR)")
    f = build_features(con, send_day=1, as_of=AS_OF)
    assert f["country"].isna().all() and f["channel"].isna().all()


def test_invalid_windows_are_refused(small):
    """send_day must be below the horizon; send_window needs both bounds."""
    with pytest.raises(ConfigError):
        build_features(small, send_day=365, as_of=AS_OF, horizon_days=365)
    with pytest.raises(ConfigError):
        build_features(small, send_day=1, as_of=AS_OF, population="send_window")


def test_default_as_of_is_midnight_after_data_end():
    """as_of defaults to the day after the last timestamp, 00:00 UTC."""
    assert default_as_of(datetime(2026, 10, 31, 23, 56)) == datetime(2026, 11, 1)
    assert default_as_of(pd.Timestamp("2026-10-31T23:00:00+02:00")) == datetime(2026, 11, 1)
    assert len(feature_sql_hash()) == 16
