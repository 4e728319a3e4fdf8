"""The ``pltv report`` page's charts (signal health, the readouts; the notebooks call the same functions)
and :func:`to_svg`, which inlines a figure in the page.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def to_svg(fig: Figure, *, prefix: str = "") -> str:
    """The figure as one inline ``<svg>`` element (text drawn as paths: no font is fetched), then closed.

    ``prefix`` is put before every ``id`` in the SVG (and the references to it), so several charts can
    share one HTML page without their clip paths and glyph definitions clashing.
    """
    import io
    import re

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "pltv"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    if prefix:
        text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', text)
        text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', text)
        text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", text)
    return text


def _date_axis(ax, dates) -> None:
    ax.set_xticks(list(dates))
    ax.set_xticklabels([f"{pd.Timestamp(d):%b %d}" for d in dates], rotation=0, fontsize=8)


def outcomes_per_day(counts: pd.DataFrame, *, title: str = "") -> Figure:
    """Stacked bars of events per send date: one column per outcome (``sent``, ``skipped: <reason>``…).

    ``counts``: indexed by send date, one column per outcome, in stacking order (bottom first).
    """
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    palette = {"sent": "#2e7d32", "failed": "#c62828", "unconfirmed": "#ef6c00", "expired": "#6a1b9a",
               "pending": "#f9a825"}  # fmt: skip
    greys = iter(plt.cm.Blues(np.linspace(0.35, 0.85, max(1, len(counts.columns)))))
    for column in counts.columns:
        values = counts[column].to_numpy(dtype=float)
        color = palette.get(column.split(":")[0]) or next(greys)
        ax.bar(x, values, 0.7, bottom=bottom, label=column, color=color)
        bottom += values
    ax.set_xticks(x)
    ax.set_xticklabels([f"{pd.Timestamp(d):%b %d}" for d in counts.index], fontsize=8)
    ax.set_ylabel("events")
    ax.set_xlabel("send date (run date)")
    ax.set_title(title or "events per send date by outcome", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def weekly_volume(volume: pd.Series, thresholds: Mapping[str, float], *, title: str = "") -> Figure:
    """Events sent in the trailing 7 days at each send date, against named weekly thresholds (lines)."""
    fig, ax = plt.subplots(figsize=(8, 3))
    x = pd.to_datetime(volume.index)
    ax.plot(x, volume.to_numpy(dtype=float), marker="o", color="C0", label="sent, trailing 7 days")
    styles = iter([("C3", "--"), ("C1", ":"), ("0.3", "-.")])
    for label, value in thresholds.items():
        color, ls = next(styles, ("0.5", "--"))
        ax.axhline(value, color=color, ls=ls, lw=1, label=f"{label} ({value:,.0f})")
    ax.set_ylim(bottom=0)
    _date_axis(ax, x)
    ax.set_ylabel("events per 7 days")
    ax.set_title(title or "weekly volume against Meta's thresholds and the design", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def key_coverage(coverage: pd.DataFrame, *, title: str = "") -> Figure:
    """Share of sent events carrying each match key (rows) per send date (columns), as a labelled heatmap."""
    data = coverage.T
    fig, ax = plt.subplots(figsize=(min(3 + 0.9 * data.shape[1], 11), 0.9 + 0.28 * data.shape[0]))
    ax.pcolormesh(
        data.to_numpy(dtype=float), cmap="Greens", vmin=0, vmax=1, edgecolors="white", linewidth=0.5
    )
    ax.invert_yaxis()  # vector cells (an image would be embedded as a raster)
    for (i, j), value in np.ndenumerate(data.to_numpy(dtype=float)):
        ax.text(
            j + 0.5,
            i + 0.5,
            f"{value:.0%}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value > 0.6 else "black",
        )
    ax.set_yticks(np.arange(data.shape[0]) + 0.5)
    ax.set_yticklabels(data.index, fontsize=8)
    ax.set_xticks(np.arange(data.shape[1]) + 0.5)
    ax.set_xticklabels([f"{pd.Timestamp(d):%b %d}" for d in data.columns], fontsize=8)
    ax.set_xlabel("send date")
    ax.set_title(title or "match-key coverage: share of sent events carrying each key", fontsize=10)
    fig.tight_layout()
    return fig


def psi_trend(psi: pd.Series, *, warn: float = 0.2, title: str = "") -> Figure:
    """PSI of the sent values against the design's holdout per send date (NaN = too few events)."""
    fig, ax = plt.subplots(figsize=(8, 2.8))
    x = pd.to_datetime(psi.index)
    y = psi.to_numpy(dtype=float)
    ax.axhspan(0, 0.1, color="#e8f5e9", zorder=0, label="stable (< 0.1)")
    ax.axhspan(0.1, warn, color="#fff8e1", zorder=0, label=f"some shift (0.1-{warn:g})")
    ax.axhline(warn, color="C3", ls="--", lw=1, label=f"worth a look (> {warn:g})")
    ax.plot(x, y, marker="o", color="C0", label="PSI, trailing 7 days")
    missing = np.isnan(y)
    if missing.any():
        ax.scatter(x[missing], np.zeros(missing.sum()), marker="x", color="0.5", label="too few events")
    top = np.nanmax(y) if (~missing).any() else 0.0
    ax.set_ylim(0, max(warn * 1.5, top * 1.2))
    _date_axis(ax, x)
    ax.set_ylabel("PSI")
    ax.set_title(title or "value drift: PSI of sent values vs the design's holdout", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def value_bins(edges, reference_shares, values, *, unit: str = "USD", title: str = "") -> Figure:
    """Share of sent ``values`` per bin of the holdout's value distribution, beside the holdout's shares."""
    edges = np.asarray(edges, dtype=float)
    ref = np.asarray(reference_shares, dtype=float)
    v = np.asarray(values, dtype=float)
    counts = (
        np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(ref))
        if v.size
        else np.zeros(len(ref))
    )
    shares = counts / v.size if v.size else counts
    labels = [f"< {edges[0]:,.0f}"] + [
        f"{a:,.0f}-{b:,.0f}" for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    labels += [f">= {edges[-1]:,.0f}"] if len(edges) else []
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(len(ref))
    ax.bar(x - 0.2, ref, 0.4, color="0.7", label="design's holdout")
    ax.bar(x + 0.2, shares, 0.4, color="C0", label=f"sent ({v.size:,} events)")
    ax.set_xticks(x)
    ax.set_xticklabels(labels[: len(ref)], fontsize=7, rotation=30, ha="right")
    ax.set_xlabel(f"value bin ({unit}; the holdout's deciles)")
    ax.set_ylabel("share of events")
    ax.set_title(title or "sent values against the design's holdout", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def bias_by_send_week(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Σ sent / Σ realized − 1 per send week with its interval, one series per ``view`` (e.g. matured,
    partial maturity at 30 days). ``table``: ``view``, ``week``, ``bias``, ``ci_low``, ``ci_high``, ``users``."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(8, 3.2))
    weeks = sorted(table["week"].unique())
    position = {w: i for i, w in enumerate(weeks)}
    views = list(dict.fromkeys(table["view"]))
    for i, view in enumerate(views):
        part = table[table["view"] == view]
        x = np.array([position[w] for w in part["week"]]) + (i - (len(views) - 1) / 2) * 0.15
        y = part["bias"].to_numpy(dtype=float)
        err = np.vstack([y - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - y])
        ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, color=f"C{i}", label=view)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(weeks)))
    ax.set_xticklabels([str(w) for w in weeks], fontsize=8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("send week (Monday)")
    ax.set_ylabel("bias  Σ sent / Σ realized − 1")
    ax.set_title(title or "sent vs realized: bias per send week, 95 % interval", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def sent_vs_realized_deciles(deciles: pd.DataFrame, *, unit: str = "USD", title: str = "") -> Figure:
    """Mean sent value and mean realized revenue per decile of sent value (a :func:`pltv.metrics.decile_table`)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = deciles["decile"].to_numpy()
    ax.bar(x - 0.2, deciles["mean_predicted"], 0.4, color="C0", label="mean sent value")
    ax.bar(x + 0.2, deciles["mean_actual"], 0.4, color="0.6", label="mean realized revenue")
    ax.set_xticks(x)
    ax.set_xlabel("decile of sent value (10 = highest)")
    ax.set_ylabel(f"per user ({unit}, symlog)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_title(title or "sent vs realized by decile of sent value", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lift_intervals(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Lift estimates with their intervals (a forest plot): ``table`` has ``label``, ``lift``, ``ci_low``,
    ``ci_high``; the zero line is "no difference from business as usual"."""
    from matplotlib.ticker import PercentFormatter

    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.5 * len(table)))
    y = np.arange(len(table))[::-1]
    lift = table["lift"].to_numpy(dtype=float)
    err = np.vstack(
        [lift - table["ci_low"].to_numpy(dtype=float), table["ci_high"].to_numpy(dtype=float) - lift]
    )
    ax.errorbar(lift, y, xerr=err, fmt="o", capsize=4, color="C0")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(table["label"], fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("lift over business as usual (95 % interval)")
    ax.set_title(title or "experiment: pLTV arm vs business as usual", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
