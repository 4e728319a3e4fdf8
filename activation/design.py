"""The event designer: choose the event Meta optimizes on from the model's holdout and Meta's rules.

Pure core: :func:`candidates` enumerates send day × mode × value mapping × threshold,
:func:`~activation.candidate_scores.score` measures each on the out-of-time holdout, :func:`rules_broken` lists the rules it breaks, and
:func:`choose` picks the winner. :func:`design` runs them and returns a :class:`DesignResult` holding the
ranked table, the reasons and the :class:`~activation.spec.EventSpec`. The I/O (registry, source, MLflow
logging) lives in :mod:`activation.design_io`.

The choice rule (documented in ``docs/architecture.md`` and configurable through :class:`DesignOptions`):
among candidates that break no rule — including the campaign's attribution setting (``attribution_days``:
1-day or 7-day click; a custom event whose ``event_time`` falls after the click window cannot be
attributed) — take the most accurate one: the best future-only Gini, the honest measure of what the model
knows beyond the revenue already seen at the send day. Meta's pLTV guide: "sending pLTV values faster does
not currently improve performance": send the most accurate value you can within 7 days. Exact ties go to
the lower decile calibration error, then the mode order ``append_value`` (Meta's official delayed pLTV) >
``custom_value`` > ``threshold``, then the earlier send day. An explicit ``tolerance`` (opt-in) instead
treats candidates within it of the best as equally good and takes the earliest send day among them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from activation.candidate_scores import score
from activation.meta import (
    APPEND_VALUE,
    APPEND_WINDOW_DAYS,
    ATTRIBUTION_SETTINGS,
    ATTRIBUTION_WINDOW_DAYS,
    is_currency,
    is_custom_event_name,
)
from activation.report import reference_bins
from activation.settings import MODES, EventSettings
from activation.spec import EventSpec
from activation.valuemap import KINDS, fit_mapping

THRESHOLD_SHARES = (0.05, 0.10, 0.20, 0.30, 0.50)
#: On equal quality: Meta's official delayed pLTV first, then value optimization, then count optimization.
MODE_PREFERENCE = ("append_value", "custom_value", "threshold")
# Meta's numbers (shared/capi/PLTV_GUIDE.md)
MIN_DISTINCT_VALUES = 5
MIN_MAX_OVER_MIN = 3.0
MIN_DATASET_EVENTS_PER_WEEK = 100
DATASET_WEEKS = 4  # ... in each of the last 4 weeks
DATASET_RULE = f"dataset>={MIN_DATASET_EVENTS_PER_WEEK}/week(each of {DATASET_WEEKS})"
LEARNING_EVENTS_PER_AD_SET_WEEK = 50


@dataclass(frozen=True, kw_only=True)
class DesignOptions:
    mode: str = "auto"  # auto | append_value | custom_value | threshold
    send_days: tuple[int, ...] | None = None  # None: every day with a registered champion
    ad_sets: int = 1
    currency: str = "USD"
    attribution_days: int = ATTRIBUTION_WINDOW_DAYS  # the campaign's click window: 1 or 7 days
    tolerance: float | None = None  # opt-in: future-Gini gap treated as equal quality (earliest day wins)
    cadence_days: float = 1.0  # the daily job sends a send moment up to this long after it
    safety_days: float = 0.25  # retries, late runs
    thresholds: tuple[float, ...] = THRESHOLD_SHARES
    mappings: tuple[str, ...] = KINDS
    event_name_template: str = "pLTV_D{send_day}"
    threshold_name_template: str = "pLTV_top{pct}_D{send_day}"

    def __post_init__(self) -> None:
        if self.attribution_days not in ATTRIBUTION_SETTINGS:
            raise ValueError(
                f"attribution window must be 1 (1-day click) or 7 (7-day click) days, got {self.attribution_days}"
            )
        if self.tolerance is not None and not (0 <= self.tolerance < 1):
            raise ValueError(f"tolerance must be a future-only Gini gap in [0, 1), got {self.tolerance}")


@dataclass(frozen=True, kw_only=True)
class Population:
    """What the source says about volume and eligibility (recent cohorts).

    A share is the part of the recent signups whose event the daily job would build at their send moment
    (the builder's pre-send skips, a match key, Meta's payload checks); the ``*_by_week`` counts are the
    same events per whole week, oldest first (empty: unknown, the average stands for every week).
    """

    weekly_signups: float  # average over the recent weeks
    deliverable_share: float  # custom_value / threshold events the builder lets through
    append_share: float  # AppendValue events the builder lets through (also needs the conversion's ids)
    deliverable_by_week: tuple[float, ...] = ()
    append_by_week: tuple[float, ...] = ()
    # mode -> {pre-send skip reason: users}, each user under the first reason the builder checks
    skip_reasons: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    users: int = 0  # recent signups the shares are taken over

    def share(self, mode: str) -> float:
        return self.append_share if mode == "append_value" else self.deliverable_share

    def weakest_week(self, mode: str) -> float:
        """The fewest events of ``mode`` the daily job could send in one of the recent whole weeks."""
        by_week = self.append_by_week if mode == "append_value" else self.deliverable_by_week
        return float(min(by_week)) if by_week else self.weekly_signups * self.share(mode)


@dataclass(frozen=True)
class Candidate:
    send_day: int
    mode: str
    mapping: str | None  # None for threshold events
    top_share: float | None = None

    @property
    def label(self) -> str:
        what = f"top{round(self.top_share * 100)}%" if self.top_share else self.mapping
        return f"d{self.send_day} {self.mode} {what}"


@dataclass
class DesignResult:
    table: pd.DataFrame  # one row per candidate, ranked; `broken` lists rule names
    winner: pd.Series | None
    reason: str
    spec: EventSpec | None = None
    notes: list[str] = field(default_factory=list)


def event_name_for(candidate: Candidate, options: DesignOptions) -> str:
    if candidate.mode == "append_value":
        return APPEND_VALUE
    if candidate.mode == "threshold":
        return options.threshold_name_template.format(
            send_day=candidate.send_day, pct=round((candidate.top_share or 0) * 100)
        )
    return options.event_name_template.format(send_day=candidate.send_day)


def candidates(send_days: Sequence[int], options: DesignOptions) -> list[Candidate]:
    modes = MODES if options.mode == "auto" else (options.mode,)
    out: list[Candidate] = []
    for d in sorted(send_days):
        for mode in modes:
            if mode == "threshold":
                out += [Candidate(d, mode, None, share) for share in options.thresholds]
            else:
                out += [Candidate(d, mode, kind) for kind in options.mappings]
    return out


def rules_broken(
    candidate: Candidate, scores: Mapping[str, float], population: Population, options: DesignOptions
) -> list[str]:
    """Names of the rules a candidate breaks (empty: eligible)."""
    broken: list[str] = []
    valued = candidate.mode in ("append_value", "custom_value")
    if valued:
        if scores["min_value"] <= 0:
            broken.append("positive_values")
        if scores["distinct_values"] < MIN_DISTINCT_VALUES:
            broken.append("distinct_values>=5")
        if scores["max_over_min"] < MIN_MAX_OVER_MIN:
            broken.append("max>=3xmin")
        # Meta: >= 100 conversions in *each* of the last 4 weeks, not on average (every user fires here)
        if population.weakest_week(candidate.mode) < MIN_DATASET_EVENTS_PER_WEEK:
            broken.append(DATASET_RULE)
    if scores["weekly_volume"] < LEARNING_EVENTS_PER_AD_SET_WEEK * options.ad_sets:
        broken.append(f"learning>={LEARNING_EVENTS_PER_AD_SET_WEEK}x{options.ad_sets}/week")
    delay = candidate.send_day + options.cadence_days + options.safety_days
    if candidate.mode == "append_value":
        if population.append_share <= 0:
            broken.append("conversion_ids_present")
        # AppendValue's event_time (signup_at + send_day days) must be later than the conversion's
        # event_time, the signup itself: at send day 0 they are equal
        if candidate.send_day < 1:
            broken.append("append_after_conversion")
        if delay > APPEND_WINDOW_DAYS:
            broken.append("append_within_7d")
    elif candidate.send_day >= options.attribution_days:
        # event_time = signup + send day, and the click came before the signup: a send day equal to the
        # click window is already outside it, so the event cannot be attributed to the campaign
        broken.append(attribution_rule(options))
    name = event_name_for(candidate, options)
    if candidate.mode != "append_value" and not is_custom_event_name(name):
        broken.append("custom_event_name")
    if not is_currency(options.currency):
        broken.append("currency_iso4217")
    return broken


def attribution_rule(options: DesignOptions) -> str:
    """The rule name for the campaign's click window (``attribution_window_7d``)."""
    return f"attribution_window_{options.attribution_days}d"


