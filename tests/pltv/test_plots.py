"""Figures: one colour per version everywhere, identical versions say so, the baseline always grey."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pltv import plots


def _legend(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_a_version_keeps_its_colour_and_the_baseline_is_grey():
    """series_colors gives versions distinct colours in order and every baseline the same grey."""
    colors = plots.series_colors(["v3 (champion)", "v2", "baseline", "baseline (k of v2)"])
    assert colors["v3 (champion)"] != colors["v2"]
    assert colors["baseline"] == colors["baseline (k of v2)"] == plots.BASELINE_COLOR


def test_identical_versions_are_drawn_once_under_a_joint_label():
    """Two versions with equal predictions become one series `v3 = v1 (identical)` in every figure."""
    rng = np.random.default_rng(0)
    y = np.where(rng.random(500) < 0.3, rng.lognormal(3, 1, 500), 0.0)
    a = y * rng.lognormal(0, 0.5, 500) + 1
    series = {"v3 (champion)": a, "v2": a * 1.1 + 2, "v1": a.copy(), "baseline": y * 0.5}
    colors = plots.series_colors(series)
    figures = [
        plots.decile_calibration(y, series, colors=colors),
        plots.reliability_curve(y, series, colors=colors),
        plots.gain_curves(y, series, future=(y, series), colors=colors),
    ]
    for fig in figures:
        labels = " | ".join(_legend(fig))
        assert "v3 (champion) = v1 (identical)" in labels
        assert "v1:" not in labels and "| v1 " not in labels
        plt.close(fig)
    week = pd.date_range("2025-01-06", periods=8, freq="7D")
    table = pd.concat(
        [pd.DataFrame({"signup_week": week, "total_bias": b, "users": 100, "predicted": 100 * (1 + b),
                       "actual": 100.0, "series": name})
         for name, b in (("v3 (champion)", np.linspace(-0.1, 0.1, 8)), ("v1", np.linspace(-0.1, 0.1, 8)),
                         ("baseline", np.zeros(8)))]
    )  # fmt: skip
    fig = plots.bias_over_cohorts(table, by="series", colors=colors, window=3)
    assert any("v3 (champion) = v1 (identical)" in label for label in _legend(fig))
    plt.close(fig)


def test_quality_by_send_day_marks_hollow_only_days_without_an_eligible_candidate():
    """A day with one eligible candidate is filled at that candidate's quality, not at the best ineligible."""
    table = pd.DataFrame(
        {"mode": ["threshold"] * 4, "send_day": [1, 1, 3, 3], "future_gini": [0.6, 0.4, 0.7, 0.5],
         "eligible": [False, True, False, False], "candidate": ["a", "b", "c", "d"]}
    )  # fmt: skip
    fig = plots.quality_by_send_day(table)
    ax = fig.axes[0]
    filled, hollow = ax.collections[0].get_offsets(), ax.collections[1].get_offsets()
    assert np.allclose(filled[:, 1], [0.4]) and np.allclose(hollow[:, 1], [0.7])
    plt.close(fig)
