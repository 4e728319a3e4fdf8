"""The model's evaluation figures: decile calibration, gains, importance, reliability, bias over cohorts,
quality by send day, threshold volume, value mappings (the MLflow artifacts of every training run, the
calibration and event-design notebooks).

Conventions shared by every figure: :func:`series_colors` gives each series (model version) one colour for
all figures, and every baseline series (a label starting with ``baseline``) the same dark grey, dashed;
series whose predictions are identical are drawn once under a joint label (``v2 = v1``, see
:func:`merge_identical`) instead of hiding each other.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pltv.metrics import decile_table, gain_curve, normalized_gini

BASELINE_COLOR = "0.3"
_PALETTE = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")  # tab10 without its grey


def is_baseline(label: str) -> bool:
    return str(label).startswith("baseline")


def series_colors(labels) -> dict[str, str]:
    """One colour per series label, in order (versions first-come), baselines dark grey: pass the same
    mapping to every figure so a version keeps its colour everywhere."""
    colors, i = {}, 0
    for label in labels:
        if is_baseline(label):
            colors[label] = BASELINE_COLOR
        elif label not in colors:
            colors[label] = _PALETTE[i % len(_PALETTE)]
            i += 1
    return colors


def _color(colors: Mapping[str, str] | None, label: str, fallback: int) -> str:
    if colors and label in colors:
        return colors[label]
    return BASELINE_COLOR if is_baseline(label) else _PALETTE[fallback % len(_PALETTE)]


def _style(label: str) -> dict:
    return {"ls": "--"} if is_baseline(label) else {}


def identical_groups(series: Mapping[str, np.ndarray]) -> list[list[str]]:
    """Labels whose arrays are equal, in groups of two or more (first-come order)."""
    groups: list[list[str]] = []
    for label, values in series.items():
        for group in groups:
            if np.array_equal(np.asarray(series[group[0]]), np.asarray(values)):
                group.append(label)
                break
        else:
            groups.append([label])
    return [g for g in groups if len(g) > 1]


def merge_identical(
    series: Mapping[str, np.ndarray], colors: Mapping[str, str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(series, colors)`` with identical series drawn once, labelled ``"v2 = v1 (identical)"`` in the first's
    colour, so a line that hides another says so."""
    colors = dict(colors or series_colors(series))
    merged: dict[str, np.ndarray] = {}
    joined = {g[0]: g for g in identical_groups(series)}
    skip = {label for g in joined.values() for label in g[1:]}
    for i, (label, values) in enumerate(series.items()):
        if label in skip:
            continue
        name = f"{' = '.join(joined[label])} (identical)" if label in joined else label
        merged[name] = values
        colors[name] = _color(colors, label, i)
    return merged, colors