def _rank(table: pd.DataFrame, tolerance: float | None) -> pd.DataFrame:
    ok = table["broken"].str.len() == 0
    best = table.loc[ok, "future_gini"].max() if ok.any() else np.nan
    within = ok & (table["future_gini"] >= best - (tolerance or 0.0))
    table = table.assign(
        eligible=ok,
        within_tolerance=within,
        # with an opted-in tolerance the earliest day wins among the equally good; otherwise accuracy first
        _day=np.where(within, table["send_day"], 0) if tolerance is not None else 0,
        _mode=table["mode"].map({m: i for i, m in enumerate(MODE_PREFERENCE)}),
        _mape=table["decile_mape"].fillna(np.inf),
    )
    table = table.sort_values(
        ["eligible", "within_tolerance", "_day", "future_gini", "_mape", "_mode", "send_day"],
        ascending=[False, False, True, False, True, True, True],
        kind="stable",
    ).drop(columns=["_day", "_mode", "_mape"])
    return table.reset_index(drop=True)


def max_ad_sets(weekly_volume: float) -> int:
    """How many ad sets one event's weekly volume lets leave the learning phase (~50 events each a week)."""
    return int(math.floor(weekly_volume / LEARNING_EVENTS_PER_AD_SET_WEEK + 1e-9))


