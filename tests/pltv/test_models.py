"""Estimators and training: sklearn contract, recalibration, baseline, time split, no immature labels."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from pltv.config import SourceConfig
from pltv.errors import ConfigError, InsufficientDataError
from pltv.features import build_features, default_as_of
from pltv.models import EarlyRevenueMultiple, HurdleLTV, TweedieLTV
from pltv.sources import open_source
from pltv.train import fit_send_day, split_cohorts, train

SAMPLE = "data/sample"


@pytest.fixture(scope="module")
def sample_frames():
    """Matured features for send day 3 on the committed sample, plus as_of."""
    with open_source(SAMPLE) as src:
        as_of = default_as_of(src.quality.data_end)
        frame = build_features(src.con, send_day=3, as_of=as_of)
    return frame, as_of


@pytest.fixture(scope="module")
def fitted(sample_frames):
    """One full send-day fit (choice on validation, recalibration, evaluation)."""
    frame, _ = sample_frames
    return fit_send_day(frame, send_day=3, horizon_days=365)


def test_fit_returns_self_and_learns_state(sample_frames):
    """fit returns self; learned attributes end in an underscore; predictions are finite and >= 0."""
    frame, _ = sample_frames
    for model in (HurdleLTV(), TweedieLTV(), EarlyRevenueMultiple()):
        assert model.fit(frame, frame["actual_ltv"]) is model
        pred = model.predict(frame.head(200))
        assert pred.shape == (200,) and np.isfinite(pred).all() and (pred >= -1e-9).all()
    assert HurdleLTV().fit(frame, frame["actual_ltv"]).feature_names_


def test_predictions_never_fall_below_known_early_revenue(sample_frames):
    """The models add predicted future revenue to the revenue already known at the send moment."""
    frame, _ = sample_frames
    model = TweedieLTV().fit(frame, frame["actual_ltv"])
    assert (model.predict(frame) >= frame["early_net_revenue"] - 1e-9).all()


def test_recalibration_matches_the_aggregate(sample_frames):
    """After recalibrate(X, y), Σpredicted equals Σy on those users."""
    frame, _ = sample_frames
    model = HurdleLTV().fit(frame, frame["actual_ltv"]).recalibrate(frame, frame["actual_ltv"])
    assert model.predict(frame).sum() == pytest.approx(frame["actual_ltv"].sum(), rel=1e-9)


def test_models_are_deterministic(sample_frames):
    """Same data, same seed: identical predictions."""
    frame, _ = sample_frames
    a = HurdleLTV().fit(frame, frame["actual_ltv"]).predict(frame)
    b = HurdleLTV().fit(frame, frame["actual_ltv"]).predict(frame)
    np.testing.assert_array_equal(a, b)


def test_scoring_aligns_missing_columns_and_unseen_categories(sample_frames):
    """A frame without an event column or with an unseen country still scores (count 0, category missing)."""
    frame, _ = sample_frames
    model = TweedieLTV().fit(frame, frame["actual_ltv"])
    odd = frame.head(50).drop(columns=["event__trial_start"]).assign(country="ZZ", extra=1.0)
    pred = model.predict(odd)
    assert np.isfinite(pred).all()


def test_baseline_is_k_times_early_revenue():
    """k = Σ actual / Σ early revenue on training users; zero early revenue predicts zero."""
    X = pd.DataFrame({"early_net_revenue": [10.0, 0.0, 30.0]})
    base = EarlyRevenueMultiple().fit(X, [40.0, 20.0, 100.0])
    assert base.k_ == pytest.approx(160 / 40)
    assert list(base.predict(X)) == pytest.approx([40.0, 0.0, 120.0])
    assert EarlyRevenueMultiple().fit(X.assign(early_net_revenue=0.0), [1, 2, 3]).k_ == 0.0


def test_test_cohort_is_the_most_recent_matured_signups(fitted, sample_frames):
    """Out-of-time: every test user signed up after every training user, on whole days, ~20 %."""
    frame, _ = sample_frames
    test_from = split_cohorts(frame)
    assert test_from == test_from.normalize()
    holdout = fitted.holdout
    assert holdout["signup_at"].min() >= test_from
    assert 0.15 < len(holdout) / len(frame) < 0.25
    assert fitted.split["n_train"] + fitted.split["n_test"] == len(frame)


def test_final_model_is_recalibrated_on_all_training_cohorts(fitted, sample_frames):
    """Σpredicted = Σactual over the matured training users; the test cohort plays no part in the factor."""
    frame, _ = sample_frames
    train = frame[frame["signup_at"] < split_cohorts(frame)]
    assert fitted.model.predict(train).sum() == pytest.approx(train["actual_ltv"].sum(), rel=1e-9)
    assert fitted.model.scale_ != 1.0


def test_unmatured_users_never_enter_training(sample_frames):
    """Only users with signup_at + horizon <= as_of are in the matured frame (and so in training)."""
    frame, as_of = sample_frames
    assert (frame["signup_at"] + timedelta(days=365) <= as_of).all()
    assert frame["actual_ltv"].notna().all()
    with open_source(SAMPLE) as src:
        everyone = build_features(src.con, send_day=3, as_of=as_of, population="all")
    immature = everyone[everyone["actual_ltv"].isna()]
    assert len(immature) > 0 and not set(immature["user_id"]) & set(frame["user_id"])


def test_model_beats_the_baseline_out_of_time(fitted):
    """Send day 3 on the sample: Gini ≥ baseline − 0.01 and decile MAPE ≤ 0.8 × baseline's."""
    s = fitted.scores
    assert s["gini"] >= s["baseline_gini"] - 0.01
    assert s["decile_mape"] <= 0.8 * s["baseline_decile_mape"]
    assert abs(s["total_bias"]) <= 0.10
    assert set(fitted.holdout.columns) >= {
        "user_id", "signup_at", "send_day", "predicted_ltv", "baseline_ltv", "actual_ltv", "actual_future",
    }  # fmt: skip


