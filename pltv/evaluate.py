"""Honest evaluation on the out-of-time holdout: the holdout frame, model-vs-baseline metrics, deciles.

The holdout frame (logged as ``holdout.parquet``) is the contract with the event designer and notebooks:
``user_id``, ``signup_at``, ``send_day``, ``predicted_ltv``, ``baseline_ltv``, ``actual_ltv``,
``actual_future`` (+ ``early_net_revenue``, the revenue known at the send moment).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pltv import metrics

HOLDOUT_COLUMNS = (
    "user_id", "signup_at", "send_day", "predicted_ltv", "baseline_ltv", "actual_ltv", "actual_future",
    "early_net_revenue",
)  # fmt: skip
TABLE_METRICS = ("gini", "future_gini", "spearman", "decile_mape", "total_bias", "payer_auc", "top10_share")


def holdout_frame(test: pd.DataFrame, *, send_day: int, predicted_ltv, baseline_ltv) -> pd.DataFrame:
    """The holdout table for a test features frame (with labels) and both predictions."""
    return pd.DataFrame(
        {
            "user_id": test["user_id"].astype(str).to_numpy(),
            "signup_at": test["signup_at"].to_numpy(),
            "send_day": np.full(len(test), int(send_day), dtype=np.int64),
            "predicted_ltv": np.asarray(predicted_ltv, dtype=np.float64),
            "baseline_ltv": np.asarray(baseline_ltv, dtype=np.float64),
            "actual_ltv": test["actual_ltv"].to_numpy(dtype=np.float64),
            "actual_future": test["actual_future"].to_numpy(dtype=np.float64),
            "early_net_revenue": test["early_net_revenue"].to_numpy(dtype=np.float64),
        }
    )


def evaluate_holdout(holdout: pd.DataFrame) -> dict[str, float]:
    """Model metrics (``gini``, ``future_gini``...) and the baseline's (``baseline_gini``...)."""
    out = {}
    for column, prefix in (("predicted_ltv", ""), ("baseline_ltv", "baseline_")):
        out |= metrics.evaluate_ltv(
            holdout["actual_ltv"],
            holdout["actual_future"],
            holdout[column],
            holdout["early_net_revenue"],
            prefix=prefix,
        )
    lo, hi = metrics.total_bias_interval(holdout["actual_ltv"], holdout["predicted_ltv"], n_boot=500)
    out["total_bias_ci_low"], out["total_bias_ci_high"] = lo, hi
    return out


def decile_report(holdout: pd.DataFrame) -> pd.DataFrame:
    """Decile tables of the model and the baseline on the total-LTV label, stacked with a ``predictor`` column."""
    parts = []
    for column, name in (("predicted_ltv", "model"), ("baseline_ltv", "baseline")):
        table = metrics.decile_table(holdout["actual_ltv"], holdout[column])
        parts.append(table.assign(predictor=name))
    return pd.concat(parts, ignore_index=True)


def acceptance(scores: dict[str, float]) -> dict[str, bool]:
    """The issue's bar: Gini ≥ baseline − 0.01, decile MAPE ≤ 0.8 × baseline's, |total bias| ≤ 5 %."""
    return {
        "gini": scores["gini"] >= scores["baseline_gini"] - 0.01,
        "decile_mape": scores["decile_mape"] <= 0.8 * scores["baseline_decile_mape"],
        "total_bias": abs(scores["total_bias"]) <= 0.05,
    }


#: The champion rule's two measures: higher Gini is better, lower decile MAPE is better.
CHAMPION_METRICS = {"gini": 1, "decile_mape": -1}


def baseline_losses(scores: dict[str, float]) -> dict[str, tuple[float, float]]:
    """The champion measures on which the model is worse than the baseline: ``{metric: (model, baseline)}``.

    ``scores`` holds ``gini``/``decile_mape`` and their ``baseline_`` twins on the same out-of-time cohort
    (missing or NaN values are not held against the model)."""
    out = {}
    for key, sign in CHAMPION_METRICS.items():
        model, base = scores.get(key), scores.get(f"baseline_{key}")
        if model is None or base is None or not (np.isfinite(model) and np.isfinite(base)):
            continue
        if sign * (model - base) < 0:
            out[key] = (float(model), float(base))
    return out


def render_scores(scores: dict[str, float], *, title: str = "") -> str:
    """A text table of the model vs the baseline on :data:`TABLE_METRICS` (for the CLI and logs); a
    champion measure on which the model loses to the baseline is marked (it is then not made champion)."""
    lines = [title] if title else []
    lines.append(f"  {'metric':<14}{'model':>10}{'baseline':>10}")
    losses = baseline_losses(scores)
    for key in TABLE_METRICS:
        model, base = scores.get(key, float("nan")), scores.get(f"baseline_{key}", float("nan"))
        mark = "  <- worse than the baseline" if key in losses else ""
        lines.append(f"  {key:<14}{model:>10.3f}{base:>10.3f}{mark}")
    if "total_bias_ci_low" in scores:
        lo, hi = scores["total_bias_ci_low"], scores["total_bias_ci_high"]
        lines.append(f"  total_bias 95% bootstrap interval [{lo:+.3f}, {hi:+.3f}] (test-cohort noise)")
    return "\n".join(lines)
