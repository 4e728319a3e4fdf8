"""Shared fixtures: a real sandbox on a loopback port, reset before each test; the daily job's world (a
sample, a model trained for send day 1, a custom_value spec), built once per session."""

from __future__ import annotations

import pytest
import requests

from activation.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox per module, reset between tests."""
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def sb(sandbox):
    """The module's sandbox, emptied and fault-free."""
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    sandbox.set_faults(rate=0.0, seed=0)
    return sandbox


@pytest.fixture(scope="session")
def daily_world(tmp_path_factory) -> dict:
    """An 18k-user sample, a model trained for send day 1 in a tmp MLflow store, and a custom_value spec.

    Shared by the daily job's test modules, which only read it (a test that needs another source copies
    it into its own ``tmp_path``; one that needs another model trains its own store)."""
    from activation.design import DesignOptions
    from activation.design_io import design_from_registry
    from pltv.config import Config, MlflowConfig, SourceConfig, TrainConfig
    from pltv.sample import generate_sample
    from pltv.train import train

    root = tmp_path_factory.mktemp("daily")
    generate_sample(root / "src", n_users=18_000, seed=5)
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    train(root / "src", send_days=(1,), tracking_uri=uri)
    config = Config(
        source=SourceConfig(path=str(root / "src")),
        train=TrainConfig(send_days=(1,)),
        mlflow=MlflowConfig(tracking_uri=uri),
    )
    result, path = design_from_registry(config, DesignOptions(mode="custom_value"), out=root / "spec.json")
    assert path is not None, result.reason
    return {"root": root, "config": config, "spec": path, "uri": uri, "source": config.source}
