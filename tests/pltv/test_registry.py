"""MLflow registry in a temporary SQLite store: register, champion rule, load by alias, same predictions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pltv import metrics, registry, tracking
from pltv.errors import ConfigError, RegistryError
from pltv.models import TweedieLTV
from pltv.train import train

SAMPLE = "data/sample"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One `pltv train` for send day 3 into a fresh store under tmp_path."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    result = train(SAMPLE, send_days=(3,), tracking_uri=uri, model_name="pltv_d{send_day}")
    return uri, root, result


def _log_and_register(uri, result, estimator, *, promote=None, horizon_days=365, tags=None, run_params=None):
    """Log ``estimator`` as a pyfunc in a new run and register it under pltv_d3 (scored on the fixture's test).

    ``tags`` become version tags (as `pltv train` passes them); ``run_params`` are logged on the run.
    """
    sd = result.results[0]
    wrapper = registry.LtvPythonModel(
        estimator,
        send_day=3,
        horizon_days=horizon_days,
        event_names=sd.event_names,
        feature_names=estimator.feature_names_,
    )
    tracking.configure(uri)
    experiment_id = tracking.ensure_experiment("pltv", uri)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        if run_params:
            mlflow.log_params(run_params)
        info = registry.log_model(wrapper, sd.test)
    pred = wrapper.predict(sd.test)
    scores = {
        "gini": metrics.normalized_gini(sd.test["actual_ltv"], pred),
        "decile_mape": metrics.decile_mape(sd.test["actual_ltv"], pred),
    }
    return registry.register(
        uri,
        "pltv_d3",
        info.model_uri,
        run_id=run.info.run_id,
        new_scores=scores,
        test=sd.test,
        promote=promote,
        tags=tags,
    )


@pytest.fixture
def champion_v1(store):
    """The trained v1 (365-day horizon, its own test_from) is champion before and after the test."""
    uri, _, result = store
    client = MlflowClient(uri)
    client.set_registered_model_alias("pltv_d3", "champion", "1")
    yield uri, result
    client.set_registered_model_alias("pltv_d3", "champion", "1")


def test_first_version_becomes_champion_with_artifacts(store):
    """A first training registers v1 as champion; the run holds holdout, deciles and plots."""
    uri, root, result = store
    reg = result.results[0].registration
    assert (reg.name, reg.version, reg.alias) == ("pltv_d3", "1", "champion")
    assert registry.champion_version(uri, "pltv_d3") == "1"
    run_id = MlflowClient(uri).get_model_version("pltv_d3", "1").run_id
    names = {a.path for a in MlflowClient(uri).list_artifacts(run_id)}
    assert {"holdout.parquet", "deciles.csv", "decile_calibration.png", "gain_curves.png"} <= names
    assert {"feature_importance.png", "features.json"} <= names
    assert (root / "artifacts").is_dir()  # artifacts stay beside the database, inside tmp_path


def test_loaded_champion_predicts_like_the_in_memory_model(store):
    """Loading by alias gives the same predictions as the model that was trained."""
    uri, _, result = store
    sd = result.results[0]
    loaded = registry.load_model(uri, "pltv_d3", "champion")
    np.testing.assert_array_equal(loaded.predict(sd.test), sd.model.predict(sd.test))
    assert loaded.send_day == 3 and loaded.event_names == sd.event_names


_LOAD_WITHOUT_THE_TOOLKIT = """
import sys, importlib.util
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path = [p for p in sys.path if p not in ("", {repo!r})]
assert importlib.util.find_spec("pltv") is None, "pltv is still importable"
import mlflow, pandas as pd
mlflow.set_tracking_uri({uri!r})
model = mlflow.pyfunc.load_model("models:/pltv_d3@champion")
pd.Series(model.predict(pd.read_parquet({features!r}))).to_frame("p").to_parquet({out!r})
print(sys.modules["pltv"].__file__)
"""


def test_logged_model_loads_where_the_toolkit_is_not_installed(store, tmp_path):
    """The pyfunc carries the pltv code: a Python without pltv importable loads it and predicts the same."""
    uri, _, result = store
    sd = result.results[0]
    features, out = tmp_path / "features.parquet", tmp_path / "pred.parquet"
    sd.test.head(200).to_parquet(features)
    code = _LOAD_WITHOUT_THE_TOOLKIT.format(
        repo=str(Path.cwd()), uri=uri, features=str(features), out=str(out)
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "/code/pltv/" in proc.stdout  # imported from the model's own copy
    expected = sd.model.predict(sd.test.head(200))
    np.testing.assert_array_equal(pd.read_parquet(out)["p"].to_numpy(), expected)


def test_holdout_for_returns_the_logged_holdout(store):
    """holdout_for downloads the version's holdout.parquet."""
    uri, _, result = store
    holdout = registry.holdout_for(uri, "pltv_d3", 1)
    assert len(holdout) == len(result.results[0].holdout)
    assert {"predicted_ltv", "baseline_ltv", "actual_ltv", "actual_future"} <= set(holdout.columns)


def test_worse_model_is_not_promoted_then_promote_overrides(store):
    """A model fitted on shuffled labels becomes challenger; --promote makes a version champion anyway."""
    uri, _, result = store
    train_frame = result.results[0].test
    shuffled = np.random.default_rng(0).permutation(train_frame["actual_ltv"].to_numpy())
    bad = TweedieLTV().fit(train_frame, shuffled)
    reg = _log_and_register(uri, result, bad)
    assert reg.alias == "challenger" and "worse" in reg.reason
    assert registry.champion_version(uri, "pltv_d3") == "1"
    forced = _log_and_register(uri, result, bad, promote=True)
    assert forced.alias == "champion" and registry.champion_version(uri, "pltv_d3") == forced.version


def test_a_version_losing_to_the_baseline_is_never_champion_without_promote():
    """Worse than k x early revenue on its own out-of-time cohort (Gini or decile MAPE): challenger, even as
    the first version; --promote still forces it, and train's table marks the losing measure."""
    from pltv.evaluate import render_scores

    lost = {"gini": 0.70, "decile_mape": 1.36, "baseline_gini": 0.52, "baseline_decile_mape": 0.88}
    alias, reason = registry.decide_alias(lost, None, None)
    assert alias == "challenger"
    assert "loses to the baseline" in reason and "decile mape 1.360 vs baseline 0.880" in reason
    assert "--promote" in reason
    assert registry.decide_alias(lost, None, True)[0] == "champion"
    assert registry.decide_alias({**lost, "decile_mape": 0.5}, None, None)[0] == "champion"
    assert registry.decide_alias({**lost, "decile_mape": 0.5, "gini": 0.4}, None, None)[0] == "challenger"
    table = render_scores({**lost, "future_gini": 0.6, "baseline_future_gini": 0.4}).splitlines()
    assert [line.split()[0] for line in table if "worse than the baseline" in line] == ["decile_mape"]


def test_equal_model_is_promoted_by_the_rule():
    """At least as good on the same cohort (within tolerance) becomes champion; clearly worse does not."""
    champ = {"gini": 0.80, "decile_mape": 0.30}
    assert registry.decide_alias({"gini": 0.797, "decile_mape": 0.31}, champ, None)[0] == "champion"
    assert registry.decide_alias({"gini": 0.70, "decile_mape": 0.30}, champ, None)[0] == "challenger"
    assert registry.decide_alias({"gini": 0.90, "decile_mape": 0.60}, champ, None)[0] == "challenger"
    assert registry.decide_alias({"gini": 0.1, "decile_mape": 9}, champ, False)[0] == "challenger"


def test_different_horizon_is_challenger_unless_promoted(champion_v1):
    """A version for another horizon is not compared with the champion: challenger, reason stated."""
    uri, result = champion_v1
    model = result.results[0].model
    reg = _log_and_register(uri, result, model, horizon_days=30, tags={"horizon_days": "30"})
    assert reg.alias == "challenger"
    assert reg.reason == (
        "not comparable: the champion predicts a 365-day LTV, this version 30 days; use --promote to replace it"
    )
    assert MlflowClient(uri).get_model_version("pltv_d3", reg.version).tags["alias_reason"] == reg.reason
    assert registry.champion_version(uri, "pltv_d3") == "1"
    forced = _log_and_register(uri, result, model, horizon_days=30, tags={"horizon_days": "30"}, promote=True)
    assert forced.alias == "champion" and registry.champion_version(uri, "pltv_d3") == forced.version


def test_test_cohort_overlapping_the_champions_training_is_challenger(champion_v1):
    """A champion trained on users of the new test cohort would score in-sample: challenger, reason stated."""
    uri, result = champion_v1
    sd = result.results[0]
    later = (pd.Timestamp(sd.split["test_from"]) + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    # a champion from a later as_of; no version tags, so its facts come from its run's params
    later_champion = _log_and_register(
        uri, result, sd.model, promote=True, run_params={"horizon_days": 365, "test_from": later}
    )
    reg = _log_and_register(uri, result, sd.model, tags={"horizon_days": "365"})
    assert reg.alias == "challenger"
    assert reg.reason.startswith(
        "not comparable: the champion was trained on part of this test cohort "
        f"(its training users signed up before {later}, this test cohort from {sd.split['test_from']})"
    )
    assert reg.reason.endswith("use --promote to replace it")
    assert registry.champion_version(uri, "pltv_d3") == later_champion.version


def test_same_horizon_non_overlapping_as_good_version_becomes_champion(champion_v1):
    """Same horizon, test cohort from the champion's test_from on, as good: the rule promotes it."""
    uri, result = champion_v1
    sd = result.results[0]
    assert sd.test["signup_at"].min() >= pd.Timestamp(sd.split["test_from"])  # touches, does not overlap
    reg = _log_and_register(uri, result, sd.model, tags={"horizon_days": "365"})
    assert reg.alias == "champion" and reg.reason.startswith("at least as good as the champion")
    assert registry.champion_version(uri, "pltv_d3") == reg.version


def test_comparability_rules():
    """Different horizons or a test cohort before the champion's test_from are not comparable; unknowns are."""
    day = pd.Timestamp("2025-09-03")
    assert registry._comparability(365, day, 365, day) is None
    assert registry._comparability(None, None, 30, day - pd.Timedelta(days=1)) is None
    both = registry._comparability(365, day, 30, pd.Timestamp("2025-04-22 10:00"))
    assert "365-day LTV, this version 30 days" in both and "signed up before 2025-09-03" in both
    alias, reason = registry.decide_alias({"gini": 0.9, "decile_mape": 0.1}, None, None, not_comparable=both)
    assert alias == "challenger" and reason.startswith("not comparable: ")
    assert registry.decide_alias({}, None, True, not_comparable=both)[0] == "champion"
    assert registry.decide_alias({}, None, False, not_comparable=both)[0] == "challenger"


def test_missing_model_is_a_registry_error(store):
    """Loading an unknown model names it and says what to do."""
    uri, _, _ = store
    with pytest.raises(RegistryError, match="pltv train"):
        registry.load_model(uri, "no_such_model", "champion")


def test_model_name_template_and_tracking_uris(tmp_path):
    """Names per send day; file stores are refused; a SQLite store keeps artifacts beside the database."""
    assert registry.model_name("pltv_d{send_day}", 7) == "pltv_d7"
    assert registry.model_name("shop_ltv", 3) == "shop_ltv_d3"
    with pytest.raises(ConfigError):
        tracking.configure(str(tmp_path / "mlruns"))
    uri = f"sqlite:///{tmp_path}/x/mlflow.db"
    tracking.configure(uri)
    assert (tmp_path / "x").is_dir()
    assert tracking.artifact_location(uri) == (tmp_path / "x" / "artifacts").as_uri()


def test_untracked_training_fits_the_same_model_and_writes_no_store(store, tmp_path, monkeypatch):
    """tracking_uri=None: same choice and holdout scores as the tracked run, no run id, nothing written."""
    _, _, tracked = store
    source = Path(SAMPLE).resolve()
    monkeypatch.chdir(tmp_path)
    untracked = train(source, send_days=(3,), tracking_uri=None)
    assert untracked.run_id is None and untracked.results[0].registration is None
    assert untracked.results[0].candidate == tracked.results[0].candidate
    assert untracked.results[0].scores == tracked.results[0].scores
    assert list(tmp_path.iterdir()) == []


def test_a_refund_after_midnight_does_not_push_as_of_past_the_wall_clock():
    """Data ending at 00:16 today: the default as_of is today 00:00 (today is not complete), not tomorrow."""
    from datetime import datetime

    from pltv.train import complete_until

    now = datetime(2026, 12, 1, 0, 30)
    assert complete_until("2026-12-01 00:16:00", now=now) == datetime(2026, 12, 1)
    assert complete_until("2026-11-30 23:59:00", now=now) == datetime(2026, 12, 1)
    assert complete_until("2026-10-31 23:56:24", now=now) == datetime(2026, 11, 1)
    assert complete_until("2026-12-01 00:16:00+01:00", now=now) == datetime(
        2026, 12, 1
    )  # 23:16 UTC the day before