def _learning_rule(options: DesignOptions) -> str:
    return f"learning>={LEARNING_EVENTS_PER_AD_SET_WEEK}x{options.ad_sets}/week"


def choose(table: pd.DataFrame, options: DesignOptions) -> tuple[pd.DataFrame, pd.Series | None, str]:
    ranked = _rank(table, options.tolerance)
    if not ranked["eligible"].any():
        common = ranked["broken"].explode().value_counts().head(3)
        reason = "no candidate satisfies every rule; most often broken: " + ", ".join(
            f"{rule} ({n})" for rule, n in common.items()
        )
        learning = _learning_rule(options)
        only_volume = ranked[ranked["broken"].map(lambda rules: list(rules) == [learning])]
        if len(only_volume):
            volume = float(only_volume["weekly_volume"].max())
            n = max_ad_sets(volume)
            reason += (
                f"; the volume supports at most {n} ad set(s) (~{volume:,.0f} events/week at "
                f"{LEARNING_EVENTS_PER_AD_SET_WEEK} per ad set): "
                + (f"rerun with --ad-sets {n}" if n else "no ad set leaves the learning phase")
            )
        return ranked, None, reason
    winner = ranked.iloc[0]
    eligible = ranked[ranked["eligible"]]
    best = eligible["future_gini"].max()
    if options.tolerance is None:
        reason = (
            f"{winner['candidate']} wins: the most accurate eligible candidate (future-only Gini "
            f"{winner['future_gini']:.3f}); Meta's pLTV guide: sending sooner does not improve performance, "
            "send the most accurate value you can within 7 days"
        )
    else:
        reason = (
            f"{winner['candidate']} wins: future-only Gini {winner['future_gini']:.3f} is within the "
            f"opted-in tolerance {options.tolerance:.3f} of the best eligible ({best:.3f}) and it is the "
            "earliest such send day"
        )
    if winner["mode"] != "append_value":
        reason += (
            f"; its event_time (signup + {int(winner['send_day'])} days) fits the {options.attribution_days}-day "
            "click attribution window"
        )
    earlier = eligible[eligible["send_day"] < winner["send_day"]]
    if len(earlier):
        e = earlier.sort_values("future_gini", ascending=False).iloc[0]
        reason += f"; the best earlier send day ({e['candidate']}) reaches {e['future_gini']:.3f}"
    later = ranked[ranked["send_day"] > winner["send_day"]]
    if len(later):
        if later["eligible"].any():
            gain = later.loc[later["eligible"], "future_gini"].max() - winner["future_gini"]
            reason += f"; later send days reach at most {gain:+.3f} future-only Gini"
        else:
            valued = later[later["mode"] != "threshold"]  # threshold events break volume rules by design
            rules = sorted({rule for rules in (valued if len(valued) else later)["broken"] for rule in rules})
            reason += f"; later send days are not eligible ({', '.join(rules)})"
    if winner["mode"] != "threshold":
        reason += f"; its values track actual LTV with Pearson {winner['pearson']:.2f}"
    same = eligible[(eligible["send_day"] == winner["send_day"])
                    & (eligible["future_gini"] == winner["future_gini"]) & (eligible["mode"] != winner["mode"])]  # fmt: skip
    if len(same):
        reason += f"; on equal quality the mode order is {' > '.join(MODE_PREFERENCE)}"
    return ranked, winner, reason


