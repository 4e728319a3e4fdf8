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


def _values(predictions, names: list[str]) -> dict[str, np.ndarray | None]:
    """``None``, one array for every name, or a mapping name -> array (missing names -> ``None``)."""
    if predictions is None:
        return dict.fromkeys(names)
    if isinstance(predictions, Mapping):
        return {name: predictions.get(name) for name in names}
    return dict.fromkeys(names, np.asarray(predictions, dtype=np.float64))


def decile_calibration_panel(
    y_true,
    predictions: Mapping[str, np.ndarray],
    baselines: Mapping[str, np.ndarray] | np.ndarray | None = None,
    *,
    unit: str = "USD",
    title: str = "",
) -> Figure:
    """One panel per model version: mean predicted vs mean actual LTV per predicted-rank decile.

    Bars: the version's deciles (actual grey, predicted coloured). Line: the baseline ``k · early revenue``
    (per version, or one array for all) over its own deciles, predicted solid, actual dotted. Each panel's
    title carries the decile MAPE (mean |predicted − actual| / actual over deciles) of model and baseline.
    """
    from pltv.metrics import decile_mape

    names = list(predictions)
    base = _values(baselines, names)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 0.6, 4.2), sharey=True, squeeze=False)
    x = np.arange(1, 11)
    for ax, name in zip(axes[0], names, strict=True):
        table = decile_table(y_true, predictions[name])
        ax.bar(x - 0.2, table["mean_actual"], 0.4, color="0.7", label="actual")
        ax.bar(x + 0.2, table["mean_predicted"], 0.4, color="C0", label="model predicted")
        subtitle = f"{name}\ndecile MAPE: model {decile_mape(y_true, predictions[name]):.2f}"
        if base[name] is not None:
            btable = decile_table(y_true, base[name])
            ax.plot(x, btable["mean_predicted"], color="C1", marker="s", ms=3, label="baseline predicted")
            ax.plot(
                x,
                btable["mean_actual"],
                color="C1",
                ls=":",
                marker="o",
                ms=3,
                label="actual (baseline deciles)",
            )
            subtitle += f", baseline {decile_mape(y_true, base[name]):.2f}"
        ax.set_title(subtitle, fontsize=9)
        ax.set_xticks(x)
        ax.set_xlabel("decile of predicted LTV (10 = highest)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"mean LTV per user ({unit}, symlog)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "decile calibration by model version", fontsize=11)
    fig.tight_layout()
    return fig


def reliability_curve(
    y_true, predictions: Mapping[str, np.ndarray], *, bins: int = 20, unit: str = "USD", title: str = ""
) -> Figure:
    """Mean actual vs mean predicted LTV in ``bins`` equal-size bins of predicted rank, on symlog axes.

    Points on the diagonal are calibrated; above it the predictor under-predicts, below it over-predicts.
    Every bin is drawn, including those predicted (or realised) at 0 — a baseline that predicts 0 for most
    users shows them on the left edge instead of hiding them (the axes are linear below 1 {unit}).
    """
    fig, ax = plt.subplots(figsize=(5.5, 5))
    hi = 0.0
    for name, pred in predictions.items():
        table = decile_table(y_true, pred, bins=bins)
        at_zero = int(table.loc[table["mean_predicted"] <= 0, "users"].sum())
        label = f"{name} ({at_zero:,} users predicted 0)" if at_zero else name
        ax.plot(table["mean_predicted"], table["mean_actual"], marker="o", ms=4, label=label)
        hi = max(hi, float(table[["mean_predicted", "mean_actual"]].to_numpy().max()))
    if hi > 0:
        ax.plot([0, hi], [0, hi], color="black", lw=0.8, ls="--", label="calibrated (y = x)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel(f"mean predicted LTV per bin ({unit}, log above 1)")
    ax.set_ylabel(f"mean actual LTV per bin ({unit}, log above 1)")
    ax.set_title(title or f"reliability curve ({bins} bins of predicted rank)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def bias_over_cohorts(
    table: pd.DataFrame,
    *,
    by: str = "label",
    min_users: int = 50,
    since=None,
    title: str = "",
) -> Figure:
    """Total bias (Σpredicted / Σactual − 1) per weekly signup cohort, one line per ``by`` value.

    ``table``: columns ``signup_week``, ``total_bias``, ``users``, ``by`` and optionally ``out_of_time``
    (weeks the predictor was not trained on: filled markers; in-sample weeks: hollow). Weeks with fewer
    than ``min_users`` users are dropped; ``since`` shades the evaluation cohort from that date on.
    """
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(9, 4))
    data = table[table["users"] >= min_users]
    for i, (name, part) in enumerate(data.groupby(by, sort=False)):
        part = part.sort_values("signup_week")
        color = f"C{i % 10}"
        ax.plot(part["signup_week"], part["total_bias"], color=color, lw=1.2, label=str(name))
        if "out_of_time" in part:
            oot = part["out_of_time"].astype(bool)
            ax.scatter(part.loc[oot, "signup_week"], part.loc[oot, "total_bias"], color=color, s=16, zorder=3)
            ax.scatter(
                part.loc[~oot, "signup_week"], part.loc[~oot, "total_bias"],
                facecolors="none", edgecolors=color, s=16, zorder=3,
            )  # fmt: skip
    ax.axhline(0.0, color="black", lw=0.8)
    if since is not None:
        ax.axvspan(pd.Timestamp(since), data["signup_week"].max() + pd.Timedelta(days=7), color="0.9",
                   zorder=0, label="evaluation cohort")  # fmt: skip
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("signup week (cohort start, Monday)")
    ax.set_ylabel("total bias  Σpredicted / Σactual − 1")
    note = " (hollow = weeks in the version's training data)" if "out_of_time" in data else ""
    ax.set_title(title or f"calibration drift: total bias per weekly signup cohort{note}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
