"""The designer's I/O: champions and holdouts from the registry, volume from the source, the spec to MLflow."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from activation.design import (
    DATASET_WEEKS,
    MIN_DATASET_EVENTS_PER_WEEK,
    DesignOptions,
    DesignResult,
    Population,
    design,
)
from activation.errors import EventSettingsError
from activation.events import plan_events
from activation.settings import EventSettings, event_id_for
from activation.spec import save_spec, version_tags
from pltv.config import Config
from pltv.contract import DELIVERY, MATCH_COLUMNS
from pltv.sources import open_source

RECENT_WEEKS = DATASET_WEEKS


def _log_to_version_run(tracking_uri: str, name: str, version: str, path: Path) -> None:
    """Attach a file to the training run of a registered version (artifact folder ``eventspec/``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    client.log_artifact(client.get_model_version(name, str(version)).run_id, str(path), "eventspec")


def population_stats(
    con, *, as_of: datetime, weeks: int = RECENT_WEEKS, default_region: str = "US"
) -> Population:
    """Weekly signups and sendable shares over the last ``weeks`` complete weeks before ``as_of``.

    A user counts as sendable when the daily job's builder would send their event: each user is built as
    the daily job builds them (:func:`~activation.events.presend_skips`, then the match keys and
    :func:`~activation.events.build_events`' payload checks), with the designer's event settings
    (action source ``website``), at their own send moment. The per-week counts back Meta's rule of at
    least 100 conversions in each of the last 4 weeks.
    """
    start = as_of - timedelta(weeks=weeks)
    columns = {r[0] for r in con.execute("DESCRIBE users").fetchall()}
    ids = [c for c in MATCH_COLUMNS if c in columns]
    extra = [c for c in DELIVERY if c in columns]
    select = ", ".join(f'"{c}"' for c in dict.fromkeys(["user_id", "signup_at", *ids, *extra]))
    recent = con.execute(
        f"SELECT {select} FROM users WHERE signup_at >= ? AND signup_at < ? ORDER BY signup_at, user_id",
        [start, as_of],
    ).df()
    if recent.empty:
        return Population(weekly_signups=0.0, deliverable_share=0.0, append_share=0.0,
                          deliverable_by_week=(0.0,) * weeks, append_by_week=(0.0,) * weeks)  # fmt: skip
    signup = pd.to_datetime(recent["signup_at"], utc=True)
    week = ((signup - _utc(start)) // pd.Timedelta(weeks=1)).clip(0, weeks - 1).to_numpy(int)
    checked = {
        mode: _sendable(recent, signup, ids, mode, _utc(as_of), default_region)
        for mode in ("custom_value", "append_value")
    }
    sendable = {mode: ok for mode, (ok, _) in checked.items()}
    by_week = {
        mode: tuple(float(n) for n in np.bincount(week[ok], minlength=weeks)) for mode, ok in sendable.items()
    }
    return Population(
        weekly_signups=len(recent) / weeks,
        deliverable_share=float(sendable["custom_value"].mean()),
        append_share=float(sendable["append_value"].mean()),
        deliverable_by_week=by_week["custom_value"],
        append_by_week=by_week["append_value"],
        skip_reasons={mode: reasons for mode, (_, reasons) in checked.items()},
        users=len(recent),
    )


def volume_note(population: Population, as_of: datetime) -> str:
    """The designer's note on volume: averages, sendable shares and each mode's weakest week."""
    return (
        f"volume from the last {RECENT_WEEKS} weeks before {as_of:%Y-%m-%d}: {population.weekly_signups:,.0f} "
        f"signups/week, {population.deliverable_share:.0%} sendable as custom events, "
        f"{population.append_share:.0%} as AppendValue (conversion ids known); weakest week "
        f"{population.weakest_week('custom_value'):,.0f} custom events, "
        f"{population.weakest_week('append_value'):,.0f} AppendValue (Meta asks for at least "
        f"{MIN_DATASET_EVENTS_PER_WEEK} in each of the {DATASET_WEEKS} weeks)"
    )


def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _sendable(
    recent: pd.DataFrame,
    signup: pd.Series,
    ids: list[str],
    mode: str,
    moment: pd.Timestamp,
    default_region: str,
) -> tuple[np.ndarray, dict[str, int]]:
    """Per row, whether the daily job would send this user's ``mode`` event at their send moment, and the
    plan's skip-reason counts (why the others would not be sent).

    Every user's clock is moved to one common send moment, ``moment`` (signup, and the conversion's send
    time by the same offset): the builder's time checks only compare those times with each other, so one
    ``presend_skips`` / ``build_events`` call evaluates each user at their own send moment. The value is
    a positive placeholder: the candidate's values are scored (and their rules checked) in the designer.
    The send day's own limit on AppendValue (7 days after the conversion) is the designer's rule.
    """
    settings = EventSettings(mode=mode, spec_id="design-volume", send_day=0)  # type: ignore[arg-type]
    users = recent.assign(signup_at=moment, send_at=moment, predicted_ltv=1.0)
    if "conversion_sent_at" in users:
        users["conversion_sent_at"] = moment + (
            pd.to_datetime(recent["conversion_sent_at"], utc=True) - signup
        )
    plan = plan_events(users, settings, now=moment, id_columns=ids, default_region=default_region)
    sent = {e.event_id for e in plan.events}
    ok = np.array([event_id_for(settings.spec_id, u) in sent for u in users["user_id"].tolist()], dtype=bool)
    return ok, plan.skip_reasons()


def design_from_registry(
    config: Config, options: DesignOptions, *, out: str | Path, now: datetime | None = None
) -> tuple[DesignResult, Path | None]:
    """Design on every send day with a registered champion; write and log the spec. Returns (result, path)."""
    from pltv import registry, tracking
    from pltv.features import default_as_of

    tracking.configure(config.mlflow.tracking_uri, existing=True)
    uri, template = config.mlflow.tracking_uri, config.mlflow.model_name
    days = options.send_days or config.train.send_days
    holdouts: dict[int, pd.DataFrame] = {}
    models: dict[int, tuple[str, str]] = {}
    horizons: set[int] = set()
    for d in days:
        name = registry.model_name(template, d)
        version = registry.champion_version(uri, name)
        if version is None:
            continue
        holdout = registry.holdout_for(uri, name, version)
        holdouts[d], models[d] = holdout, (name, str(version))
        horizons.add(int(version_tags(uri, name, version)["horizon_days"]))
    if not holdouts:
        raise EventSettingsError(
            f"no registered champion for send days {list(days)} in {uri} (model names {template}); "
            "run `pltv train` first"
        )
    if len(horizons) != 1:
        raise EventSettingsError(f"the champions were trained with different horizons {sorted(horizons)}")
    with open_source(config.source) as src:
        as_of = default_as_of(src.quality.data_end)
        population = population_stats(src.con, as_of=as_of, default_region=config.capi.default_region)
    options = DesignOptions(**{**options.__dict__, "send_days": tuple(sorted(holdouts))})
    result = design(holdouts, models, population, horizon_days=horizons.pop(), options=options, now=now)
    unregistered = [d for d in days if d not in holdouts]
    if unregistered:
        result.notes.append(
            f"send days {unregistered} left out: no registered champion "
            f"({', '.join(registry.model_name(template, d) for d in unregistered)}); run `pltv train` for them"
        )
    result.notes.append(volume_note(population, as_of))
    if result.spec is None:
        return result, None
    path = save_spec(result.spec, out)
    _log_to_version_run(uri, result.spec.model_name, result.spec.model_version, path)
    return result, path