def presend_note(population: Population, modes: Sequence[str]) -> str | None:
    """Why recent users would not be sent, per mode: the top pre-send skip reasons with counts."""
    parts = []
    for mode in dict.fromkeys("append_value" if m == "append_value" else "custom_value" for m in modes):
        reasons = population.skip_reasons.get(mode) or {}
        if not reasons:
            continue
        top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        label = "AppendValue" if mode == "append_value" else "custom/threshold events"
        of = f" of {population.users:,}" if population.users else ""
        parts.append(
            f"{label} {population.share(mode):.0%} sendable; not sendable{of}: "
            + ", ".join(f"{reason} {n:,}" for reason, n in top)
        )
    if not parts:
        return None
    return (
        "why recent users are not sendable (each user under the first check the daily job's builder fails; "
        "fill the column or map it in [source.columns.users]): " + "; ".join(parts)
    )


def ad_set_note(result_table: pd.DataFrame, winner: pd.Series | None, options: DesignOptions) -> str | None:
    """How many ad sets the winner's volume supports, against ``--ad-sets``."""
    if winner is None:
        return None
    volume = float(winner["weekly_volume"])
    return (
        f"ad sets: ~{volume:,.0f} events/week support up to {max_ad_sets(volume)} ad set(s) at "
        f"{LEARNING_EVENTS_PER_AD_SET_WEEK} events per ad set per week (asked: --ad-sets {options.ad_sets})"
    )


SPEARMAN_NOTE = (
    "spearman/gini here are measured on the value the event carries (floored at 1): the floor ties the "
    "low predictions together as actual LTV ties the non-payers at 0, so spearman can read far higher "
    "than train's, which ranks the raw prediction"
)


def design(
    holdouts: Mapping[int, pd.DataFrame],
    models: Mapping[int, tuple[str, str]],
    population: Population,
    *,
    horizon_days: int,
    options: DesignOptions = DesignOptions(),
    now: datetime | None = None,
) -> DesignResult:
    """Score every candidate on the holdouts, apply the rules, choose, and build the EventSpec.

    ``holdouts``: send_day -> out-of-time holdout (``predicted_ltv``, ``actual_ltv``, ``actual_future``);
    ``models``: send_day -> (registered model name, version) that produced it.
    """
    days = sorted(options.send_days or holdouts)
    missing = [d for d in days if d not in holdouts]
    if missing:
        raise ValueError(f"no registered model (holdout) for send day(s) {missing}; run `pltv train` first")
    rows = []
    for cand in candidates(days, options):
        s = score(cand, holdouts[cand.send_day], population)
        rows.append(
            {
                "candidate": cand.label,
                "send_day": cand.send_day,
                "mode": cand.mode,
                "mapping": cand.mapping,
                "top_share": cand.top_share,
                "event_name": event_name_for(cand, options),
                **s,
                "broken": rules_broken(cand, s, population, options),
            }
        )
    table = pd.DataFrame(rows)
    for column in (
        "pearson",
        "decile_mape",
        "total_bias",
        "threshold",
        "precision",
        "recall",
        "revenue_share",
    ):
        if column not in table:
            table[column] = np.nan
    ranked, winner, reason = choose(table, options)
    spec = None
    if winner is not None:
        spec = _spec_for(winner, holdouts[int(winner["send_day"])], models, horizon_days, options, now)
    notes = [note for note in (presend_note(population, ranked["mode"].unique()),
                               ad_set_note(ranked, winner, options), SPEARMAN_NOTE) if note]  # fmt: skip
    return DesignResult(table=ranked, winner=winner, reason=reason, spec=spec, notes=notes)


