"""The page's calibration and experiment sections: issue 13's readouts, when this toolkit has them.

Each is read through its library (:mod:`activation.readout`, :mod:`pltv.experiment`); without it, or without
the data it needs (no sent cohort old enough, no arm column configured), the section says so and why.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from activation.errors import ActivationError
from activation.report_html import Charts, Section, escape, html_table
from activation.spec import EventSpec
from pltv.config import ExperimentConfig, SourceConfig


def maturity_reason(rows: pd.DataFrame, spec: EventSpec | None, data_end) -> str | None:
    """Why no sent cohort can be read yet (``None`` when some are far enough along)."""
    if rows.empty or not (rows["state"] == "sent").any():
        return "no sent events in the ledger yet"
    if spec is None or data_end is None:
        return None
    first = pd.Timestamp(rows.loc[rows["state"] == "sent", "send_date"].min())
    signup = first - pd.Timedelta(days=spec.send_day + 8)  # the oldest catch-up users
    matures = signup + pd.Timedelta(days=spec.horizon_days)
    end = (
        pd.Timestamp(data_end).tz_localize(None) if pd.Timestamp(data_end).tzinfo else pd.Timestamp(data_end)
    )
    if matures > end + pd.Timedelta(days=1):
        age = (end - signup).days
        return (
            f"no sent cohort has matured: the first events were sent {first:%Y-%m-%d} for users who signed up "
            f"from about {signup:%Y-%m-%d}; their {spec.horizon_days}-day horizon ends about {matures:%Y-%m-%d}, "
            f"and the source's data ends {end:%Y-%m-%d} (the oldest are {age} days old)"
        )
    return None


def calibration_section(section: Section, rows: pd.DataFrame, spec: EventSpec | None, data_end, *,
                        source: SourceConfig, ledger_path: Path, chart: Charts) -> None:  # fmt: skip
    """Issue 13's sent-vs-realized readout (:mod:`activation.readout`) when this toolkit has it."""
    why = maturity_reason(rows, spec, data_end)
    if importlib.util.find_spec("activation.readout") is None:
        section.unavailable = (
            "no readout available: this version of the toolkit has no sent-vs-realized calibration readout "
            "(`pltv readout calibration`)" + (f"; besides, {why}" if why else "")
        )
        return
    from activation.readout import CalibrationOptions, calibration_readout
    from pltv.errors import PltvError

    horizon = spec.horizon_days if spec is not None else 365
    try:
        readout = calibration_readout(source, ledger_path, CalibrationOptions(horizon_days=horizon))
    except (ActivationError, PltvError) as exc:
        section.unavailable = f"no readout available: {exc}"
        return
    views = [(f"matured ({readout.horizon_days} days)", readout.weeks, readout.overall)]
    views += [(f"partial maturity, day {m} (sent × {p['share']:.2f})", p["weeks"], p["overall"])
              for m, p in readout.partial.items() if p["overall"] is not None]  # fmt: skip
    if all(overall is None for _, _, overall in views):
        section.unavailable = "no readout available: " + (
            why
            or f"none of the {readout.matched:,} matched sent users has had {min(readout.partial, default=horizon)} days yet"
        )
        section.body += [f'<p class="small">{escape(n)}</p>' for n in readout.notes]
        return
    from pltv import plots

    records = []
    for view, weeks, overall in views:
        if overall is None:
            continue
        lo, hi = overall.bias_ci
        if np.isfinite(lo) and (lo > 0 or hi < 0):
            section.flags.append(f"{view}: bias {overall.bias:+.1%} [{lo:+.1%}, {hi:+.1%}] excludes 0 over "
                                 f"{overall.users:,} users: the values Meta receives are too "
                                 f"{'high' if lo > 0 else 'low'}")  # fmt: skip
        for r in [*weeks, overall]:
            records.append({"view": view, "week": r.week, "users": r.users, "Σ sent": r.sum_sent,
                            "Σ realized": r.sum_realized, "bias": r.bias, "ci_low": r.bias_ci[0],
                            "ci_high": r.bias_ci[1], "Gini": r.gini})  # fmt: skip
    table = pd.DataFrame(records)
    weekly = table[table["week"] != "overall"]
    if len(weekly):
        section.body.append(chart(plots.bias_by_send_week(weekly), "Bias of the sent values per send week with its "
                                  "95 % bootstrap interval (users resampled)."))  # fmt: skip
    if readout.deciles:
        section.body.append(chart(plots.sent_vs_realized_deciles(pd.DataFrame(readout.deciles)),
                                  f"Matured users ({readout.users:,}) by decile of the value they were sent."))  # fmt: skip
    pct = lambda v: "n/a" if v is None or v != v else f"{v:+.1%}"  # noqa: E731
    table["95% interval"] = [
        f"[{a:+.1%}, {b:+.1%}]" if a == a else "n/a"
        for a, b in zip(table.pop("ci_low"), table.pop("ci_high"), strict=True)
    ]
    section.body.append(
        "<h3>Sent vs realized, per send week</h3>"
        + html_table(
            table,
            left=("view", "week"),
            formats={"bias": pct, "Σ sent": lambda v: f"{v:,.0f}", "Σ realized": lambda v: f"{v:,.0f}"},
        )  # fmt: skip
        + f'<p class="small">{readout.sent_events:,} sent events, {readout.matched:,} matched to a user of the '
        f"source, {readout.unmatched:,} not matched. {escape(readout.share_source or '')}</p>"
    )
    section.body += [f'<p class="small">{escape(n)}</p>' for n in readout.notes]


