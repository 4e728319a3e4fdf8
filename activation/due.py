"""The daily job's engines: which users have their send moment in the run's window, and their scores.

:func:`activation.daily.run_daily` asks an engine two things and does everything else itself (the ledger's
selection rules, value mapping, hashing, events, delivery):

- :meth:`window`: the users whose send moment ``signup_at + send_day days`` lies in ``[start, as_of)``
  (the run's day plus the catch-up window), as ``user_id, send_at`` ordered by send moment;
- :meth:`scored`: for a chunk of the users the ledger kept, ``user_id, signup_at, send_at,
  predicted_ltv`` (the model's raw prediction) and the users' match and delivery columns.

:class:`DuckDBDue` (``--engine duckdb``) opens the source in process and computes features and scores per
chunk (memory bounded by the chunk). :class:`SparkDue` (``--engine spark``) registers the source's tables in
a Spark session (:class:`pltv.spark.SparkEngine`: a Parquet export or ``catalog:<schema>``), computes the
whole window's features with the rendered feature SQL and scores them on the executors
(:func:`pltv.spark.score_frame`); the driver collects that frame once (a few columns per user) and hands
out its chunks. Both read the same model version: DuckDB in process, Spark through ``models:/name/version``
of the same tracking URI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from pltv.contract import DELIVERY, MATCH_COLUMNS

ENGINES = ("duckdb", "spark")

Timer = Callable[[str, float], None]  # (stage, perf_counter at its start): the run's stage clock


def window_start(as_of: datetime, now: datetime, catch_up_days: float) -> datetime:
    """The earliest send moment the run considers: the day before ``as_of``, or earlier for the catch-up
    (events Meta still accepts, ``catch_up_days`` before the send clock ``now``)."""
    now_naive = now.astimezone(UTC).replace(tzinfo=None)
    return min(as_of - timedelta(days=1), now_naive - timedelta(days=catch_up_days))


@dataclass(frozen=True, kw_only=True)
class ScoreJob:
    """What both engines need to score the run's users: the spec's window and the pinned model."""

    send_day: int
    horizon_days: int
    as_of: datetime
    model: object  # the registry's pyfunc, unwrapped (event_names, feature_names, predict)
    model_uri: str  # models:/name/version, for Spark's executors
    tracking_uri: str  # the registry model_uri is read from (the one the in-process model came from)
    categoricals: Sequence[str]
    user_cols: Sequence[str]  # the match and delivery columns the source holds


def open_due(engine: str, source, *, spark_master: str | None = None):
    """The engine's view of the source: :class:`DuckDBDue` or :class:`SparkDue` (which checks the runtime
    and refuses what it cannot read, such as a DuckDB file, before the run touches the ledger)."""
    from pltv.errors import ConfigError

    if engine == "duckdb":
        if spark_master is not None:
            raise ConfigError("a Spark master needs engine spark")
        return DuckDBDue(source)
    if engine == "spark":
        return SparkDue(source, master=spark_master)
    raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def user_columns(present: Sequence[str]) -> list[str]:
    """The match and delivery columns of the contract that the source's ``users`` table holds."""
    return [c for c in (*MATCH_COLUMNS, *DELIVERY) if c in present]


class _Due:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - each engine closes its own
        raise NotImplementedError


class DuckDBDue(_Due):
    """The source opened in process (:func:`pltv.sources.open_source`); features and scores per chunk."""

    window_stage = "select"  # the window is one SQL query: part of the selection's time
    window_label = "find the send window's users"

    def __init__(self, source) -> None:
        from pltv.sources import open_source

        self.source = open_source(source)
        self.quality = self.source.quality
        self.user_columns = self.source.user_columns

    def window(self, job: ScoreJob, start: datetime) -> pd.DataFrame:
        return self.source.con.execute(
            "SELECT user_id, signup_at + to_days(CAST($d AS INTEGER)) AS send_at FROM users "
            "WHERE signup_at + to_days(CAST($d AS INTEGER)) >= $start "
            "AND signup_at + to_days(CAST($d AS INTEGER)) < $as_of ORDER BY send_at, user_id",
            {"d": job.send_day, "start": start, "as_of": job.as_of},
        ).df()

    def scored(self, job: ScoreJob, part: pd.DataFrame, timed: Timer) -> pd.DataFrame:
        from pltv.features import build_features

        t = time.perf_counter()
        feats = build_features(
            self.source.con, send_day=job.send_day, as_of=job.as_of, horizon_days=job.horizon_days,
            population="send_window", send_from=part["send_at"].iloc[0],
            send_to=part["send_at"].iloc[-1] + timedelta(microseconds=1),
            event_names=getattr(job.model, "event_names", None), categoricals=job.categoricals,
        )  # fmt: skip
        feats = feats[feats["user_id"].isin(set(part["user_id"]))].reset_index(drop=True)
        timed("features", t)
        t = time.perf_counter()
        predicted = job.model.predict(feats)
        timed("score", t)
        t = time.perf_counter()
        users = self._users(feats["user_id"].tolist(), job.user_cols)
        users = feats[["user_id", "signup_at"]].merge(users, on="user_id", how="left")
        users = users.merge(part[["user_id", "send_at"]], on="user_id", how="left")  # the event time
        users["predicted_ltv"] = predicted
        timed("hash+build", t)
        return users

    def _users(self, user_ids: list[str], columns: Sequence[str]) -> pd.DataFrame:
        con = self.source.con
        con.register("_ids", pd.DataFrame({"user_id": user_ids}))
        try:
            cols = "".join(f', u."{c}"' for c in columns)
            return con.execute(f"SELECT u.user_id{cols} FROM users u JOIN _ids USING (user_id)").df()
        finally:
            con.unregister("_ids")

    def close(self) -> None:
        self.source.close()


