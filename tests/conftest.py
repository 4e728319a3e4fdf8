"""Session-wide fixtures: trained MLflow stores are expensive (``train()`` is most of the suite's time),
so a store that tests only read is trained once per session and shared."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


@pytest.fixture(scope="session")
def d7_two_versions_store(tmp_path_factory) -> str:
    """Send day 7 trained twice on the sample: an older as_of (v1, champion), then the default as_of kept
    as challenger (v2). Read-only for its users (compare, notebooks): register into a store of your own."""
    from pltv.train import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-d7') / 'mlflow.db'}"
    train(SAMPLE, send_days=(7,), tracking_uri=uri, as_of="2026-08-01")
    train(SAMPLE, send_days=(7,), tracking_uri=uri, promote=False)
    return uri


@pytest.fixture(scope="session")
def d3_store(tmp_path_factory) -> str:
    """Send day 3 trained once on the sample (v1, champion). Read-only for its users (score, Spark parity)."""
    from pltv.train import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow-d3') / 'mlflow.db'}"
    train(SAMPLE, send_days=(3,), tracking_uri=uri, model_name="pltv_d{send_day}")
    return uri


@pytest.fixture(scope="module", autouse=True)
def _keep_tracking_uri():
    """mlflow.set_tracking_uri (called by train, registry, daily) also sets MLFLOW_TRACKING_URI for the whole
    process: every test module starts and ends with the variable as the session had it, so no module reads
    the store an earlier one left behind."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", "unset-by-test")
        patch.delenv("MLFLOW_TRACKING_URI")
        yield


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every Spark test (each module starting its own paid the JVM again)."""
    from pltv.spark import check_spark_runtime, spark_session

    check_spark_runtime()  # a clear message (install Java 17 / the [spark] extra) instead of a JVM trace
    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")  # small data: fewer, larger tasks
    yield session
    session.stop()
