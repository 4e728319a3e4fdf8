"""Every figure of the toolkit (matplotlib, Agg backend): plain arrays / DataFrames in, a ``Figure`` out.

One home for the training run's MLflow artifacts, the notebooks and the ``pltv report`` page (every
notebook figure is drawn here); nothing here reads files. :mod:`pltv.plots.evaluation` holds the model's
evaluation figures and the series conventions (one colour per model version, baselines dark grey and
dashed, identical series drawn once as ``v2 = v1``); :mod:`pltv.plots.report` the report page's charts and
:func:`to_svg`. Callers use the names below (``from pltv import plots; plots.gain_curves(...)``).
"""

import matplotlib

matplotlib.use("Agg")

from pltv.plots.evaluation import (  # noqa: E402
    BASELINE_COLOR,
    bias_over_cohorts,
    decile_calibration,
    feature_importance,
    gain_curves,
    identical_groups,
    is_baseline,
    merge_identical,
    quality_by_send_day,
    reliability_curve,
    series_colors,
    threshold_volume,
    value_mappings,
)
from pltv.plots.report import (  # noqa: E402
    bias_by_send_week,
    key_coverage,
    lift_intervals,
    outcomes_per_day,
    psi_trend,
    sent_vs_realized_deciles,
    to_svg,
    value_bins,
    weekly_volume,
)

__all__ = [
    "BASELINE_COLOR",
    "bias_by_send_week",
    "bias_over_cohorts",
    "decile_calibration",
    "feature_importance",
    "gain_curves",
    "identical_groups",
    "is_baseline",
    "key_coverage",
    "lift_intervals",
    "merge_identical",
    "outcomes_per_day",
    "psi_trend",
    "quality_by_send_day",
    "reliability_curve",
    "sent_vs_realized_deciles",
    "series_colors",
    "threshold_volume",
    "to_svg",
    "value_bins",
    "value_mappings",
    "weekly_volume",
]
