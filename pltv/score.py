"""Batch scoring (``pltv score``): every user who reached the send day, scored by one registered version.

For send day ``d`` and ``as_of`` (default: midnight after the source's last row) the users are those whose
send moment ``signup_at + d days`` is at or before ``as_of``; their features read only their first ``d``
days (the training SQL, population ``"reached"``). The output is Parquet with ``user_id``,
``predicted_ltv`` and ``model_version`` (``name/version``), for loading back into the warehouse.

Engines: ``duckdb`` (in process, in bounded chunks) or ``spark`` (:mod:`pltv.spark`: the rendered SQL on
Spark, the pyfunc on the executors through ``mlflow.pyfunc.spark_udf``; the output is a folder of part files).
The model is loaded through :mod:`pltv.registry` like the daily job does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pltv.config import SourceConfig
from pltv.errors import ConfigError, RegistryError
from pltv.features import build_features, default_as_of, feature_columns, to_utc_naive
from pltv.progress import Progress

CHUNK_ROWS = 500_000  # rows scored at once (LightGBM's input copy stays bounded)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version: ``name`` and a version number or an alias."""

    name: str
    ref: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.ref}" if self.ref.isdigit() else f"models:/{self.name}@{self.ref}"


def parse_model_ref(text: str | None, *, template: str, send_day: int) -> ModelRef:
    """``NAME@ALIAS`` or ``NAME/VERSION``; ``None`` means the send day's ``champion`` (``pltv_d3@champion``)."""
    from pltv.registry import CHAMPION, model_name

    if text is None:
        return ModelRef(model_name(template, send_day), CHAMPION)
    if "@" in text:
        name, ref = text.split("@", 1)
    elif "/" in text:
        name, ref = text.rsplit("/", 1)
        if not ref.isdigit():
            raise ConfigError(f"--model {text!r}: NAME/VERSION needs a version number (or use NAME@ALIAS)")
    else:
        raise ConfigError(f"--model {text!r}: expected NAME@ALIAS (e.g. pltv_d3@champion) or NAME/VERSION")
    if not name or not ref:
        raise ConfigError(f"--model {text!r}: expected NAME@ALIAS or NAME/VERSION")
    return ModelRef(name, ref)


def resolve_version(tracking_uri: str, model: ModelRef) -> str:
    """The version number behind ``model`` (an alias is looked up); :class:`RegistryError` when missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pltv import tracking

    tracking.configure(tracking_uri, existing=True)
    client = MlflowClient(tracking_uri)
    try:
        if model.ref.isdigit():
            return str(client.get_model_version(model.name, model.ref).version)
        return str(client.get_model_version_by_alias(model.name, model.ref).version)
    except MlflowException as exc:
        raise RegistryError(
            f"no model {model.uri} in {tracking_uri} ({str(exc).splitlines()[0]}); train one with "
            "`pltv train` or pass an existing --model NAME@ALIAS / NAME/VERSION"
        ) from exc


@dataclass(frozen=True)
class ScoreResult:
    out: Path
    users: int
    model_version: str
    as_of: object
    engine: str
    seconds: float

    def render(self) -> str:
        return (
            f"scored {self.users:,} users with {self.model_version} (as_of {self.as_of:%Y-%m-%d %H:%M} UTC, "
            f"engine {self.engine}) in {self.seconds:.1f}s -> {self.out}"
        )


def _write(out: Path, user_id, predicted, version: str, writer: pq.ParquetWriter | None):
    table = pa.table(
        {
            "user_id": pa.array(user_id, pa.string()),
            "predicted_ltv": pa.array(predicted, pa.float64()),
            "model_version": pa.array([version] * len(user_id), pa.string()),
        }
    )
    writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
    writer.write_table(table)
    return writer


def score(
    source: SourceConfig | str | Path,
    *,
    send_day: int,
    out: str | Path,
    tracking_uri: str,
    model: ModelRef,
    as_of=None,
    engine: str = "duckdb",
    spark=None,
    spark_master: str | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """Score every user who reached ``send_day`` by ``as_of`` and write ``user_id, predicted_ltv,
    model_version`` to ``out`` (a Parquet file; with Spark a folder of part files). ``progress``: a
    :class:`~pltv.progress.Progress` for its stages (silent by default)."""
    from pltv.registry import load_model

    progress = Progress.coerce(progress)

    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"engine must be duckdb or spark, got {engine!r}")
    started = time.perf_counter()
    version = resolve_version(tracking_uri, model)
    pyfunc = load_model(tracking_uri, model.name, version)
    if pyfunc.send_day != send_day:
        raise ConfigError(
            f"model {model.name} version {version} was trained for send day {pyfunc.send_day}, not {send_day}: "
            "its features read a different window; pass --send-day "
            f"{pyfunc.send_day} or a model for day {send_day}"
        )
    label = f"{model.name}/{version}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    window = {"send_day": send_day, "horizon_days": pyfunc.horizon_days, "population": "reached"}
    if engine == "spark":
        from pltv.spark import SparkEngine, score_frame

        eng = SparkEngine(source, spark=spark, master=spark_master)
        as_of = to_utc_naive(as_of) if as_of is not None else default_as_of(eng.quality.data_end)
        feats = eng.features(
            as_of=as_of, event_names=pyfunc.event_names, categoricals=pyfunc.categoricals, **window
        )
        from pyspark.sql import functions as F

        scored = score_frame(
            feats, model_uri=f"models:/{model.name}/{version}", feature_names=pyfunc.feature_names,
            categoricals=pyfunc.categoricals,
        ).select("user_id", "predicted_ltv", F.lit(label).alias("model_version"))  # fmt: skip
        scored.write.mode("overwrite").parquet(str(out))
        users = eng.spark.read.parquet(str(out)).count()
        return ScoreResult(out, users, label, as_of, engine, time.perf_counter() - started)

    from pltv.sources import open_source

    with progress.stage(f"send day {send_day}: source + features", unit="users") as stage:
        with open_source(source) as src:
            as_of = to_utc_naive(as_of) if as_of is not None else default_as_of(src.quality.data_end)
            frame = build_features(
                src.con,
                as_of=as_of,
                event_names=pyfunc.event_names,
                categoricals=pyfunc.categoricals,
                **window,
            )
        stage.advance(len(frame))
    cols = ["user_id", *feature_columns(frame)]
    frame = frame[cols]
    writer = None
    tmp = out.with_name(out.name + ".partial")
    try:
        with progress.stage(f"score with {label}", total=len(frame), unit="users") as stage:
            for start in range(0, max(len(frame), 1), CHUNK_ROWS):
                part = frame.iloc[start : start + CHUNK_ROWS]
                predicted = np.asarray(pyfunc.predict(part), dtype=np.float64)
                writer = _write(tmp, part["user_id"].to_numpy(), predicted, label, writer)
                stage.advance(len(part))
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)  # a failed run leaves no half-written output under the final name
    return ScoreResult(out, len(frame), label, as_of, engine, time.perf_counter() - started)
