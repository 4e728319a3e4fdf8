"""pLTV evaluation metrics: pure functions ``f(y_true, y_pred)``, row-order invariant, tie-aware.

Ties in the prediction are common (a baseline predicting 0 for every non-payer), so every rank-based metric
here treats a block of tied predictions as if it were ordered at random and takes the expectation: the gain
curve is linear across a tied block and a tied block spanning a decile boundary is split between deciles in
proportion. That makes the metrics independent of row order (no arbitrary tie-breaking) and fair to
coarse predictors.

Normalized Gini follows Google's ``lifetime_value`` (Wang, Liu, Miao 2019, "A Deep Probabilistic Model for
Customer Lifetime Value Prediction", ``lifetime_value/metrics.py``): the cumulative share of true value over
users ordered by prediction, Gini = 2·mean(cumulative share) − 1, normalized by the perfect ordering.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pltv.bootstrap import resamples

TOP_SHARES = (0.01, 0.05, 0.10)


def _arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one row")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite")
    return t, p


def _blocks(y_true: np.ndarray, y_pred: np.ndarray, *, descending: bool):
    """Tied-prediction blocks in rank order: (size, sum of y_true, sum of y_pred) per block."""
    key = -y_pred if descending else y_pred
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    size = np.diff(np.r_[starts, sorted_key.size])
    true_sum = np.add.reduceat(y_true[order], starts)
    pred_sum = np.add.reduceat(y_pred[order], starts)
    return size, true_sum, pred_sum


def gain_curve(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of users (x) and of true value (y), users ordered by prediction, highest first.

    Starts at (0, 0); one point per tied block (the curve is linear inside a block).
    """
    t, p = _arrays(y_true, y_pred)
    size, true_sum, _ = _blocks(t, p, descending=True)
    total = t.sum()
    x = np.r_[0.0, np.cumsum(size)] / t.size
    y = np.r_[0.0, np.cumsum(true_sum)] / (total if total != 0 else 1.0)
    return x, y


def _gini_raw(t: np.ndarray, p: np.ndarray) -> float:
    """``2 · mean(cumulative value share) − 1`` over users ranked by ``p`` (Google's formula), tie-aware.

    Inside a tied block of m users holding value S after cumulative value C, the j-th user's expected
    cumulative value is C + S·j/m, so the block contributes m·C + S·(m + 1)/2.
    """
    size, true_sum, _ = _blocks(t, p, descending=True)
    before = np.r_[0.0, np.cumsum(true_sum)[:-1]]
    cum_total = np.sum(size * before + true_sum * (size + 1) / 2)
    return 2 * cum_total / (t.sum() * t.size) - 1


def normalized_gini(y_true, y_pred) -> float:
    """Gini of the gain curve ordered by ``y_pred`` over the Gini of the perfect ordering (1 = perfect).

    NaN when the perfect ordering has no area (all true values equal, or a total of zero).
    """
    t, p = _arrays(y_true, y_pred)
    if t.sum() == 0:
        return float("nan")
    perfect = _gini_raw(t, t)
    if abs(perfect) < 1e-12:
        return float("nan")
    return float(_gini_raw(t, p) / perfect)


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    t, p = _arrays(y_true, y_pred)
    rt = pd.Series(t).rank(method="average").to_numpy()
    rp = pd.Series(p).rank(method="average").to_numpy()
    if rt.std() == 0 or rp.std() == 0:
        return float("nan")
    return float(np.corrcoef(rt, rp)[0, 1])


def decile_table(y_true, y_pred, *, bins: int = 10) -> pd.DataFrame:
    """Users in equal-size bins of predicted rank (decile 1 = lowest prediction, ``bins`` = highest).

    Columns: ``decile``, ``users`` (fractional when a tied block straddles a boundary), ``mean_predicted``,
    ``mean_actual``, ``share_of_actual``, ``ape`` (|mean_predicted − mean_actual| / |mean_actual|).
    """
    t, p = _arrays(y_true, y_pred)
    size, true_sum, pred_sum = _blocks(t, p, descending=False)
    end = np.cumsum(size).astype(np.float64)
    start = end - size
    edges = np.linspace(0, t.size, bins + 1)
    overlap = np.clip(
        np.minimum(end[:, None], edges[None, 1:]) - np.maximum(start[:, None], edges[None, :-1]), 0, None
    )
    frac = overlap / size[:, None]
    users = overlap.sum(axis=0)
    s_true = frac.T @ true_sum
    s_pred = frac.T @ pred_sum
    total = t.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_actual = s_true / users
        mean_pred = s_pred / users
        ape = np.abs(mean_pred - mean_actual) / np.abs(mean_actual)
        share = s_true / total if total != 0 else np.full(bins, np.nan)
    return pd.DataFrame(
        {
            "decile": np.arange(1, bins + 1),
            "users": users,
            "mean_predicted": mean_pred,
            "mean_actual": mean_actual,
            "share_of_actual": share,
            "ape": np.where(np.isfinite(ape), ape, np.nan),
        }
    )


