"""The Spark engine: the same feature SQL, rendered for Spark SQL, and scoring on the executors.

``pltv train --engine spark`` and ``pltv score --engine spark`` use it; on Databricks, pass the existing
session. Nothing here re-implements a feature: :class:`SparkEngine` registers the source's tables as the
canonical views (``users``, ``transactions``, ``events``), runs :func:`pltv.sql_render.render_features`'s
Spark rendering with bound parameters, and scores with ``mlflow.pyfunc.spark_udf`` (numeric features cast
to DOUBLE first: Spark counts are BIGINT, and the model's signature, float64, refuses them).

A source for Spark is a Parquet export folder of the same contract (``users.parquet`` or ``users/`` part
files, ``transactions``, optional ``events``; a local path or a URI Spark reads, such as ``dbfs:/`` or
``s3://``), or ``catalog:<schema>`` for tables ``<schema>.users`` ... of the session's catalog, with the
column mapping of ``[source.columns.*]``. The data contract is enforced as on DuckDB: constructing a
:class:`SparkEngine` runs :mod:`pltv.source_checks`, the checks :mod:`pltv.sources` runs (one aggregate
Spark job per table, plus a grouped one for duplicate ``user_id``), and raises the same
:class:`~pltv.errors.DataQualityError` with the same message for a null ``user_id``/``signup_at``, a
duplicate ``user_id``, an unparseable or future timestamp, a revenue that is not a finite number, a
currency other than the configured one, or a ``consent``/``ldu`` that is not a boolean. The row cleaning
is :mod:`pltv.sources`' own rule list (:data:`pltv.source_checks.DROPS`, rendered for Spark SQL): one row per
``transaction_id``, no rows for unknown users, before ``signup_at``, without a timestamp/revenue/event name,
or later than now + 1 hour; :meth:`SparkEngine.dropped` counts them per reason (a pass over each table, so
only on request).

pyspark is an optional extra (``pip install 'pltv-toolkit[spark]'``) and needs Java 17 or newer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import pandas as pd

from pltv.config import SourceConfig
from pltv.errors import PltvError, SourceError
from pltv.features import (
    CATEGORICALS,
    MAX_EVENT_NAMES,
    event_columns,
    finish_frame,
    to_utc_naive,
)
from pltv.source_checks import (
    BOOLEANS,
    CLOCK_SKEW,
    KEPT,
    SPARK,
    TIMESTAMPS,
    check_mapping,
    check_required,
    dropped_key,
    flagged_sql,
    run_checks,
    typed_timestamps,
)
from pltv.sql_render import render_event_names, render_features

MIN_JAVA = 17
CATALOG = "catalog:"  # a source naming a schema of the session's catalog: catalog:analytics.pltv_export
# pyspark 4.x warns on every conversion that it "does not yet fully support pandas >= 3"; the engine only
# moves flat numeric/string/timestamp columns, which the parity tests check value by value.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
TABLES = ("users", "transactions", "events")


class EngineError(PltvError, RuntimeError):
    """The Spark engine cannot start (no pyspark, no Java 17) or cannot read the source."""


def java_major(java: str | None = None) -> int | None:
    """The major version of ``java`` on PATH (or ``$JAVA_HOME``'s), ``None`` when there is none."""
    home = os.environ.get("JAVA_HOME")
    exe = java or (str(Path(home) / "bin" / "java") if home else None) or shutil.which("java")
    if exe is None or not Path(exe).exists():
        return None
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def check_spark_runtime() -> None:
    """Raise :class:`EngineError` with what to install when pyspark or Java 17+ is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise EngineError(
            "--engine spark needs pyspark: pip install 'pltv-toolkit[spark]' (or `make test`, which installs it)"
        ) from exc
    major = java_major()
    if major is None:
        raise EngineError(
            f"--engine spark needs Java {MIN_JAVA} or newer and found none (no `java` on PATH or in "
            "$JAVA_HOME): install it, e.g. `apt-get install openjdk-17-jre-headless`, or use --engine duckdb"
        )
    if major < MIN_JAVA:
        raise EngineError(
            f"--engine spark needs Java {MIN_JAVA} or newer, found Java {major}: install Java {MIN_JAVA} and "
            "point JAVA_HOME at it, or use --engine duckdb"
        )


def spark_session(master: str | None = None):
    """A Spark session for the engine: ``local[*]`` unless ``master`` says otherwise, UTC session time."""
    check_spark_runtime()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("pltv").config("spark.sql.session.timeZone", "UTC")
    if master is not None or not SparkSession.getActiveSession():
        builder = builder.master(master or "local[*]")
        builder = builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        builder = builder.config("spark.sql.shuffle.partitions", "8")
        # local Python workers run this interpreter (the venv with the model's libraries), not `python3`:
        # pyspark reads only the environment for it, when the context starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        builder = builder.config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    spark = builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _locate(folder: Path, table: str) -> str | None:
    single = folder / f"{table}.parquet"
    parts = folder / table
    if single.is_file() and parts.is_dir():
        raise SourceError(f"folder {folder} holds table '{table}' twice ({table}.parquet and {table}/)")
    if single.is_file():
        return str(single)
    if parts.is_dir():
        if not any(parts.rglob("*.parquet")):
            raise SourceError(
                f"folder {parts} holds no Parquet part files; the Spark engine reads Parquet exports only"
            )
        return str(parts)
    if (folder / f"{table}.csv").is_file():
        raise SourceError(
            f"table '{table}' in {folder} is CSV; the Spark engine reads Parquet exports (or use --engine duckdb)"
        )
    return None


def _mapped(frame, mapping: dict[str, str], table: str):
    """``frame`` with ``[source.columns.<table>]`` applied, checked as :mod:`pltv.sources` checks it."""
    check_mapping(table, frame.columns, mapping)
    for source_col, canonical in mapping.items():
        frame = frame.withColumnRenamed(source_col, canonical)
    check_required(table, frame.columns)
    return frame


@dataclass(frozen=True)
class SparkCounts:
    """What the commands read of :attr:`pltv.sources.Source.quality`, counted by Spark (counts and dates
    only): ``pltv train``'s log and as_of, the daily job's distrust checks."""

    users: int
    transactions_raw: int
    transactions: int
    events: int
    signup_min: datetime | None
    signup_max: datetime | None
    data_end: datetime | None
    dropped: dict[str, int] = field(default_factory=dict)  # counted only when every transaction was dropped
    notes: tuple[str, ...] = ()


class SparkEngine:
    """Canonical ``users``/``transactions``/``events`` views in a Spark session, from a Parquet export.

    :meth:`build_features` has :func:`pltv.features.build_features`'s signature (its first argument, a
    DuckDB connection, is ignored), so training can take either engine's features.
    """

    def __init__(self, source: SourceConfig | str | Path, *, spark=None, master: str | None = None):
        self.config = source if isinstance(source, SourceConfig) else SourceConfig(path=str(source))
        text = str(self.config.path)
        self.catalog = text.removeprefix(CATALOG) if text.startswith(CATALOG) else None
        self.path = Path(text).expanduser() if self.catalog is None and "://" not in text else text
        if isinstance(self.path, Path) and not self.path.is_dir():
            raise SourceError(
                f"the Spark engine reads a Parquet export folder or {CATALOG}<schema> (tables of the session's "
                f"catalog); {self.path} is not a folder (use --engine duckdb for a DuckDB file)"
            )
        self.spark = spark if spark is not None else spark_session(master)
        self.user_columns = self._register()

    def _read(self, table: str):
        """``(DataFrame, where)`` of one table, or ``None`` when the source does not hold it."""
        if self.catalog is not None:  # a schema of the session's catalog (Databricks: catalog.schema)
            name = f"{self.catalog}.{table}"
            return (self.spark.table(name), name) if self.spark.catalog.tableExists(name) else None
        if isinstance(self.path, Path):
            path = _locate(self.path, table)
            return None if path is None else (self.spark.read.parquet(path), path)
        from pyspark.errors import AnalysisException

        for where in (f"{self.path.rstrip('/')}/{table}.parquet", f"{self.path.rstrip('/')}/{table}"):
            try:  # an object store or DBFS URI: no local listing, Spark says what exists
                return self.spark.read.parquet(where), where
            except AnalysisException:
                continue
        return None

    def _register(self) -> tuple[str, ...]:
        spark, found = self.spark, {}
        self._raw_frames, self._view_sql = {}, {}
        for table in TABLES:
            read = self._read(table)
            if read is not None:
                frame, where = read
                mapping = dict(self.config.columns.get(table, {}))
                self._raw_frames[table] = _mapped(frame, mapping, table)
                self._raw_frames[table].createOrReplaceTempView(f"pltv_raw_{table}")
                found[table] = where
        missing = [t for t in ("users", "transactions") if t not in found]
        if missing:
            where = f"{CATALOG}{self.catalog}" if self.catalog is not None else self.path
            raise SourceError(f"source {where} has no table(s) {missing} (Parquet files or catalog tables)")
        now = datetime.now(UTC).replace(tzinfo=None) + CLOCK_SKEW  # later rows cannot be real yet
        types = {table: dict(frame.dtypes) for table, frame in self._raw_frames.items()}
        for table in types:  # the contract's checks, pltv.sources' own: one aggregate pass per table
            run_checks(SPARK, lambda sql: [tuple(row) for row in spark.sql(sql).collect()], table,
                       f"pltv_raw_{table}", types[table], cutoff=now, currency=self.config.currency)  # fmt: skip
        users = types["users"]
        typed = ["CAST(user_id AS STRING) AS user_id", *typed_timestamps(SPARK, "users", users)]
        typed += [f"TRY_CAST(`{c}` AS BOOLEAN) AS `{c}`" for c in BOOLEANS if c in users]
        replaced = ("user_id", *TIMESTAMPS["users"], *BOOLEANS)
        rest = [f"`{c}`" for c in users if c not in replaced]
        self._users_sql = f"SELECT {', '.join(typed + rest)} FROM pltv_raw_users"
        self._view_sql["users"] = self._users_sql
        # the row cleaning of pltv.sources (one rule list): each row flagged with its drop reason, the
        # canonical view its kept rows
        for table in ("transactions", "events"):
            if table in found:
                select = flagged_sql(SPARK, table, types[table], relation=f"pltv_raw_{table}", cutoff=now)
                self._view_sql[f"pltv_{table}_flagged"] = select
                kept = ", ".join(KEPT[table])
                self._view_sql[table] = f"SELECT {kept} FROM pltv_{table}_flagged WHERE drop_reason IS NULL"
        if "events" not in found:
            self._view_sql["events"] = (
                "SELECT CAST(NULL AS STRING) AS user_id, CAST(NULL AS TIMESTAMP) AS occurred_at, "
                "CAST(NULL AS STRING) AS event_name WHERE false"
            )
        self._activate()
        return tuple(spark.table("users").columns)

    def _activate(self) -> None:
        """(Re)create this engine's views: several engines may share one session and its view names."""
        for table, frame in self._raw_frames.items():
            frame.createOrReplaceTempView(f"pltv_raw_{table}")
        for name, sql in self._view_sql.items():
            self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    con = None  # the engine stands in for a DuckDB Source in pltv.train: features come from Spark

    def close(self) -> None:
        """Nothing to close: the session may be the caller's (a Databricks notebook's)."""

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def quality(self) -> SparkCounts:
        """The source's counts, signup range and last timestamp, in one Spark job; and why, when every
        transaction was dropped, as :mod:`pltv.sources` says it."""
        from pltv.sources import key_type_notes

        rows = self.sql(  # one job: the four scans run side by side
            "SELECT 'users' AS t, count(*) AS n, unix_micros(min(signup_at)) AS first, "
            "unix_micros(max(signup_at)) AS last FROM users UNION ALL "
            "SELECT 'raw', count(*), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT) FROM pltv_raw_transactions UNION ALL "
            "SELECT 'tx', count(*), CAST(NULL AS BIGINT), unix_micros(max(occurred_at)) FROM transactions UNION ALL "
            "SELECT 'ev', count(*), CAST(NULL AS BIGINT), unix_micros(max(occurred_at)) FROM events"
        ).collect()  # epoch microseconds: a collected TIMESTAMP would be read in the driver's local zone
        at = {r["t"]: r for r in rows}

        def moment(us) -> datetime | None:
            return None if us is None else datetime(1970, 1, 1) + timedelta(microseconds=int(us))

        n = {t: int(r["n"]) for t, r in at.items()}
        ends = [moment(r["last"]) for r in rows if r["last"] is not None]
        dropped: dict[str, int] = {}
        notes: tuple[str, ...] = ()
        if n["raw"] and not n["tx"]:
            dropped = self.dropped()
            types = {t: {"user_id": self.spark.table(f"pltv_raw_{t}").schema["user_id"].dataType.simpleString()}
                     for t in ("users", "transactions")}  # fmt: skip
            notes = key_type_notes(types, dropped, n["tx"])
        return SparkCounts(
            users=n["users"], transactions_raw=n["raw"], transactions=n["tx"], events=n["ev"],
            signup_min=moment(at["users"]["first"]), signup_max=moment(at["users"]["last"]),
            data_end=max(ends) if ends else None, dropped=dropped, notes=notes,
        )  # fmt: skip

    def dropped(self) -> dict[str, int]:
        """The rows the cleaning drops, counted per reason as :attr:`pltv.sources.QualityReport.dropped`
        names them (a pass over each table: called when the counts matter, not on every opening)."""
        self._activate()
        counts: dict[str, int] = {}
        for table in ("transactions", "events"):
            if f"pltv_{table}_flagged" in self._view_sql:
                rows = self.spark.sql(
                    f"SELECT drop_reason, count(*) AS n FROM pltv_{table}_flagged WHERE drop_reason IS NOT NULL "
                    "GROUP BY 1 ORDER BY 1"
                ).collect()
                counts |= {dropped_key(table, row["drop_reason"]): int(row["n"]) for row in rows}
        return counts

    def _sql(self, rendered):
        self._activate()
        args = {
            k: f"{v:%Y-%m-%d %H:%M:%S.%f}" if isinstance(v, datetime) else v
            for k, v in rendered.params.items()
        }
        return self.spark.sql(rendered.sql, args=args)

    def discover_event_names(self, *, as_of, limit: int = MAX_EVENT_NAMES) -> list[str]:
        """``event_names.sql`` on Spark: the counted event names, most frequent first."""
        rows = self._sql(render_event_names("spark", as_of=as_of, limit=limit)).collect()
        return [row["event_name"] for row in rows]

    def _raw(
        self,
        *,
        send_day: int,
        as_of,
        horizon_days: int = 365,
        population: str = "matured",
        send_from=None,
        send_to=None,
        event_names: Sequence[str],
        categoricals: Sequence[str] = CATEGORICALS,
    ):
        """The rendered query's result as a Spark DataFrame (event counts still named ``event_<i>``)."""
        absent = [c for c in categoricals if c not in self.user_columns]
        if absent:  # the DuckDB path reads a missing default attribute as NULL: the same here
            nulls = "".join(f", CAST(NULL AS STRING) AS `{c}`" for c in absent)
            self._users_sql = self._users_sql.replace(" FROM pltv_raw_users", f"{nulls} FROM pltv_raw_users")
            self._view_sql["users"] = self._users_sql
            self._activate()
            self.user_columns = tuple(self.spark.table("users").columns)
        rendered = render_features(
            "spark", send_day=send_day, as_of=as_of, horizon_days=horizon_days, population=population,
            send_from=send_from, send_to=send_to, event_names=list(event_names), categoricals=categoricals,
        )  # fmt: skip
        return self._sql(rendered)

    def features(self, *, event_names: Sequence[str], **window):
        """The features as a Spark DataFrame, event counts named ``event__<name>`` (for scoring)."""
        frame = self._raw(event_names=event_names, **window)
        for i, name in enumerate(event_columns(list(event_names)), start=1):
            frame = frame.withColumnRenamed(f"event_{i}", name)
        return frame

    def build_features(self, con=None, *, event_names: Sequence[str] | None = None, **window) -> pd.DataFrame:
        """:func:`pltv.features.build_features` computed by Spark SQL, collected as the same pandas frame."""
        as_of = to_utc_naive(window["as_of"])
        if event_names is None:
            event_names = self.discover_event_names(as_of=as_of)
        event_names = list(event_names)
        categoricals = tuple(window.pop("categoricals", CATEGORICALS))
        pdf = self._raw(event_names=event_names, categoricals=categoricals, **window).toPandas()
        for col in ("signup_at", "send_at"):
            pdf[col] = pd.to_datetime(pdf[col]).astype("datetime64[us]")
        return finish_frame(
            pdf, event_names=event_names, categoricals=categoricals, send_day=window["send_day"], as_of=as_of
        )

    def sql(self, text: str):
        """``text`` (Spark SQL) on this engine's views, re-created first: engines may share a session."""
        self._activate()
        return self.spark.sql(text)


def score_frame(features, *, model_uri: str, feature_names: Sequence[str], categoricals: Sequence[str]):
    """``features`` (a Spark DataFrame) with ``predicted_ltv`` from the registered pyfunc, on the executors."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    spark = features.sparkSession
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double", env_manager="local")
    cols = []
    for name in feature_names:
        if name in categoricals:
            cols.append(F.col(f"`{name}`").cast("string").alias(name))
        else:  # counts are BIGINT; the model's signature is float64 and refuses int64
            cols.append(F.col(f"`{name}`").cast("double").alias(name))
    return features.withColumn("predicted_ltv", udf(F.struct(*cols)))


__all__ = [
    "EngineError",
    "SparkCounts",
    "SparkEngine",
    "check_spark_runtime",
    "java_major",
    "score_frame",
    "spark_session",
]
