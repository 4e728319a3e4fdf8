"""Metrics: hand-computed examples, perfect/shuffled oracles, row-order invariance (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pltv import metrics as m


def _zero_inflated(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(3, 1, n) * (rng.random(n) < 0.25)


def test_perfect_ranking_has_normalized_gini_one():
    """Ordering by the true value itself gives Gini 1, whatever the scale of the prediction."""
    y = _zero_inflated(2000)
    assert m.normalized_gini(y, y) == pytest.approx(1.0)
    assert m.normalized_gini(y, np.log1p(y) * 7 + 3) == pytest.approx(1.0)


def test_shuffled_prediction_has_gini_near_zero():
    """A prediction unrelated to the value ranks no better than chance."""
    y = _zero_inflated(50_000, seed=1)
    pred = np.random.default_rng(2).permutation(y)
    assert abs(m.normalized_gini(y, pred)) < 0.03


def test_gini_hand_computed_example():
    """y = [0, 1, 3]: ranked 3, 0, 1 gives cumulative shares .75, .75, 1 → raw 2/3 over perfect 5/6 = 0.8."""
    assert m.normalized_gini([0, 1, 3], [0.2, 0.1, 0.3]) == pytest.approx(0.8)
    assert m.normalized_gini([0, 1, 3], [3, 2, 1]) == pytest.approx(-0.2)  # (0, .25, 1): raw −1/6


def test_tied_predictions_score_the_expected_random_order():
    """A constant prediction scores the average over orderings (raw Gini 1/n), not an arbitrary order."""
    y = [0.0, 1.0, 3.0]
    assert m.normalized_gini(y, [5, 5, 5]) == pytest.approx((1 / 3) / (5 / 6))


def test_spearman_hand_computed_example():
    """Ranks (1, 2, 3) vs (1, 3, 2): 1 − 6·2 / (3·8) = 0.5."""
    assert m.spearman([1, 2, 3], [10, 30, 20]) == pytest.approx(0.5)


def test_decile_table_hand_computed_example():
    """Two bins over four users: means, shares and errors per bin."""
    table = m.decile_table([0, 2, 4, 10], [1, 2, 3, 9], bins=2)
    assert list(table["users"]) == [2, 2]
    assert list(table["mean_predicted"]) == [1.5, 6.0]
    assert list(table["mean_actual"]) == [1.0, 7.0]
    assert list(table["share_of_actual"]) == pytest.approx([2 / 16, 14 / 16])
    assert list(table["ape"]) == pytest.approx([0.5, 1 / 7])
    assert m.decile_mape([0, 2, 4, 10], [1, 2, 3, 9], bins=2) == pytest.approx((0.5 + 1 / 7) / 2)


def test_tied_block_is_split_across_deciles_in_proportion():
    """A constant predictor puts the mean value in every decile, so decile MAPE equals |total bias|."""
    y = np.arange(1, 101, dtype=float)
    table = m.decile_table(y, np.full(100, 40.0))
    assert np.allclose(table["users"], 10) and np.allclose(table["mean_actual"], 50.5)
    assert m.decile_mape(y, np.full(100, 40.0)) == pytest.approx(abs(m.total_bias(y, np.full(100, 40.0))))


def test_total_bias_normalized_mae_and_top_share_hand_computed():
    """Σpred/Σtrue − 1, mean |error| / mean true, and the value share of the top quarter."""
    y, p = [0, 2, 4, 10], [1, 2, 3, 9]
    assert m.total_bias(y, p) == pytest.approx(15 / 16 - 1)
    assert m.normalized_mae(y, p) == pytest.approx((1 + 0 + 1 + 1) / 4 / 4)
    assert m.top_share(y, p, fraction=0.25) == pytest.approx(10 / 16)
    assert m.top_share(y, p, fraction=0.5) == pytest.approx(14 / 16)


def test_payer_auc_and_pr_auc_hand_computed():
    """Payers (y > 0) scored 0.9, 0.4 against non-payers 0.5, 0.1: AUC 3/4, AP (1 + 2/3) / 2."""
    y, p = [5, 0, 3, 0], [0.9, 0.5, 0.4, 0.1]
    assert m.payer_auc(y, p) == pytest.approx(0.75)
    assert m.payer_pr_auc(y, p) == pytest.approx((1 + 2 / 3) / 2)


def test_evaluate_ltv_names_metrics_for_both_labels():
    """Stable names: gini, decile_mape, ... and the future_ variants, with an optional prefix."""
    y = _zero_inflated(500)
    out = m.evaluate_ltv(y, y * 0.5, y, y * 0.5, prefix="baseline_")
    assert {"baseline_gini", "baseline_future_gini", "baseline_top10_share", "baseline_payer_auc"} <= set(out)
    assert out["baseline_future_total_bias"] == pytest.approx(0.0)


values = arrays(np.float64, st.integers(5, 60), elements=st.floats(0, 1e4, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(y=values, seed=st.integers(0, 2**31 - 1), data=st.data())
def test_metrics_are_invariant_to_row_order(y, seed, data):
    """Shuffling rows (with ties in the prediction) changes no metric."""
    if y.sum() <= 0:
        y = y.copy()
        y[0] = 1.0
    pred = data.draw(arrays(np.float64, y.size, elements=st.sampled_from([0.0, 1.0, 2.5, 7.0, 100.0])))
    perm = np.random.default_rng(seed).permutation(y.size)
    a, b = m.evaluate(y, pred), m.evaluate(y[perm], pred[perm])
    for key in a:
        assert a[key] == pytest.approx(b[key], nan_ok=True, rel=1e-9, abs=1e-12), key
    pd_a, pd_b = m.decile_table(y, pred), m.decile_table(y[perm], pred[perm])
    assert np.allclose(pd_a.fillna(-1).to_numpy(), pd_b.fillna(-1).to_numpy())


@settings(max_examples=40, deadline=None)
@given(y=values)
def test_gini_never_exceeds_the_perfect_ordering(y):
    """Normalized Gini lies in [−1, 1] for non-negative values, 1 for the perfect ordering."""
    if y.sum() <= 0 or np.ptp(y) == 0:
        return
    assert m.normalized_gini(y, y) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert -1 - 1e-9 <= m.normalized_gini(y, rng.random(y.size)) <= 1 + 1e-9


def test_total_bias_interval_contains_the_point_estimate_and_is_deterministic():
    """The bootstrap interval brackets Σpred/Σtrue − 1 and repeats exactly with the same seed."""
    y = _zero_inflated(3000, seed=3)
    pred = np.full(y.size, y.mean() * 1.02)
    lo, hi = m.total_bias_interval(y, pred, n_boot=300)
    assert lo < m.total_bias(y, pred) < hi
    assert (lo, hi) == m.total_bias_interval(y, pred, n_boot=300)


def test_degenerate_truth_gives_nan_not_numbers_or_warnings():
    """All-zero truth: every value-based metric is NaN, silently; a negative mean keeps MAE positive."""
    import warnings

    zeros, pred = np.zeros(5), np.arange(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (m.normalized_gini, m.total_bias, m.normalized_mae, m.top_share):
            assert np.isnan(fn(zeros, pred)), fn.__name__
    assert m.normalized_mae([-5.0, 1.0, 0.0], [1.0, 2.0, 3.0]) == pytest.approx(2.5)
