"""The Spark rendering on local Spark against DuckDB on the same export: equal features, equal scores.

One Spark session for the module (local[2], small data); "all" and "reached" populations are covered by the
edge-row test and by the scoring test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from pltv.features import build_features, default_as_of, to_utc_naive
from pltv.score import ModelRef, score
from pltv.sources import open_source
from pltv.spark import EngineError, SparkEngine, check_spark_runtime, java_major
from pltv.train import train

SAMPLE = "data/sample"


@pytest.fixture(scope="module")
def sample_engines(spark):
    with open_source(SAMPLE) as src:
        yield src, SparkEngine(SAMPLE, spark=spark)


def _assert_same_features(duck: pd.DataFrame, sparky: pd.DataFrame) -> None:
    assert list(duck.columns) == list(sparky.columns)
    assert duck.attrs == sparky.attrs
    for col in duck.columns:  # one column at a time, so a failure names it
        assert duck[col].isna().sum() == sparky[col].isna().sum(), col
        pd.testing.assert_series_equal(duck[col], sparky[col], check_exact=True, obj=col)


@pytest.mark.parametrize(("send_day", "population"), [(3, "matured"), (1, "send_window")])
def test_spark_features_equal_duckdb_features_on_the_sample(sample_engines, send_day, population):
    """Every column equal, exactly: keys, timestamps, weekday/hour, sums, counts, nulls, labels."""
    src, engine = sample_engines
    as_of = default_as_of(src.quality.data_end)
    window = {"send_day": send_day, "as_of": as_of, "population": population}
    if population == "send_window":
        window |= {"send_from": as_of - timedelta(days=30), "send_to": as_of - timedelta(days=2)}
    duck = build_features(src.con, **window)
    sparky = engine.build_features(**window)
    assert len(duck) > 500
    _assert_same_features(duck, sparky)


def test_spark_and_duckdb_agree_on_edge_rows(tmp_path, spark):
    """Sub-second and pre-1970 timestamps, a refund-only user, events without purchases, no activity at all,
    a duplicated transaction id and rows for unknown users or before signup."""
    t0 = datetime(2025, 3, 2, 23, 59, 59, 500_000)  # a Sunday, half a second before midnight
    users = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e"],
            "signup_at": [
                t0,
                t0 + timedelta(hours=5),
                datetime(1969, 12, 31, 22, 0),
                t0,
                t0 + timedelta(days=3),
            ],
            "country": ["US", None, "DE", "FR", "US"],
            "platform": ["web", "ios", None, "web", "android"],
        }
    )
    tx = pd.DataFrame(
        {
            "transaction_id": ["t1", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t7"],
            "user_id": ["a", "a", "a", "b", "zz", "c", "e", "d", "d"],
            "occurred_at": [
                t0 + timedelta(hours=1, microseconds=250),
                t0 + timedelta(hours=1, microseconds=250),
                t0 + timedelta(days=2),
                t0 + timedelta(hours=7),
                t0,
                datetime(1970, 1, 1, 3, 0),
                t0 + timedelta(days=2),
                t0 + timedelta(days=2),
                t0 + timedelta(hours=2),
            ],  # fmt: skip
            # t6 is before e's signup; t7's copies disagree: the earlier one (second in the file) is kept
            "revenue": [19.99, 19.99, -5.0, -12.5, 100.0, 7.25, 3.0, 40.0, 40.0],
        }
    )
    events = pd.DataFrame(
        {
            "user_id": ["a", "b", "b", "d", "zz"],
            "occurred_at": [
                t0 + timedelta(minutes=3),
                t0 + timedelta(hours=6),
                t0 + timedelta(days=1, hours=1),
                t0 + timedelta(hours=30),
                t0,
            ],  # fmt: skip
            "event_name": ["session", "session", "add_to_cart", "session", "session"],
        }
    )
    con = duckdb.connect()
    for name, frame in (("users", users), ("transactions", tx), ("events", events)):
        con.register("f", frame)
        con.execute(f"COPY (SELECT * FROM f) TO '{tmp_path / name}.parquet' (FORMAT parquet)")
        con.unregister("f")
    con.close()
    as_of = datetime(2026, 1, 1)
    engine = SparkEngine(tmp_path, spark=spark)
    with open_source(tmp_path) as src:
        for send_day in (0, 1, 3):
            duck = build_features(src.con, send_day=send_day, as_of=as_of, horizon_days=200, population="all")
            sparky = engine.build_features(send_day=send_day, as_of=as_of, horizon_days=200, population="all")
            assert len(duck) == 5
            _assert_same_features(duck, sparky)
    assert duck.set_index("user_id").loc["a", "signup_weekday"] == 7  # Sunday
    assert duck.set_index("user_id").loc["c", "signup_weekday"] == 3  # 1969-12-31 was a Wednesday
    assert duck.set_index("user_id").loc["d", "early_net_revenue"] == 40.0  # t7's earlier copy, inside day 1


@pytest.fixture
def store(d3_store):
    """The session's send-day-3 store (tests/conftest.py): these tests only read it."""
    return d3_store


