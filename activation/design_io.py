"""The designer's I/O: champions and holdouts from the registry, volume from the source, the spec to MLflow."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from activation.design import DesignOptions, DesignResult, Population, design
from activation.errors import EventSettingsError
from activation.identity import hash_identifiers
from activation.spec import EventSpec, SpecError, save_spec
from pltv.config import Config
from pltv.sources import IDENTIFIERS, open_source

RECENT_WEEKS = 4


def _version_tags(tracking_uri: str, name: str, version: str) -> dict[str, str]:
    """Tags ``pltv train`` put on a registered version (``send_day``, ``horizon_days``, ``as_of``)."""
    from mlflow import MlflowClient

    return dict(MlflowClient(tracking_uri).get_model_version(name, str(version)).tags)


def _log_to_version_run(tracking_uri: str, name: str, version: str, path: Path) -> None:
    """Attach a file to the training run of a registered version (artifact folder ``eventspec/``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    client.log_artifact(client.get_model_version(name, str(version)).run_id, str(path), "eventspec")


def population_stats(
    con, *, as_of: datetime, weeks: int = RECENT_WEEKS, default_region: str = "US"
) -> Population:
    """Weekly signups and deliverable shares over the last ``weeks`` complete weeks before ``as_of``."""
    start = as_of - timedelta(weeks=weeks)
    columns = {r[0] for r in con.execute("DESCRIBE users").fetchall()}
    ids = [c for c in (*IDENTIFIERS, "country") if c in columns]
    extra = [c for c in ("consent", "conversion_event_name", "conversion_event_id", "conversion_order_id")
             if c in columns]  # fmt: skip
    select = ", ".join(f'"{c}"' for c in ["user_id", *ids, *extra])
    recent = con.execute(
        f"SELECT {select} FROM users WHERE signup_at >= ? AND signup_at < ?", [start, as_of]
    ).df()
    if recent.empty:
        return Population(weekly_signups=0.0, deliverable_share=0.0, append_share=0.0)
    user_data, _ = (
        hash_identifiers(recent[ids], default_region=default_region) if ids else (pd.DataFrame(), None)
    )
    has_key = (
        user_data.notna().any(axis=1) if len(user_data.columns) else pd.Series(False, index=recent.index)
    )
    consent = recent["consent"].fillna(True).astype(bool) if "consent" in recent else True
    # website events (the default action source) also need client_user_agent, or Meta rejects them
    has_ua = user_data["client_user_agent"].notna() if "client_user_agent" in user_data else False
    deliverable = has_key & consent & has_ua
    conv = pd.Series(False, index=recent.index)
    if "conversion_event_name" in recent:
        ids_present = pd.Series(False, index=recent.index)
        for c in ("conversion_event_id", "conversion_order_id"):
            if c in recent:
                ids_present |= recent[c].notna()
        conv = recent["conversion_event_name"].notna() & ids_present
    return Population(
        weekly_signups=len(recent) / weeks,
        deliverable_share=float(deliverable.mean()),
        append_share=float((deliverable & conv).mean()),
    )


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
        horizons.add(int(_version_tags(uri, name, version)["horizon_days"]))
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
    result.notes.append(
        f"volume from the last {RECENT_WEEKS} weeks before {as_of:%Y-%m-%d}: {population.weekly_signups:,.0f} "
        f"signups/week, {population.deliverable_share:.0%} deliverable, {population.append_share:.0%} with "
        "conversion ids (AppendValue)"
    )
    if result.spec is None:
        return result, None
    path = save_spec(result.spec, out)
    _log_to_version_run(uri, result.spec.model_name, result.spec.model_version, path)
    return result, path


def check_spec_model(spec: EventSpec, tracking_uri: str) -> None:
    """Fail clearly when the registry's pinned version does not fit the spec (missing, other send day)."""
    from pltv import tracking

    tracking.configure(tracking_uri, existing=True)
    try:
        params = _version_tags(tracking_uri, spec.model_name, spec.model_version)
    except Exception as exc:
        raise SpecError(
            f"the spec pins {spec.model_name} version {spec.model_version}, which the registry at "
            f"{tracking_uri} cannot provide ({type(exc).__name__}: {exc})"
        ) from exc
    if int(params.get("send_day", spec.send_day)) != spec.send_day:
        raise SpecError(
            f"the spec's send day {spec.send_day} does not match model {spec.model_name} v{spec.model_version}, "
            f"trained for send day {params['send_day']}"
        )
    if int(params.get("horizon_days", spec.horizon_days)) != spec.horizon_days:
        raise SpecError(
            f"the spec's horizon {spec.horizon_days} days does not match the model's {params['horizon_days']}"
        )
