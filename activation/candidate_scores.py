"""The holdout quality of one design candidate: the values its event would carry, scored on the
out-of-time holdout (Gini, future-only Gini, calibration, volume; precision/recall for a threshold event).

Pure functions over the holdout's ``predicted_ltv`` / ``actual_ltv`` / ``actual_future`` columns;
:mod:`activation.design` applies the rules to these scores and chooses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from activation.valuemap import fit_mapping
from pltv import metrics

if TYPE_CHECKING:
    from activation.design import Candidate, Population

FITS_ACTUALS = ("decile_means",)  # mappings fitted on the holdout's actual LTV


def _out_of_sample_values(kind: str, pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Values of a mapping fitted on actual LTV, each holdout half mapped by the fit on the other half
    (scoring it on the users it was fitted on would report its own fit as quality)."""
    half = np.arange(len(pred)) % 2 == 0
    values = np.empty(len(pred))
    for fit, use in ((half, ~half), (~half, half)):
        values[use] = fit_mapping(kind, pred[fit], actual[fit]).apply(pred[use])
    return values


def score(candidate: Candidate, holdout: pd.DataFrame, population: Population) -> dict[str, float]:
    """Holdout quality of a candidate's values, and its expected weekly volume.

    Quality is measured on the values the event carries; ``future_gini`` ranks revenue after the send day
    by that value (training's logged ``future_gini`` ranks it by the predicted future part instead, so the
    two differ slightly). A mapping fitted on actual LTV (``decile_means``) is scored out of sample."""
    pred = holdout["predicted_ltv"].to_numpy(float)
    actual = holdout["actual_ltv"].to_numpy(float)
    future = holdout["actual_future"].to_numpy(float)
    share = population.share(candidate.mode)
    if candidate.mode == "threshold":
        cut = float(np.quantile(pred, 1 - candidate.top_share))
        fires = pred >= cut
        values = fires.astype(float)
        # the true top share by rank (stable), among users who actually paid: zeros are never "top"
        k = int(round(candidate.top_share * len(actual)))
        top_true = np.zeros(len(actual), dtype=bool)
        top_true[np.argsort(-actual, kind="stable")[:k]] = True
        top_true &= actual > 0
        hits = float(np.sum(fires & top_true))
        out = {
            "threshold": cut,
            "fire_share": float(fires.mean()),
            "precision": hits / max(float(fires.sum()), 1.0),
            "recall": hits / max(float(top_true.sum()), 1.0),
            "revenue_share": float(actual[fires].sum() / actual.sum()) if actual.sum() > 0 else 0.0,
            "distinct_values": 1.0,
            "max_over_min": 1.0,
            "min_value": 1.0,
        }
    else:
        sent = fit_mapping(candidate.mapping, pred, actual).apply(pred)  # what the spec will send
        values = (
            _out_of_sample_values(candidate.mapping, pred, actual)
            if candidate.mapping in FITS_ACTUALS
            else sent
        )
        fires = np.ones(len(pred), dtype=bool)
        out = {
            "fire_share": 1.0,
            "distinct_values": float(len(np.unique(sent))),
            "max_over_min": float(sent.max() / sent.min()),
            "min_value": float(sent.min()),
            "pearson": float(np.corrcoef(values, actual)[0, 1]) if values.std() > 0 else 0.0,
            "decile_mape": metrics.decile_mape(actual, values),
            "total_bias": metrics.total_bias(actual, values),
        }
    out |= {
        "gini": metrics.normalized_gini(actual, values),
        "future_gini": metrics.normalized_gini(future, values),
        "spearman": metrics.spearman(actual, values),
        "top10_share": metrics.top_share(actual, values, fraction=0.10),
        "weekly_volume": population.weekly_signups * share * float(fires.mean()),
        "weakest_week_volume": population.weakest_week(candidate.mode) * float(fires.mean()),
    }
    return out