def _spec_for(
    winner: pd.Series,
    holdout: pd.DataFrame,
    models: Mapping[int, tuple[str, str]],
    horizon_days: int,
    options: DesignOptions,
    now: datetime | None,
) -> EventSpec:
    d = int(winner["send_day"])
    name, version = models[d]
    pred = holdout["predicted_ltv"].to_numpy(float)
    actual = holdout["actual_ltv"].to_numpy(float)
    kind = winner["mapping"]
    expected_keys = ("gini", "future_gini", "spearman", "top10_share", "weekly_volume", "pearson",
                     "decile_mape", "precision", "recall", "fire_share")  # fmt: skip
    expected = {k: round(float(winner[k]), 6) for k in expected_keys if k in winner and pd.notna(winner[k])}
    threshold = float(round(winner["threshold"], 4)) if winner["mode"] == "threshold" else None
    mapping = fit_mapping("calibrated" if winner["mode"] == "threshold" else kind, pred, actual)
    sent = pred[pred >= threshold] if threshold is not None else mapping.apply(pred)
    settings = EventSettings(
        mode=str(winner["mode"]),  # type: ignore[arg-type]
        spec_id="",
        event_name=str(winner["event_name"]),
        send_day=d,
        currency=options.currency.upper(),
        threshold=threshold,
    )
    return EventSpec(
        settings=settings,
        value_mapping=mapping,
        top_share=None if pd.isna(winner["top_share"]) else float(winner["top_share"]),
        model_name=name,
        model_version=str(version),
        horizon_days=horizon_days,
        expected=expected,
        value_reference=reference_bins(sent),
        created_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
    )


def render_send_days(result: DesignResult) -> str:
    """One line per send day: the best quality reachable, the volume, and what limits it."""
    lines = ["send day  best future-Gini  best eligible  events/week  rules broken by some candidates"]
    for day, group in result.table.groupby("send_day", sort=True):
        ok = group[group["eligible"]]
        broken = sorted({rule for rules in group["broken"] for rule in rules})
        lines.append(
            f"d{day:<8} {group['future_gini'].max():>16.3f} "
            f"{(format(ok['future_gini'].max(), '.3f') if len(ok) else '-'):>14} "
            f"{group['weekly_volume'].max():>12,.0f}  {', '.join(broken) or '-'}"
        )
    return "\n".join(lines)


def render_table(result: DesignResult, limit: int | None = None) -> str:
    """The ranked candidates as text: quality, volume, and why each rejected one was rejected."""
    t = result.table
    header = (
        f"{'#':>3} {'candidate':<34} {'gini':>6} {'fut_gini':>8} {'spearman':>8} {'top10':>6} "
        f"{'pearson':>7} {'dec_mape':>8} {'prec':>5} {'week_vol':>8}  verdict"
    )
    lines = [header, "-" * len(header)]
    for i, row in enumerate(t.itertuples(index=False), start=1):
        if limit is not None and i > limit:
            lines.append(f"... {len(t) - limit} more candidates")
            break

        def f(v, fmt):
            return format(v, fmt) if pd.notna(v) else "-".rjust(int(fmt.split(".")[0]))

        verdict = (
            "WINNER"
            if i == 1 and result.winner is not None
            else ("ok" if row.eligible else "rejected: " + ", ".join(row.broken))
        )
        lines.append(
            f"{i:>3} {row.candidate:<34} {f(row.gini, '6.3f')} {f(row.future_gini, '8.3f')} "
            f"{f(row.spearman, '8.3f')} {f(row.top10_share, '6.2f')} {f(row.pearson, '7.2f')} "
            f"{f(row.decile_mape, '8.2f')} {f(row.precision, '5.2f')} {row.weekly_volume:>8.0f}  {verdict}"
        )
    return "\n".join(lines)