def test_too_few_matured_users_is_a_clear_error(sample_frames):
    """Insufficient data names the numbers found and needed."""
    frame, _ = sample_frames
    with pytest.raises(InsufficientDataError, match=r"500 matured users \(need 1,000"):
        fit_send_day(frame.head(500), send_day=3, horizon_days=365)


def test_as_of_after_the_data_ends_is_refused(tmp_path):
    """Data is complete only before the day after its last row; a later as_of would mature cut-short labels."""
    with pytest.raises(ConfigError, match=r"after the data ends .* up to 2026-11-01"):
        train(SAMPLE, send_days=(3,), as_of="2027-06-01", tracking_uri=None)
    with pytest.raises(ConfigError, match=r"send days must be in 0\.\.364"):
        train(SAMPLE, send_days=(0, 400), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run or registration


def test_a_send_day_without_enough_data_fails_the_run_before_anything_is_registered(tmp_path):
    """Send day 3 trains, send day 364 has too few payers: the run fails and the store stays untouched."""
    with pytest.raises(InsufficientDataError, match=r"send day 364: .* training users paying"):
        train(SAMPLE, send_days=(3, 364), tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.fixture(scope="module")
def plan_source(tmp_path_factory):
    """The sample as a DuckDB file whose users carry an extra attribute, 'plan', that drives revenue."""
    path = tmp_path_factory.mktemp("plan") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE TABLE transactions AS SELECT * FROM '{SAMPLE}/transactions/*.parquet'; "
            f"CREATE TABLE events AS SELECT * FROM '{SAMPLE}/events/*.parquet'; "
            "CREATE TABLE users AS SELECT u.*, CASE WHEN coalesce(t.net, 0) > 200 THEN 'pro' "
            "WHEN hash(u.user_id) % 4 = 0 THEN 'pro' ELSE 'basic' END AS plan "
            f"FROM '{SAMPLE}/users.parquet' u LEFT JOIN (SELECT user_id, sum(revenue) AS net FROM transactions "
            "GROUP BY 1) t USING (user_id)"
        )
    return path


def test_configured_extra_categoricals_become_features_and_scoring_needs_them(plan_source):
    """extra_categoricals: the model learns 'plan'; scoring frames must carry the model's categoricals."""
    config = SourceConfig(path=str(plan_source), extra_categoricals=("plan",))
    result = train(config, send_days=(3,), tracking_uri=None).results[0]
    model = result.model
    assert model.categoricals_ == ["country", "platform", "channel", "plan"]
    assert "plan" in model.feature_names_ and model.feature_importance()["plan"] > 0
    with open_source(config) as src:
        as_of = default_as_of(src.quality.data_end)
        full = build_features(src.con, send_day=3, as_of=as_of, categoricals=model.categoricals_)
        without = build_features(src.con, send_day=3, as_of=as_of)
    test = full[full["user_id"].isin(result.holdout["user_id"])]
    np.testing.assert_allclose(model.predict(test), result.holdout["predicted_ltv"].to_numpy())
    assert not np.allclose(model.predict(without.loc[test.index]), model.predict(test))


def test_extra_categoricals_must_exist_and_never_be_identifiers(plan_source):
    """A missing column is named with the table's columns; identifiers are refused before reading data."""
    with pytest.raises(ConfigError, match=r"\['tier'\] are not columns of table 'users'"):
        train(
            SourceConfig(path=str(plan_source), extra_categoricals=("tier",)),
            send_days=(3,),
            tracking_uri=None,
        )
    with pytest.raises(ConfigError, match=r"\['email'\]: identifiers and delivery fields never"):
        train(
            SourceConfig(path=str(plan_source), extra_categoricals=("email",)),
            send_days=(3,),
            tracking_uri=None,
        )