def _decile_interval(y_true: np.ndarray, pred: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per predicted-rank bin: users, payers, mean actual and its 95 % normal interval (1.96 standard errors).

    Bins are equal-size blocks of the stable rank (ties by position), so each holds ~n/bins users."""
    order = np.argsort(pred, kind="stable")
    rows = []
    for b, index in enumerate(np.array_split(order, bins), start=1):
        a = y_true[index]
        se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0
        rows.append({"decile": b, "users": len(a), "payers": int((a > 0).sum()), "mean_actual": a.mean(),
                     "low": a.mean() - 1.96 * se, "high": a.mean() + 1.96 * se,
                     "mean_predicted": pred[index].mean()})  # fmt: skip
    return pd.DataFrame(rows)


def decile_calibration(
    y_true,
    predictions: Mapping[str, np.ndarray],
    *,
    colors: Mapping[str, str] | None = None,
    unit: str = "USD",
    title: str = "",
) -> Figure:
    """One overlay for every series: mean predicted (line, hollow markers) and mean actual with its 95 %
    interval (filled markers, error bars) per decile of that series' own prediction; below, the payers per
    decile (the counts behind each interval). Calibrated = the line through its own points."""
    y = np.asarray(y_true, dtype=np.float64)
    series, colors = merge_identical(predictions, colors)
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(8, 5.6), sharex=True, gridspec_kw={"height_ratios": [4, 1.3]}
    )
    n = len(series)
    width = 0.8 / max(n, 1)
    for i, (name, pred) in enumerate(series.items()):
        table = _decile_interval(y, np.asarray(pred, dtype=np.float64))
        x = table["decile"].to_numpy() + (i - (n - 1) / 2) * width
        color = _color(colors, name, i)
        ax.plot(x, table["mean_predicted"], color=color, marker="o", mfc="white", ms=5, lw=1.2,
                label=f"{name}: predicted", **_style(name))  # fmt: skip
        ax.errorbar(x, table["mean_actual"],
                    yerr=[table["mean_actual"] - table["low"].clip(lower=0), table["high"] - table["mean_actual"]],
                    fmt="s", ms=4, color=color, capsize=2, lw=0.9, label=f"{name}: actual, 95 % interval")  # fmt: skip
        counts.bar(x, table["payers"], width, color=color, alpha=0.8)
    users = len(y) // 10
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel(f"mean LTV per user ({unit}, symlog)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title or "decile calibration", fontsize=10)
    counts.set_ylabel("payers", fontsize=8)
    counts.set_xlabel(f"decile of each series' own prediction (10 = highest; ~{users:,} users per decile)")
    counts.set_xticks(np.arange(1, 11))
    counts.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def gain_curves(
    y_true,
    predictions: Mapping[str, np.ndarray],
    *,
    future: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
    colors: Mapping[str, str] | None = None,
    title: str = "",
) -> Figure:
    """Cumulative share of value vs share of users ranked by each prediction (legend: normalized Gini).

    ``future=(actual_future, future_predictions)`` adds the future-only panel beside the total one: revenue
    after the send moment ranked by what each predictor expects on top of the revenue already seen — the
    honest measure of skill (the total panel also rewards knowing the early revenue)."""
    panels = [("total LTV", np.asarray(y_true, dtype=np.float64), predictions)]
    if future is not None:
        panels.append(
            ("future-only (after the send day)", np.asarray(future[0], dtype=np.float64), future[1])
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), squeeze=False)
    for ax, (what, y, preds) in zip(axes[0], panels, strict=True):
        series, cols = merge_identical(preds, colors)
        x, g = gain_curve(y, y)
        ax.plot(x, g, color="black", lw=1, ls=":", label="perfect ordering")
        for i, (name, pred) in enumerate(series.items()):
            x, g = gain_curve(y, pred)
            ax.plot(x, g, color=_color(cols, name, i), lw=1.4,
                    label=f"{name} (Gini {normalized_gini(y, pred):.3f})", **_style(name))  # fmt: skip
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="-.", label="random")
        ax.set_xlabel("share of users (highest predicted first)")
        ax.set_ylabel(f"share of actual {what} revenue")
        ax.set_title(what, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title or "gain curves", fontsize=11)
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


def reliability_curve(
    y_true,
    predictions: Mapping[str, np.ndarray],
    *,
    bins: int = 20,
    colors: Mapping[str, str] | None = None,
    unit: str = "USD",
    title: str = "",
) -> Figure:
    """Mean actual vs mean predicted LTV in ``bins`` equal-size bins of predicted rank, on symlog axes.

    Points on the diagonal are calibrated; above it the predictor under-predicts, below it over-predicts.
    Every bin is drawn, including those predicted (or realised) at 0 — a baseline that predicts 0 for most
    users shows them on the left edge instead of hiding them (the axes are linear below 1 {unit}).
    """
    series, colors = merge_identical(predictions, colors)
    fig, ax = plt.subplots(figsize=(5.8, 5.2))
    hi = 0.0
    for i, (name, pred) in enumerate(series.items()):
        table = decile_table(y_true, pred, bins=bins)
        at_zero = int(table.loc[table["mean_predicted"] <= 0, "users"].sum())
        label = f"{name} ({at_zero:,} users predicted 0)" if at_zero else name
        ax.plot(table["mean_predicted"], table["mean_actual"], marker="o", ms=4, color=_color(colors, name, i),
                label=label, **_style(name))  # fmt: skip
        hi = max(hi, float(table[["mean_predicted", "mean_actual"]].to_numpy().max()))
    if hi > 0:
        ax.plot([0, hi], [0, hi], color="black", lw=0.8, ls=":", label="calibrated (y = x)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel(f"mean predicted LTV per bin ({unit}, log above 1)")
    ax.set_ylabel(f"mean actual LTV per bin ({unit}, log above 1)")
    ax.set_title(title or f"reliability curve ({bins} bins of predicted rank)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bias_over_cohorts(
    table: pd.DataFrame,
    *,
    by: str = "label",
    min_users: int = 50,
    since=None,
    window: int = 5,
    colors: Mapping[str, str] | None = None,
    title: str = "",
) -> Figure:
    """Total bias (Σpredicted / Σactual − 1) per weekly signup cohort, one colour per ``by`` value.

    ``table``: columns ``signup_week``, ``total_bias``, ``users``, ``by`` and optionally ``predicted``/
    ``actual`` (sums; the rolling line is then a ratio of sums) and ``out_of_time`` (weeks the predictor was
    not trained on: filled markers; in-sample weeks: hollow). Thin line and markers: single weeks; thick
    line: the ``window``-week rolling bias; band: ± 1.96 × the weeks' rolling standard deviation / √window
    (the week-to-week noise of that mean). Weeks with fewer than ``min_users`` users are dropped; ``since``
    shades the evaluation cohort from that date on.
    """
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    data = table[table["users"] >= min_users]
    groups = [(str(name), part.sort_values("signup_week")) for name, part in data.groupby(by, sort=False)]
    colors = dict(colors or series_colors([name for name, _ in groups]))
    # identical series (same weeks, same bias) are drawn once under a joint label, in the first one's colour
    same = identical_groups({
        name: np.r_[part["signup_week"].to_numpy().astype("int64"), part["total_bias"].fillna(np.inf).to_numpy()]
        for name, part in groups
    })  # fmt: skip
    joined = {g[0]: g for g in same}
    hidden = {name for g in same for name in g[1:]}
    merged = []
    for name, part in groups:
        if name in hidden:
            continue
        label = f"{' = '.join(joined[name])} (identical)" if name in joined else name
        colors[label] = _color(colors, name, len(merged))
        merged.append((label, part))
    for i, (name, part) in enumerate(merged):
        part = part.sort_values("signup_week")
        color = _color(colors, str(name), i)
        weeks, bias = part["signup_week"], part["total_bias"]
        ax.plot(weeks, bias, color=color, lw=0.6, alpha=0.45, **_style(str(name)))
        if "out_of_time" in part:
            oot = part["out_of_time"].astype(bool).to_numpy()
            ax.scatter(weeks[oot], bias[oot], color=color, s=12, zorder=3)
            ax.scatter(weeks[~oot], bias[~oot], facecolors="none", edgecolors=color, s=12, zorder=3)
        if {"predicted", "actual"} <= set(part):
            rolled = (
                part["predicted"].rolling(window, center=True).sum()
                / part["actual"].rolling(window, center=True).sum()
                - 1
            )
        else:
            rolled = bias.rolling(window, center=True).mean()
        half = 1.96 * bias.rolling(window, center=True).std() / np.sqrt(window)
        ax.plot(
            weeks, rolled, color=color, lw=2.2, label=f"{name}: {window}-week rolling", **_style(str(name))
        )
        ax.fill_between(weeks, rolled - half, rolled + half, color=color, alpha=0.12, lw=0)
    ax.axhline(0.0, color="black", lw=0.8)
    if since is not None and len(data):
        ax.axvspan(pd.Timestamp(since), data["signup_week"].max() + pd.Timedelta(days=7), color="0.9",
                   zorder=0, label="evaluation cohort")  # fmt: skip
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("signup week (cohort start, Monday)")
    ax.set_ylabel("total bias  Σpredicted / Σactual − 1")
    note = "; hollow = weeks in the version's training data" if "out_of_time" in data else ""
    ax.set_title(title or f"calibration drift per weekly signup cohort (band: ±95 % of the rolling mean{note})",
                 fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------------
# The event designer's trade-offs (notebooks/event_design.ipynb)


def quality_by_send_day(table: pd.DataFrame, winner: pd.Series | None = None) -> Figure:
    """Future-only Gini per send day and mode, as the designer's table has it: filled = the best *eligible*
    candidate of that mode and day (what ``render_send_days`` calls best eligible); hollow = no candidate
    of that mode and day is eligible (its best, ineligible, quality is shown). The star is the winner."""
    fig, ax = plt.subplots(figsize=(6.6, 4.3))
    drawn: dict[str, np.ndarray] = {}
    styles = {"append_value": ("o", "-"), "custom_value": ("s", "--"), "threshold": ("^", ":")}
    modes = list(table.groupby("mode", sort=True))
    for i, (mode, part) in enumerate(modes):
        rows = []
        for day, group in part.groupby("send_day", sort=True):
            ok = group[group["eligible"]]
            pick = (ok if len(ok) else group).sort_values("future_gini", ascending=False).iloc[0]
            rows.append((day, pick["future_gini"], bool(len(ok))))
        days, gini, eligible = (np.array(v) for v in zip(*rows, strict=True))
        same = [m for m, g in drawn.items() if len(g) == len(gini) and np.allclose(g, gini)]
        drawn[mode] = gini
        label = f"{mode} (same quality as {same[0]})" if same else mode
        x = days + (i - (len(modes) - 1) / 2) * 0.06  # side by side, so equal values do not hide each other
        marker, ls = styles.get(mode, ("o", "-"))
        color = f"C{i}"
        ax.plot(x, gini, color=color, lw=1, ls=ls, label=label)
        ax.scatter(x[eligible], gini[eligible], color=color, marker=marker, zorder=3)
        ax.scatter(
            x[~eligible], gini[~eligible], facecolors="white", edgecolors=color, marker=marker, zorder=3
        )
    if winner is not None:
        ax.scatter([winner["send_day"]], [winner["future_gini"]], marker="*", s=220, color="gold",
                   edgecolors="black", zorder=4, label=f"winner: {winner['candidate']}")  # fmt: skip
    ax.scatter([], [], facecolors="white", edgecolors="black", label="no eligible candidate (best shown)")
    ax.set_xticks(sorted(table["send_day"].unique()))
    ax.set_xlabel("send day (days after signup)")
    ax.set_ylabel("future-only normalized Gini")
    ax.set_title("quality vs send day: best eligible candidate per mode", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def threshold_volume(table: pd.DataFrame, *, learning_per_ad_set: float, dataset_per_week: float,
                     ad_sets: int = 1) -> Figure:  # fmt: skip
    """Expected weekly events (left) and precision (right, dashed) of threshold events per top share."""
    thresholds = table[table["mode"] == "threshold"]
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    right = ax.twinx()
    for i, (day, part) in enumerate(thresholds.groupby("send_day")):
        part = part.sort_values("top_share")
        ax.plot(
            part["top_share"] * 100, part["weekly_volume"], marker="o", color=f"C{i}", label=f"d{day} volume"
        )
        right.plot(part["top_share"] * 100, part["precision"], ls="--", marker="x", color=f"C{i}",
                   label=f"d{day} precision")  # fmt: skip
    ax.axhline(learning_per_ad_set * ad_sets, color="black", ls=":", lw=1,
               label=f"learning: {learning_per_ad_set:.0f} x {ad_sets} ad set(s) / week")  # fmt: skip
    ax.axhline(
        dataset_per_week, color="black", ls="--", lw=1, label=f"dataset: {dataset_per_week:.0f} / week"
    )
    ax.set_xlabel("threshold: predicted top x % of users fire")
    ax.set_ylabel("expected events per week")
    right.set_ylabel("precision (fired users in the actual top x %)")
    right.set_ylim(0, 1)
    ax.set_title("threshold events: weekly volume vs threshold", fontsize=10)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def value_mappings(values: Mapping[str, np.ndarray], actual, *, unit: str = "USD", title: str = "") -> Figure:
    """Per mapping, on the *same* users: the values it sends to the payers against the payers' actual LTV
    (log bins), and what the non-payers would be sent (a box at the top)."""
    actual = np.asarray(actual, dtype=np.float64)
    payers = actual > 0
    top = max(float(actual.max()), *(float(np.max(v)) for v in values.values()), 10.0)
    bins = np.logspace(0, np.log10(top) + 0.1, 40)
    fig, axes = plt.subplots(1, len(values), figsize=(4.4 * len(values), 4.0), sharey=True, squeeze=False)
    for ax, (kind, sent) in zip(axes[0], values.items(), strict=True):
        sent = np.asarray(sent, dtype=np.float64)
        ax.hist(
            np.clip(actual[payers], 1, None),
            bins=bins,
            color="0.75",
            label=f"actual LTV (payers, n={payers.sum():,})",
        )
        ax.hist(
            sent[payers],
            bins=bins,
            histtype="step",
            lw=1.6,
            color="C0",
            label="value sent to the same payers",
        )
        ax.hist(sent[~payers], bins=bins, histtype="step", lw=1.2, ls="--", color="C3",
                label=f"value sent to non-payers (n={(~payers).sum():,})")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{kind}: {len(np.unique(sent))} distinct values, max/min {sent.max() / sent.min():.0f}",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel(f"LTV / value per user ({unit}, log)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("users (log)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title or "value mappings vs actual LTV on the holdout (same users)", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------------
