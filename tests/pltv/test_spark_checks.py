"""The data contract on both engines: the same bad Parquet export (or column mapping) raises the same error.

Each case breaks one rule of :mod:`pltv.source_checks` in a small export; :func:`pltv.sources.open_source`
(DuckDB) and :class:`pltv.spark.SparkEngine` must raise the same exception class with the same message, and
the message must not hold the personal data planted in the broken row. One local Spark session for the module.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pltv.config import SourceConfig
from pltv.errors import DataQualityError, SchemaError
from pltv.sources import open_source
from pltv.spark import SparkEngine

SECRET = "jane.secret@example.com"


@pytest.fixture(scope="module")
def spark(spark):
    """The suite's session with one shuffle partition: the tables here are tiny (one task per stage)."""
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield spark
    spark.conf.set("spark.sql.shuffle.partitions", "4")


def _users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3", "u4"],
            "signup_at": pd.to_datetime(
                ["2025-01-01 10:00", "2025-01-02 11:00", "2025-01-03 12:00", "2025-01-04 13:00"], utc=True
            ),
            "email": [SECRET, None, "bob@example.org", None],
            "consent": [True, False, True, None],
            "ldu": [False, False, None, True],
        }
    )


def _transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3", "t4"],
            "user_id": ["u1", "u1", "u2", "u3"],
            "occurred_at": pd.to_datetime(
                ["2025-01-01 11:00", "2025-01-05 00:00", "2025-01-02 12:00", "2025-01-04 00:00"], utc=True
            ),
            "revenue": [20.0, -5.0, 30.0, 12.5],
            "currency": ["USD"] * 4,
        }
    )


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "occurred_at": pd.to_datetime(
                ["2025-01-01 10:05", "2025-01-02 11:30", "2025-01-03 12:01"], utc=True
            ),
            "event_name": ["session", "session", "add_to_cart"],
        }
    )


def _as_text(frame: pd.DataFrame, column: str, row: int, value: str) -> pd.DataFrame:
    """``column`` as ISO text (a Parquet string column), with ``value`` in ``row``."""
    frame = frame.copy()
    text = frame[column].map(
        lambda v: None if pd.isna(v) else (v.isoformat() if hasattr(v, "isoformat") else str(v))
    )
    frame[column] = text.astype(object)
    frame.loc[row, column] = value
    return frame