def decile_mape(y_true, y_pred, *, bins: int = 10) -> float:
    """Mean absolute percentage error of the decile means (deciles whose actual mean is 0 are skipped)."""
    ape = decile_table(y_true, y_pred, bins=bins)["ape"].dropna()
    return float(ape.mean()) if len(ape) else float("nan")


def total_bias(y_true, y_pred) -> float:
    """Σ predicted / Σ actual − 1 (0 = calibrated in aggregate)."""
    t, p = _arrays(y_true, y_pred)
    return float(p.sum() / t.sum() - 1) if t.sum() != 0 else float("nan")


def normalized_mae(y_true, y_pred) -> float:
    """Mean absolute error over the absolute mean actual value (NaN when that mean is 0)."""
    t, p = _arrays(y_true, y_pred)
    return float(np.abs(p - t).mean() / abs(t.mean())) if t.mean() != 0 else float("nan")


def top_share(y_true, y_pred, *, fraction: float = 0.10) -> float:
    """Share of total true value held by the top ``fraction`` of users by prediction (tie-aware)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if _arrays(y_true, y_pred)[0].sum() == 0:
        return float("nan")  # no value to share out
    x, y = gain_curve(y_true, y_pred)
    return float(np.interp(fraction, x, y))


def payer_auc(y_true, y_pred) -> float:
    """ROC AUC of the prediction for ``y_true > 0`` (payers); NaN when only one class is present."""
    t, p = _arrays(y_true, y_pred)
    pos = t > 0
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def payer_pr_auc(y_true, y_pred) -> float:
    """Average precision of the prediction for ``y_true > 0``; ties count as one threshold."""
    t, p = _arrays(y_true, y_pred)
    pos = (t > 0).astype(np.float64)
    if pos.sum() == 0:
        return float("nan")
    size, pos_sum, _ = _blocks(pos, p, descending=True)
    tp = np.cumsum(pos_sum)
    precision = tp / np.cumsum(size)
    recall_step = pos_sum / pos.sum()
    return float(np.sum(precision * recall_step))


def evaluate(y_true, y_pred, *, prefix: str = "") -> dict[str, float]:
    """Every metric for one label and one prediction, keyed with stable names (``gini``, ``top10_share``...)."""
    t, p = _arrays(y_true, y_pred)
    out = {
        "gini": normalized_gini(t, p),
        "spearman": spearman(t, p),
        "decile_mape": decile_mape(t, p),
        "total_bias": total_bias(t, p),
        "normalized_mae": normalized_mae(t, p),
        "payer_auc": payer_auc(t, p),
        "payer_pr_auc": payer_pr_auc(t, p),
    }
    for fraction in TOP_SHARES:
        out[f"top{round(fraction * 100)}_share"] = top_share(t, p, fraction=fraction)
    return {f"{prefix}{k}": float(v) for k, v in out.items()}


def evaluate_ltv(
    actual_ltv, actual_future, predicted_ltv, early_net_revenue, *, prefix: str = ""
) -> dict[str, float]:
    """Metrics for the total-LTV label and, prefixed ``future_``, for the future-only label.

    The future-only prediction is ``predicted_ltv − early_net_revenue`` (what the predictor expects on top
    of the revenue already known at the send moment): the honest measure of predictive skill.
    """
    predicted_future = np.asarray(predicted_ltv, dtype=np.float64) - np.asarray(
        early_net_revenue, dtype=float
    )
    metrics: Mapping[str, float] = evaluate(actual_ltv, predicted_ltv) | evaluate(
        actual_future, predicted_future, prefix="future_"
    )
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def total_bias_interval(
    y_true, y_pred, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of :func:`total_bias` (users resampled with replacement, fixed seed).

    On a small out-of-time cohort with heavy-tailed value the realized Σactual is itself noisy; this says
    how far from 0 a perfectly calibrated model's bias could land by chance.
    """
    t, p = _arrays(y_true, y_pred)
    rng = np.random.default_rng(seed)
    sums_t, sums_p = np.empty(n_boot), np.empty(n_boot)
    for start, idx in resamples(t.size, n_boot, rng):
        sums_t[start : start + len(idx)] = t[idx].sum(axis=1)
        sums_p[start : start + len(idx)] = p[idx].sum(axis=1)
    bias = sums_p[sums_t != 0] / sums_t[sums_t != 0] - 1
    lo, hi = np.quantile(bias, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