def test_pltv_score_is_equal_across_engines(store, spark, tmp_path, capsys):
    """The same users and predicted_ltv to 1e-9 from DuckDB in process and from spark_udf on Spark."""
    model = ModelRef("pltv_d3", "champion")
    duck = score(SAMPLE, send_day=3, out=tmp_path / "duck.parquet", tracking_uri=store, model=model)
    sparky = score(SAMPLE, send_day=3, out=tmp_path / "spark", tracking_uri=store, model=model, engine="spark",
                   spark=spark)  # fmt: skip
    a = pd.read_parquet(duck.out).sort_values("user_id", ignore_index=True)
    b = pd.read_parquet(sparky.out).sort_values("user_id", ignore_index=True)
    assert duck.users == sparky.users == len(a) == len(b)
    pd.testing.assert_series_equal(a["user_id"], b["user_id"])
    diff = float(np.max(np.abs(a["predicted_ltv"].to_numpy() - b["predicted_ltv"].to_numpy())))
    with capsys.disabled():
        print(f"\n  pltv score DuckDB vs Spark: {len(a):,} users, max |diff| predicted_ltv = {diff:.3g}")
    assert diff <= 1e-9
    assert (b["model_version"] == a["model_version"]).all()


def _sample_in_catalog(spark) -> str:
    """The sample's tables as ``global_temp.users`` ... of the session: a source with no files."""
    for table in ("users", "transactions", "events"):
        spark.read.parquet(
            f"{SAMPLE}/{table}" + (".parquet" if table == "users" else "")
        ).createOrReplaceGlobalTempView(table)
    return "catalog:global_temp"


def test_training_on_spark_gives_the_duckdb_model_from_catalog_tables(sample_engines, spark):
    """train(feature_engine=Spark) on catalog tables (nothing DuckDB could open) counts the source as
    DuckDB does and fits on the same frame: the same holdout predictions as DuckDB's."""
    src, _ = sample_engines
    catalog = _sample_in_catalog(spark)
    engine = SparkEngine(catalog, spark=spark)
    q, counts = src.quality, engine.quality
    assert (counts.users, counts.transactions_raw, counts.transactions, counts.events) == (
        q.users, q.transactions_raw, q.transactions, q.events,
    )  # fmt: skip
    assert (counts.signup_min, counts.signup_max, counts.data_end) == tuple(
        to_utc_naive(t) for t in (q.signup_min, q.signup_max, q.data_end)
    )
    duck = train(SAMPLE, send_days=(1,), tracking_uri=None).results[0]
    sparky = train(catalog, send_days=(1,), tracking_uri=None, feature_engine=engine).results[0]
    assert duck.candidate == sparky.candidate
    np.testing.assert_array_equal(duck.holdout["predicted_ltv"], sparky.holdout["predicted_ltv"])


def test_a_missing_java_is_a_clear_error(monkeypatch, tmp_path):
    """No java on PATH or in JAVA_HOME: EngineError saying Java 17 is needed and how to get it."""
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nojava"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert java_major() is None
    with pytest.raises(EngineError, match="needs Java 17 or newer.*openjdk-17"):
        check_spark_runtime()


def test_the_spark_engine_reads_parquet_folders_only(spark, tmp_path):
    """A DuckDB file or a CSV export is refused with what to use instead."""
    (tmp_path / "users.csv").write_text("user_id,signup_at\nu1,2025-01-01\n")
    with pytest.raises(Exception, match="CSV"):
        SparkEngine(tmp_path, spark=spark)
    with pytest.raises(Exception, match="not a folder"):
        SparkEngine(tmp_path / "x.duckdb", spark=spark)


def test_catalog_tables_give_the_same_features_as_the_export_folder(sample_engines, spark):
    """catalog:<schema> reads <schema>.users/transactions/events of the session (here global temp views)."""
    src, engine = sample_engines
    from_catalog = SparkEngine(_sample_in_catalog(spark), spark=spark)
    as_of = default_as_of(src.quality.data_end)
    window = {"send_day": 3, "as_of": as_of, "population": "reached"}
    _assert_same_features(engine.build_features(**window), from_catalog.build_features(**window))