def _set(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


# (users, transactions, events) -> the broken export; the expected message, as a pattern
CASES = {
    "null user_id": (
        lambda u, t, e: (_set(u, "user_id", 1, None), t, e),
        r"table 'users', column 'user_id': 1 row\(s\) have no user_id$",
    ),
    "null signup_at": (
        lambda u, t, e: (_set(u, "signup_at", 2, pd.NaT), t, e),
        r"table 'users', column 'signup_at': 1 row\(s\) have no signup time \(first user_id = u3\)$",
    ),
    "unparseable signup_at": (
        lambda u, t, e: (_as_text(u, "signup_at", 1, SECRET), t, e),
        r"table 'users', column 'signup_at': 1 value\(s\) are not parseable timestamps \(first user_id = u2\); "
        r"use ISO 8601",
    ),
    "unparseable conversion_sent_at": (
        lambda u, t, e: (
            u.assign(conversion_sent_at=["2025-02-01T00:00:00Z", "31/01/2026", None, "x"]),
            t,
            e,
        ),
        r"table 'users', column 'conversion_sent_at': 2 value\(s\) are not parseable timestamps "
        r"\(first user_id = u2\)",
    ),
    "signup_at in the future": (
        lambda u, t, e: (_set(u, "signup_at", 1, pd.Timestamp("9999-12-31", tz="UTC")), t, e),
        r"table 'users', column 'signup_at': 1 signup time\(s\) are in the future .*first user_id = u2\)",
    ),
    "duplicate user_id": (
        lambda u, t, e: (_set(_set(u, "user_id", 2, "u1"), "user_id", 3, "u1"), t, e),
        r"table 'users', column 'user_id': 1 user_id value\(s\) appear more than once \(first user_id = u1\)",
    ),
    "non-boolean ldu": (
        lambda u, t, e: (_as_text(u, "ldu", 3, SECRET), t, e),
        r"table 'users', column 'ldu': 1 value\(s\) are not booleans \(first user_id = u4\)",
    ),
    "unparseable occurred_at": (
        lambda u, t, e: (u, _as_text(t, "occurred_at", 2, "yesterday-ish"), e),
        r"table 'transactions', column 'occurred_at': 1 value\(s\) are not parseable timestamps "
        r"\(first transaction_id = t3\)",
    ),
    "non-numeric revenue": (
        lambda u, t, e: (u, _as_text(_as_text(t, "revenue", 1, "12,50"), "revenue", 3, "n/a"), e),
        r"table 'transactions', column 'revenue': 2 value\(s\) are not numbers \(first transaction_id = t2\); "
        r"1 of them look like decimal commas",
    ),
    "non-finite revenue": (
        lambda u, t, e: (
            u,
            _set(
                _set(t, "revenue", 1, 2e12), "revenue", 2, float("-inf")
            ),  # (a float NaN is written as null)
            e,
        ),
        r"table 'transactions', column 'revenue': 2 value\(s\) are not finite amounts .*first transaction_id = t2",
    ),
    "nan revenue as text": (
        lambda u, t, e: (u, _as_text(t, "revenue", 0, "NaN"), e),
        r"column 'revenue': 1 value\(s\) are not finite amounts \(nan, inf or beyond \+-1e\+12; "
        r"first transaction_id = t1\)",
    ),
    "mixed currency": (
        lambda u, t, e: (u, _set(_set(t, "currency", 0, " eur "), "currency", 3, "GBP"), e),
        r"table 'transactions', column 'currency': found \['EUR', 'GBP', 'USD'\], expected only USD; ",
    ),
    "unparseable event time": (
        lambda u, t, e: (u, t, _as_text(e, "occurred_at", 2, "2025-13-45 10:00")),
        r"table 'events', column 'occurred_at': 1 value\(s\) are not parseable timestamps \(first user_id = u3\)",
    ),
}


def _export(root: Path, users: pd.DataFrame, tx: pd.DataFrame, events: pd.DataFrame) -> Path:
    root.mkdir(parents=True)
    users.to_parquet(root / "users.parquet", index=False)
    tx.to_parquet(root / "transactions.parquet", index=False)
    events.to_parquet(root / "events.parquet", index=False)
    return root


def _same_minute(text: str) -> str:
    """The future-signup message names the cutoff minute, which each engine reads from its own clock."""
    return re.sub(r"after \d{4}-\d\d-\d\d \d\d:\d\d UTC", "after <cutoff> UTC", text)


@pytest.mark.parametrize("case", list(CASES))
def test_both_engines_refuse_a_bad_export_with_the_same_error(tmp_path, spark, case):
    """Same class, same message (naming table, column, count and first key), no personal data in it."""
    breakage, pattern = CASES[case]
    root = _export(tmp_path / "export", *breakage(_users(), _transactions(), _events()))
    with pytest.raises(DataQualityError) as duck:
        open_source(root)
    with pytest.raises(DataQualityError) as sparky:
        SparkEngine(root, spark=spark)
    assert re.search(pattern, str(duck.value)), str(duck.value)
    assert type(sparky.value) is type(duck.value)
    assert _same_minute(str(sparky.value)) == _same_minute(str(duck.value))
    assert SECRET not in str(duck.value)


@pytest.mark.parametrize(
    ("mapping", "pattern"),
    [
        (
            {"signup_ts": "signup_at"},
            r"column mapping for table 'users': source column 'signup_ts' not found",
        ),
        ({"email": "signup_at"}, r"'email' -> 'signup_at' collides with an existing column 'signup_at'"),
        (
            {"signup_at": "created"},
            r"table 'users' is missing required column\(s\) \['signup_at'\] \(found: ",
        ),
    ],
)
def test_both_engines_refuse_a_bad_column_mapping_with_the_same_error(tmp_path, spark, mapping, pattern):
    root = _export(tmp_path / "export", _users(), _transactions(), _events())
    config = SourceConfig(path=str(root), columns={"users": mapping})
    with pytest.raises(SchemaError, match=pattern) as duck:
        open_source(config)
    with pytest.raises(SchemaError) as sparky:
        SparkEngine(config, spark=spark)
    assert str(sparky.value) == str(duck.value)


def test_the_first_broken_rule_is_reported_first_on_both_engines(tmp_path, spark):
    """Several broken rules: both engines name the same one, the first in the contract's order."""
    users = _set(
        _as_text(_users(), "consent", 0, "maybe"), "user_id", 3, "u1"
    )  # booleans come after duplicates
    tx = _set(_transactions(), "currency", 0, "EUR")
    root = _export(tmp_path / "export", users, tx, _events())
    with pytest.raises(DataQualityError, match="appear more than once") as duck:
        open_source(root)
    with pytest.raises(DataQualityError) as sparky:
        SparkEngine(root, spark=spark)
    assert str(sparky.value) == str(duck.value)


def test_a_clean_text_export_gives_both_engines_the_same_typed_users(tmp_path, spark):
    """Text timestamps with offsets, text booleans and a mapped column: accepted, typed alike (UTC, BOOLEAN)."""
    users = _as_text(_users(), "signup_at", 1, "2025-01-02 12:00:00+01:00")
    users = _as_text(users, "consent", 0, "true").rename(columns={"signup_at": "created"})
    tx = _as_text(_transactions(), "revenue", 2, " 30.0 ")
    root = _export(tmp_path / "export", users, tx, _events())
    config = SourceConfig(path=str(root), columns={"users": {"created": "signup_at"}})
    with open_source(config) as src:
        duck = src.con.execute("SELECT user_id, signup_at, consent, ldu FROM users ORDER BY user_id").df()
        duck_tx = src.con.execute("SELECT transaction_id, revenue FROM transactions ORDER BY 1").df()
    engine = SparkEngine(config, spark=spark)
    sparky = spark.sql("SELECT user_id, signup_at, consent, ldu FROM users ORDER BY user_id").toPandas()
    spark_tx = spark.sql("SELECT transaction_id, revenue FROM transactions ORDER BY 1").toPandas()
    duck, sparky, duck_tx, spark_tx = (
        f.astype(object).where(f.notna(), None) for f in (duck, sparky, duck_tx, spark_tx)
    )
    assert engine.user_columns[:3] == ("user_id", "signup_at", "consent")
    assert duck["signup_at"].iloc[1] == pd.Timestamp("2025-01-02 11:00")
    pd.testing.assert_frame_equal(duck, sparky, check_dtype=False)
    pd.testing.assert_frame_equal(duck_tx, spark_tx, check_dtype=False)


def test_both_engines_drop_and_count_the_same_rows(tmp_path, spark):
    """The row cleaning is one rule list: every drop reason, counted the same on both engines, and the
    kept rows equal (a duplicated transaction_id keeps its earliest copy on both)."""
    late = pd.Timestamp("2099-01-01", tz="UTC")
    tx = pd.concat(
        [
            _transactions(),
            pd.DataFrame(
                {
                    "transaction_id": ["t1", "t5", "t6", "t7", "t8"],
                    "user_id": ["u1", "ghost", "u2", "u3", "u4"],
                    "occurred_at": [
                        pd.Timestamp(
                            "2025-01-01 10:30", tz="UTC"
                        ),  # a later copy of t1: dropped as duplicate
                        pd.Timestamp("2025-01-06", tz="UTC"),  # unknown user
                        pd.Timestamp("2025-01-01", tz="UTC"),  # before u2's signup
                        late,  # in the future
                        pd.Timestamp("2025-01-05", tz="UTC"),
                    ],
                    "revenue": [99.0, 1.0, 2.0, 3.0, None],  # t8: null revenue
                    "currency": ["USD"] * 5,
                }
            ),
        ],
        ignore_index=True,
    )
    events = pd.concat(
        [
            _events(),
            pd.DataFrame(
                {
                    "user_id": ["ghost", "u1", "u2"],
                    "occurred_at": [
                        pd.Timestamp("2025-01-06", tz="UTC"),
                        late,
                        pd.Timestamp("2025-01-03", tz="UTC"),
                    ],
                    "event_name": ["session", "session", None],
                }
            ),
        ],
        ignore_index=True,
    )
    root = _export(tmp_path / "export", _users(), tx, events)
    with open_source(root) as src:
        expected = dict(src.quality.dropped)
        kept = src.con.execute("SELECT * FROM transactions ORDER BY transaction_id").df()
    assert expected == {
        "transactions: before signup_at": 1, "transactions: duplicate transaction_id": 1,
        "transactions: null revenue": 1, "transactions: occurred_at in the future": 1,
        "transactions: unknown user_id": 1, "events: null event_name (ignored)": 1,
        "events: occurred_at in the future (ignored)": 1, "events: unknown user_id (ignored)": 1,
    }  # fmt: skip
    engine = SparkEngine(root, spark=spark)
    assert engine.dropped() == expected
    spark_kept = engine.spark.sql("SELECT * FROM transactions ORDER BY transaction_id").toPandas()
    assert (
        spark_kept["transaction_id"].tolist() == kept["transaction_id"].tolist() == ["t1", "t2", "t3", "t4"]
    )
    assert spark_kept["revenue"].tolist() == kept["revenue"].tolist()  # t1's earliest copy, 20.0
