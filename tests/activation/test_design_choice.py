"""The designer's choice: the most accurate eligible send day inside the campaign's attribution window,
a tolerance only when asked for, and output that says why the winner won or what to change."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from activation.design import (
    Candidate,
    DesignOptions,
    Population,
    design,
    max_ad_sets,
    rules_broken,
    score,
)
from pltv.cli import app

BIG = Population(weekly_signups=2_000, deliverable_share=0.9, append_share=0.5)
MODELS = {d: (f"pltv_d{d}", "1") for d in (0, 1, 3, 7)}


def _holdout(skill: float, n: int = 4_000, seed: int = 0) -> pd.DataFrame:
    """A zero-inflated, heavy-tailed holdout whose predictions know ``skill`` of the truth."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    payer = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + z)))
    actual = np.where(payer, np.exp(3.5 + 0.8 * z + rng.normal(0, 0.6, n)), 0.0)
    early = np.where(payer & (rng.random(n) < 0.5), actual * 0.3, 0.0)
    pred = np.exp(2.0 + 0.9 * (skill * z + rng.normal(0, 1, n)))
    pred *= actual.sum() / pred.sum()
    return pd.DataFrame({"predicted_ltv": pred, "actual_ltv": actual, "actual_future": actual - early})


def test_the_most_accurate_eligible_send_day_wins_by_default():
    """A slightly more accurate later day beats an earlier one (Meta: sending sooner does not help)."""
    holdouts = {1: _holdout(1.0), 3: _holdout(1.05)}
    result = design(holdouts, MODELS, BIG, horizon_days=365, options=DesignOptions(mode="custom_value"))
    by_day = result.table.groupby("send_day")["future_gini"].max()
    assert 0 < by_day[3] - by_day[1] < 0.02  # inside the old implicit tolerance
    assert result.winner["send_day"] == 3
    assert "most accurate eligible" in result.reason and "within 7 days" in result.reason
    assert "fits the 7-day click attribution window" in result.reason


def test_the_tolerance_is_an_explicit_opt_in_that_prefers_the_earliest_day():
    """With --tolerance the earliest day within it of the best wins, and the reason says it was opted in."""
    holdouts = {1: _holdout(1.0), 3: _holdout(1.05)}
    options = DesignOptions(mode="custom_value", tolerance=0.02)
    result = design(holdouts, MODELS, BIG, horizon_days=365, options=options)
    assert result.winner["send_day"] == 1
    assert "opted-in tolerance 0.020" in result.reason


def test_a_one_day_click_window_leaves_only_send_day_zero_for_custom_events():
    """event_time = signup + send day: under 1-day click only day 0 can be attributed; AppendValue is not
    bound by it (its value joins the conversion event)."""
    one_day = DesignOptions(attribution_days=1)
    for day, expect in ((0, False), (1, True), (3, True)):
        cand = Candidate(day, "custom_value", "calibrated")
        broken = rules_broken(cand, score(cand, _holdout(1.0), BIG), BIG, one_day)
        assert ("attribution_window_1d" in broken) is expect
    append = Candidate(3, "append_value", "calibrated")
    assert not rules_broken(append, score(append, _holdout(1.0), BIG), BIG, one_day)
    result = design({0: _holdout(0.3), 3: _holdout(2.0)}, MODELS, BIG, horizon_days=365,
                    options=DesignOptions(mode="custom_value", attribution_days=1))  # fmt: skip
    assert result.winner["send_day"] == 0
    assert "later send days are not eligible (attribution_window_1d)" in result.reason


def test_the_attribution_window_accepts_only_meta_click_settings():
    """1 or 7 days; anything else is a clear error, exit 2 from the CLI before any store is read."""
    result = CliRunner().invoke(app, ["design", "--attribution-window", "3"])
    assert result.exit_code == 2
    assert "1 (1-day click) or 7 (7-day click)" in result.output


def test_no_sendable_users_names_the_top_pre_send_reasons_with_counts():
    """The notes name why recent users are not sendable, most frequent first, with counts."""
    few = Population(
        weekly_signups=2_000, deliverable_share=0.0, append_share=0.0, users=8_000,
        skip_reasons={"custom_value": {"missing_client_user_agent": 3_000, "missing_event_source_url": 5_000,
                                       "no_consent": 10, "too_old": 1},
                      "append_value": {"missing_conversion_ids": 8_000}},
    )  # fmt: skip
    result = design({1: _holdout(1.0)}, MODELS, few, horizon_days=365)
    assert result.winner is None
    note = next(n for n in result.notes if n.startswith("why recent users are not sendable"))
    assert "missing_event_source_url 5,000, missing_client_user_agent 3,000, no_consent 10" in note
    assert "too_old" not in note  # the top three only
    assert "AppendValue 0% sendable; not sendable of 8,000: missing_conversion_ids 8,000" in note


def test_too_many_ad_sets_says_how_many_the_volume_supports():
    """123 events/week cannot feed 3 ad sets at 50 each: the reason says 2 and how to rerun."""
    small = Population(weekly_signups=123, deliverable_share=1.0, append_share=1.0)
    options = DesignOptions(mode="custom_value", ad_sets=3, send_days=(1,))
    result = design({1: _holdout(1.0)}, MODELS, small, horizon_days=365, options=options)
    assert result.winner is None
    assert "supports at most 2 ad set(s)" in result.reason and "--ad-sets 2" in result.reason
    ok = design({1: _holdout(1.0)}, MODELS, small, horizon_days=365,
                options=DesignOptions(mode="custom_value", send_days=(1,)))  # fmt: skip
    assert any("support up to 2 ad set(s)" in n for n in ok.notes)
    assert max_ad_sets(49.9) == 0 and max_ad_sets(100.0) == 2