class SparkDue(_Due):
    """The source in a Spark session; the whole window's features and scores computed there, collected once.

    The row cleaning is :class:`pltv.spark.SparkEngine`'s; :attr:`quality` holds the counts and the last
    timestamp the daily job's distrust checks read (:func:`activation.preflight.source_doubts`)."""

    window_stage = "features+score"  # Spark SQL features, the pyfunc on the executors, one collect
    window_label = "features + score the send window on Spark"

    def __init__(self, source, *, master: str | None = None, spark=None) -> None:
        from pltv.spark import SparkEngine

        self.engine = SparkEngine(source, spark=spark, master=master)
        self.user_columns = self.engine.user_columns
        self.quality = self.engine.quality
        self._rows: pd.DataFrame | None = None

    def window(self, job: ScoreJob, start: datetime) -> pd.DataFrame:
        """Score every user of the window on Spark and collect ``user_id, signup_at, send_at,
        predicted_ltv`` and the match/delivery columns to the driver, once; a failing Spark job is an
        :class:`~pltv.spark.EngineError` naming its kind (its first line: Spark's own messages are long)."""
        from pltv.errors import PltvError
        from pltv.spark import EngineError

        try:
            return self._window(job, start)
        except PltvError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise EngineError(
                f"the Spark job scoring the send window failed ({type(exc).__name__}: {first}); nothing was "
                "selected or sent"
            ) from exc

    def _window(self, job: ScoreJob, start: datetime) -> pd.DataFrame:
        from pyspark.sql import functions as F

        from pltv import tracking
        from pltv.source_checks import TIMESTAMPS
        from pltv.spark import score_frame

        tracking.configure(job.tracking_uri, existing=True)  # spark_udf resolves models:/ in this registry

        feats = self.engine.features(
            send_day=job.send_day, as_of=job.as_of, horizon_days=job.horizon_days, population="send_window",
            send_from=start, send_to=job.as_of, event_names=list(job.model.event_names),
            categoricals=job.categoricals,
        )  # fmt: skip
        scored = score_frame(
            feats,
            model_uri=job.model_uri,
            feature_names=job.model.feature_names,
            categoricals=job.categoricals,
        ).select("user_id", "signup_at", "send_at", "predicted_ltv")
        users = self.engine.sql("SELECT * FROM users").select(
            "user_id", *(F.col(f"`{c}`") for c in job.user_cols)
        )  # typed by the view as pltv.sources types them
        spark = self.engine.spark
        spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")  # a columnar collect
        frame = scored.join(users, on="user_id", how="left").toPandas()
        for c in ("signup_at", "send_at", *(c for c in job.user_cols if c in TIMESTAMPS["users"])):
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[us]")
        frame = frame.sort_values(["send_at", "user_id"], kind="stable").reset_index(drop=True)
        self._rows = frame.drop(columns="send_at").set_index("user_id")  # looked up per chunk
        return frame[["user_id", "send_at"]]

    def scored(self, job: ScoreJob, part: pd.DataFrame, timed: Timer) -> pd.DataFrame:
        t = time.perf_counter()
        users = part[["user_id", "send_at"]].join(self._rows, on="user_id").reset_index(drop=True)
        users = users[["user_id", "signup_at", *job.user_cols, "send_at", "predicted_ltv"]]
        timed("hash+build", t)
        return users

    def close(self) -> None:
        self._rows = None  # the session stays: it may be the caller's (a Databricks notebook's)
