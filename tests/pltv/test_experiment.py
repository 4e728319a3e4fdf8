"""The experiment readout and the sample's experiment: arms, a known lift, intervals, spend, precision."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pltv.bootstrap import lift_interval
from pltv.errors import DataQualityError, SchemaError
from pltv.experiment import (
    ExperimentOptions,
    days_for_users,
    experiment_readout,
    read_spend,
    users_for_width,
)
from pltv.sample import Experiment, generate_sample, generate_tables

OPTIONS = ExperimentOptions(arm_column="acq_arm", treatment="treatment", control="control")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 40k-user sample whose pLTV arm doubles revenue (a lift a few thousand users can show)."""
    out = tmp_path_factory.mktemp("exp") / "src"
    generate_sample(out, n_users=40_000, seed=4, experiment=Experiment(lift=1.0))
    return out


def test_experiment_leaves_everything_but_the_arm_and_the_treatment_revenue_unchanged():
    """With the option the users are the same plus an arm column; only treatment users' amounts change."""
    users, tx, events = generate_tables(3_000, seed=8)
    e_users, e_tx, e_events = generate_tables(3_000, seed=8, experiment=Experiment(lift=0.25))
    pd.testing.assert_frame_equal(users, e_users.drop(columns="acq_arm"))
    pd.testing.assert_frame_equal(events, e_events)
    arm = e_users.set_index("user_id")["acq_arm"]
    treated = tx["user_id"].map(arm).eq("treatment").fillna(False).to_numpy(bool)
    assert treated.any()
    pd.testing.assert_frame_equal(tx[~treated], e_tx[~treated])
    ratio = e_tx.loc[treated, "revenue"].to_numpy() / tx.loc[treated, "revenue"].to_numpy()
    assert np.allclose(ratio, 1.25, atol=0.01)


def test_arms_are_recent_paid_social_users_split_in_half():
    """Only paid_social users of the experiment's last days carry an arm; the split is about even."""
    users, _, _ = generate_tables(20_000, seed=3, experiment=Experiment(days=60))
    inside = users[users["acq_arm"].notna()]
    assert set(inside["channel"]) == {"paid_social"}
    assert inside["signup_at"].min() >= pd.Timestamp("2026-11-01", tz="UTC") - pd.Timedelta(days=60)
    share = (inside["acq_arm"] == "treatment").mean()
    assert 0.45 < share < 0.55 and set(inside["acq_arm"]) == {"treatment", "control"}


def test_lift_interval_recovers_a_known_ratio_and_is_consistent_under_swapping_arms():
    """lift = mean ratio − 1; swapping the arms gives 1/(1 + lift) − 1 and the mirrored interval."""
    rng = np.random.default_rng(1)
    control = rng.lognormal(0, 1.0, 20_000)
    treatment = 1.25 * rng.lognormal(0, 1.0, 20_000)
    lift, (lo, hi) = lift_interval(treatment, control)
    assert lo < 0.25 < hi and lo < lift < hi and hi - lo < 0.1
    back, (blo, bhi) = lift_interval(control, treatment)
    assert back == pytest.approx(1 / (1 + lift) - 1)
    assert blo < back < bhi


def test_users_and_days_needed_for_a_target_width():
    """A width shrinks as 1/sqrt(n): half the width needs four times the users; days follow the pace."""
    assert users_for_width(1_000, 0.4, 0.2) == 4_000
    assert users_for_width(1_000, 0.1, 0.2) == 1_000
    pending = np.array([5.0, 10.0, 20.0])
    assert days_for_users(2, pending, per_day=10, maturity_days=30) == 10.0
    assert days_for_users(13, pending, per_day=10, maturity_days=30) == 31.0
    assert days_for_users(0, pending, per_day=10, maturity_days=30) == 0.0


def test_readout_shows_the_lift_with_an_interval_and_json_carries_it(source):
    """A doubled revenue reads as a positive lift whose interval excludes 0; the JSON has lift, lift_ci, arms."""
    readout = experiment_readout(source, OPTIONS)
    assert readout.lift_ci[0] > 0 and readout.lift_ci[0] < readout.lift < readout.lift_ci[1]
    data = json.loads(json.dumps(readout.to_dict()))
    assert len(data["lift_ci"]) == 2 and set(data["arms"]) == {"treatment", "control"}
    arm = data["arms"]["treatment"]
    assert arm["users"] >= arm["matured_users"] > arm["payers"] > 30
    assert data["more_users_per_arm"] > 0 and data["mature"] is False  # +-40 % is not a 20 % width
    assert "NOT MATURE" in readout.render() and "projection: none" in readout.render()


def test_spend_gives_cac_ltv_per_cac_and_lift_per_unit_spend(source, tmp_path):
    """CAC = spend / users; the lift per unit spend is the LTV lift times the CAC ratio."""
    (tmp_path / "spend.csv").write_text(
        "date,arm,spend\n2026-09-01,treatment,3000\n2026-09-02,treatment,3000\n2026-09-01,control,4000\n"
    )
    readout = experiment_readout(source, OPTIONS, spend_path=tmp_path / "spend.csv")
    t, c = readout.arms["treatment"], readout.arms["control"]
    assert t.cac == pytest.approx(6000 / t.users) and c.cac == pytest.approx(4000 / c.users)
    assert t.ltv_per_cac == pytest.approx(t.revenue_per_user / t.cac)
    assert readout.lift_per_spend == pytest.approx((1 + readout.lift) * c.cac / t.cac - 1)
    lo, hi = readout.lift_per_spend_ci
    assert lo < readout.lift_per_spend < hi


def test_bad_arm_column_value_or_spend_file_is_a_clear_error(source, tmp_path):
    """A missing column, an arm nobody has and a bad spend row each name what is wrong."""
    with pytest.raises(SchemaError, match="no arm column 'campaign'"):
        experiment_readout(source, ExperimentOptions(arm_column="campaign", treatment="a", control="b"))
    with pytest.raises(
        DataQualityError,
        match=r"'pltv_v2'.*values in that column: 'control', 'treatment'|'pltv_v2'.*'treatment', 'control'",
    ):
        experiment_readout(
            source, ExperimentOptions(arm_column="acq_arm", treatment="pltv_v2", control="control")
        )
    (tmp_path / "spend.csv").write_text("date,arm,spend\n2026-09-01,treatment,10\n2026-09-02,control,lots\n")
    with pytest.raises(DataQualityError, match="column 'spend', line 3"):
        read_spend(tmp_path / "spend.csv")
    (tmp_path / "nocol.csv").write_text("day,arm,spend\n")
    with pytest.raises(SchemaError, match=r"\['date'\]"):
        read_spend(tmp_path / "nocol.csv")