def experiment_section(section: Section, arms: ExperimentConfig, user_columns: tuple[str, ...], *,
                       source: SourceConfig, tracking_uri: str, model_name: str, chart: Charts) -> None:  # fmt: skip
    """Issue 13's lift readout (:mod:`pltv.experiment`) when ``[experiment] arm_column`` is configured."""
    if arms.arm_column is None:
        section.unavailable = "no readout available: no experiment arm column is configured ([experiment] arm_column in pltv.toml)"
        return
    if arms.arm_column not in user_columns:
        section.unavailable = f"no readout available: the configured arm column {arms.arm_column!r} is not in the source's users"
        return
    if importlib.util.find_spec("pltv.experiment") is None:
        section.unavailable = "no readout available: this version of the toolkit has no experiment readout"
        return
    from pltv.errors import PltvError
    from pltv.experiment import ExperimentOptions, experiment_readout

    try:
        readout = experiment_readout(
            source,
            ExperimentOptions(arm_column=arms.arm_column, treatment=arms.treatment, control=arms.control,
                              maturity_days=arms.maturity_days),
            tracking_uri=tracking_uri, model_name=model_name,
        )  # fmt: skip
    except (PltvError, ActivationError) as exc:
        section.unavailable = f"no readout available: {exc}"
        return
    from pltv import plots

    lo, hi = readout.lift_ci
    if not readout.mature:
        section.flags.append(f"not mature yet: the {readout.lift:+.1%} lift [{lo:+.1%}, {hi:+.1%}] is too uncertain "
                             "to decide on (what it needs is below)")  # fmt: skip
    elif lo <= 0:
        section.flags.append(f"the lift's interval [{lo:+.1%}, {hi:+.1%}] includes 0: no proven gain yet")
    section.body.append(
        f"<p>Lift in revenue per user by day {readout.maturity_days}: <b>{readout.lift:+.1%}</b> "
        f"[{readout.level:.0%} interval {lo:+.1%}, {hi:+.1%}] — {'mature' if readout.mature else 'NOT mature'}: "
        f"{escape(readout.maturity_note)}.</p>"
    )
    lifts = [{"label": f"revenue per user by day {readout.maturity_days}", "lift": readout.lift,
              "ci_low": lo, "ci_high": hi}]  # fmt: skip
    if readout.projected_lift is not None:
        lifts.append({"label": f"projected {readout.horizon_days}-day LTV", "lift": readout.projected_lift,
                      "ci_low": readout.projected_lift_ci[0], "ci_high": readout.projected_lift_ci[1]})  # fmt: skip
    if readout.lift_per_spend is not None:
        lifts.append({"label": "LTV per unit spend", "lift": readout.lift_per_spend,
                      "ci_low": readout.lift_per_spend_ci[0], "ci_high": readout.lift_per_spend_ci[1]})  # fmt: skip
    section.body.append(chart(plots.lift_intervals(pd.DataFrame(lifts)), "Lift of the pLTV arm over business as "
                              "usual, 95 % bootstrap intervals (users resampled within arms)."))  # fmt: skip
    frame = pd.DataFrame(
        [{"arm": a.role, "users": a.users, "matured": a.matured_users, "payers": a.payers,
          f"revenue/user by day {readout.maturity_days}": a.revenue_per_user, "projected LTV": a.projected_ltv,
          "CAC": a.cac, "LTV/CAC": a.ltv_per_cac} for a in readout.arms.values()]
    )  # fmt: skip
    section.body.append(html_table(frame, left=("arm",)))
    for note in [f"projection: {readout.projection}" if readout.projection else None, *readout.notes]:
        if note:
            section.body.append(f'<p class="small">{escape(note)}</p>')
