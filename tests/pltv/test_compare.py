"""compare_versions: every version scored on the same out-of-time cohort, metrics from pltv.metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pltv import metrics
from pltv.compare import compare_versions
from pltv.errors import RegistryError
from pltv.features import build_features, default_as_of
from pltv.sources import open_source
from pltv.train import split_cohorts, train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
NAME = "pltv_d7"


@pytest.fixture(scope="module")
def store(d7_two_versions_store) -> str:
    """Send day 7 trained twice: an older as_of (v1), then the default as_of kept as challenger (v2)."""
    return d7_two_versions_store


@pytest.fixture(scope="module")
def comparison(store):
    return compare_versions(store, NAME, source=SAMPLE)


def test_default_versions_are_champion_then_newest(comparison):
    """Without versions: the champion first, then the other versions newest first."""
    assert comparison.versions == ["1", "2"]
    assert comparison.labels == {"1": "v1 (champion)", "2": "v2 (challenger)"}


def test_every_version_is_scored_on_the_same_cohort(comparison):
    """Each holdout holds the same users, in the same order, with the same labels."""
    first = comparison.holdouts["1"]
    for holdout in comparison.holdouts.values():
        pd.testing.assert_series_equal(holdout["user_id"], first["user_id"])
        np.testing.assert_array_equal(holdout["actual_ltv"], first["actual_ltv"])
    assert not first["predicted_ltv"].equals(comparison.holdouts["2"]["predicted_ltv"])


def test_cohort_is_the_training_out_of_time_split(comparison):
    """The cohort is split_cohorts' test cohort of matured users at the source's default as_of."""
    with open_source(SAMPLE) as src:
        as_of = default_as_of(src.quality.data_end)
        frame = build_features(src.con, send_day=7, as_of=as_of, horizon_days=365)
    frame = frame[frame["actual_ltv"].notna()]
    test_from = split_cohorts(frame)
    expected = frame.loc[frame["signup_at"] >= test_from, "user_id"].astype(str)
    assert comparison.as_of == as_of and comparison.test_from == test_from
    assert list(comparison.holdouts["2"]["user_id"]) == list(expected)


def test_cohort_matches_what_training_logged_for_the_latest_version(store, comparison):
    """v2 was trained at the same as_of, so the cohort is exactly its logged holdout."""
    from pltv.registry import holdout_for

    logged = holdout_for(store, NAME, "2")
    ours = comparison.holdouts["2"]
    assert list(ours["user_id"]) == list(logged["user_id"])
    np.testing.assert_allclose(ours["predicted_ltv"], logged["predicted_ltv"], rtol=1e-9)
    np.testing.assert_allclose(ours["baseline_ltv"], logged["baseline_ltv"], rtol=1e-5)


def test_metrics_match_pltv_metrics_on_the_cohort(comparison):
    """The table's numbers are pltv.metrics applied to each version's predictions on the cohort."""
    table = comparison.metrics.set_index(["version", "predictor"])
    for v, holdout in comparison.holdouts.items():
        for predictor, column in (("model", "predicted_ltv"), ("baseline", "baseline_ltv")):
            row = table.loc[(v, predictor)]
            y, pred = holdout["actual_ltv"], holdout[column]
            assert row["gini"] == pytest.approx(metrics.normalized_gini(y, pred))
            assert row["decile_mape"] == pytest.approx(metrics.decile_mape(y, pred))
            assert row["total_bias"] == pytest.approx(metrics.total_bias(y, pred))
            future = holdout[column] - holdout["early_net_revenue"]
            assert row["future_gini"] == pytest.approx(
                metrics.normalized_gini(holdout["actual_future"], future)
            )
            assert row["users"] == len(holdout)


def test_weekly_bias_sums_to_the_cohort_bias(comparison):
    """Σpredicted / Σactual − 1 over the evaluation cohort's weeks equals total_bias on the cohort."""
    weeks = comparison.bias_by_week
    week_of_test_from = comparison.test_from.to_period("W-SUN").start_time
    for v, holdout in comparison.holdouts.items():
        part = weeks[(weeks["version"] == v) & (weeks["predictor"] == "model")]
        assert part["signup_week"].is_monotonic_increasing
        after = part[part["signup_week"] > week_of_test_from]
        in_cohort = holdout[holdout["signup_at"] >= week_of_test_from + pd.Timedelta(days=7)]
        expected = metrics.total_bias(in_cohort["actual_ltv"], in_cohort["predicted_ltv"])
        assert after["predicted"].sum() / after["actual"].sum() - 1 == pytest.approx(expected)


def test_explicit_versions_and_aliases(store):
    """Aliases resolve to versions; the order given is kept."""
    c = compare_versions(store, NAME, ["challenger", "1"], source=SAMPLE)
    assert c.versions == ["2", "1"]


def test_unknown_model_raises_registry_error(store):
    """A model name the registry does not know fails with a RegistryError that says what to do."""
    with pytest.raises(RegistryError, match="pltv train"):
        compare_versions(store, "no_such_model", source=SAMPLE)


def test_reliability_curve_draws_the_bins_predicted_at_zero():
    """A baseline predicting 0 for most users is drawn at the left edge and counted, not hidden."""
    from pltv.plots import reliability_curve

    rng = np.random.default_rng(0)
    actual = rng.exponential(30, 2000) * (rng.random(2000) < 0.3)
    baseline = np.where(rng.random(2000) < 0.85, 0.0, actual * 2)
    fig = reliability_curve(actual, {"model": actual + 1, "baseline": baseline}, bins=20)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    drawn = next(line for label, line in lines.items() if label.startswith("baseline"))
    assert len(drawn.get_xdata()) == 20 and min(drawn.get_xdata()) == 0
    assert "users predicted 0)" in drawn.get_label()


def test_a_model_reading_a_column_the_source_lacks_is_refused(tmp_path):
    """Like the daily job: a version trained with extra_categoricals the source lacks is not scored."""
    import shutil

    from pltv.config import SourceConfig
    from pltv.errors import ConfigError

    planned = tmp_path / "with_plan"
    shutil.copytree(SAMPLE, planned)
    users = pd.read_parquet(planned / "users.parquet")
    users["plan"] = np.where(np.arange(len(users)) % 3 == 0, "pro", "basic")
    users.to_parquet(planned / "users.parquet", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train(SourceConfig(path=str(planned), extra_categoricals=("plan",)), send_days=(1,), tracking_uri=uri)
    with pytest.raises(ConfigError, match=r"pltv_d1 v1 reads users column\(s\) \['plan'\]"):
        compare_versions(uri, "pltv_d1", source=SAMPLE)
    assert compare_versions(uri, "pltv_d1", source=str(planned)).versions == ["1"]
