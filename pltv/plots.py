"""Evaluation pictures (matplotlib, Agg backend): plain arrays / DataFrames in, a ``Figure`` out.

Used for the MLflow artifacts of every training run and reused by the notebooks; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pltv.metrics import decile_table, gain_curve  # noqa: E402


def decile_calibration(y_true, predictions: Mapping[str, np.ndarray], *, title: str = "") -> Figure:
    """Mean predicted vs mean actual value per predicted-rank decile, one bar group per predictor."""
    fig, ax = plt.subplots(figsize=(7, 4))
    names = list(predictions)
    width = 0.8 / (len(names) + 1)
    x = np.arange(1, 11)
    actual = None
    for i, name in enumerate(names):
        table = decile_table(y_true, predictions[name])
        ax.bar(x + (i - len(names) / 2) * width, table["mean_predicted"], width, label=f"{name} predicted")
        if actual is None:
            actual = table["mean_actual"]
        ax.plot(x, table["mean_actual"], marker="o", lw=1, label=f"actual (deciles of {name})")
    ax.set_xticks(x)
    ax.set_xlabel("decile of predicted value (10 = highest)")
    ax.set_ylabel("mean value per user")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(title or "decile calibration")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def gain_curves(y_true, predictions: Mapping[str, np.ndarray], *, title: str = "") -> Figure:
    """Cumulative share of value vs share of users ranked by each prediction, with the perfect ordering."""
    fig, ax = plt.subplots(figsize=(5, 5))
    x, y = gain_curve(y_true, y_true)
    ax.plot(x, y, color="black", lw=1, ls="--", label="perfect")
    for name, pred in predictions.items():
        x, y = gain_curve(y_true, pred)
        ax.plot(x, y, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="random")
    ax.set_xlabel("share of users (highest predicted first)")
    ax.set_ylabel("share of actual value")
    ax.set_title(title or "gain curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(importance: pd.Series, *, top: int = 20, title: str = "") -> Figure:
    """Horizontal bars of the largest ``top`` importances (a Series indexed by feature name)."""
    data = importance.sort_values(ascending=False).head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.3 * len(data))))
    ax.barh(data.index.astype(str), data.to_numpy())
    ax.set_xlabel("importance (gain)")
    ax.set_title(title or "feature importance")
    fig.tight_layout()
    return fig


def calibration_by_version(tables: Mapping[str, pd.DataFrame], *, title: str = "") -> Figure:
    """Decile tables of several model versions: predicted / actual per decile (1 = calibrated)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, table in tables.items():
        ax.plot(table["decile"], table["mean_predicted"] / table["mean_actual"], marker="o", label=name)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xlabel("decile of predicted value")
    ax.set_ylabel("mean predicted / mean actual")
    ax.set_title(title or "calibration by model version")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
