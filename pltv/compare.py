"""Compare registered model versions side by side on the same, most recent matured cohort.

:func:`compare_versions` loads each chosen version of one registered model (default: the champion and the
latest versions before it), builds its features on the source as of ``as_of`` and scores every version on
one evaluation cohort: the out-of-time test cohort that training would use at that ``as_of``
(:func:`pltv.train.split_cohorts` — the most recent ~20 % of matured users, whole signup days). Each version's
baseline is ``k · early net revenue`` with the ``baseline_k`` its training run logged
(:class:`~pltv.models.EarlyRevenueMultiple`), so every panel shows the heuristic that version was held
against.

The result holds per-version holdout frames (the :mod:`pltv.evaluate` contract), a tidy metrics table
(:func:`pltv.evaluate.evaluate_holdout`) and the total bias per weekly signup cohort over every matured
cohort, flagged ``out_of_time`` where the week started on/after the version's own training test cut-off
(earlier weeks were in that version's training data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from pltv import metrics
from pltv.errors import ConfigError, InsufficientDataError, RegistryError
from pltv.evaluate import evaluate_holdout, holdout_frame
from pltv.features import CATEGORICALS, build_features, to_utc_naive
from pltv.models import EarlyRevenueMultiple
from pltv.train import complete_until, split_cohorts

DEFAULT_MAX_VERSIONS = 3


@dataclass
class Comparison:
    """Every chosen version scored on one evaluation cohort (see the module docstring)."""

    name: str
    send_day: int
    horizon_days: int
    as_of: datetime
    test_from: pd.Timestamp
    versions: list[str]  # in display order: champion first, then newest to oldest
    labels: dict[str, str]  # version -> "v3 (champion)"
    holdouts: dict[str, pd.DataFrame] = field(repr=False)  # version -> holdout frame on the cohort
    metrics: pd.DataFrame = field(repr=False)  # one row per (version, predictor)
    bias_by_week: pd.DataFrame = field(repr=False)  # one row per (version, predictor, signup_week)
    baseline_k: dict[str, float] = field(default_factory=dict)

    @property
    def actual_ltv(self) -> np.ndarray:
        """The cohort's actual LTV (identical row order in every holdout)."""
        return self.holdouts[self.versions[0]]["actual_ltv"].to_numpy()

    def predictions(self) -> dict[str, np.ndarray]:
        """Label -> predicted LTV on the cohort, one entry per version (for the plot functions)."""
        return {self.labels[v]: self.holdouts[v]["predicted_ltv"].to_numpy() for v in self.versions}

    @property
    def actual_future(self) -> np.ndarray:
        """The cohort's revenue after the send moment (the future-only label)."""
        return self.holdouts[self.versions[0]]["actual_future"].to_numpy()

    def future_predictions(self, *, baseline: bool = True) -> dict[str, np.ndarray]:
        """Label -> what each predictor expects on top of the revenue seen at the send moment
        (``predicted − early_net_revenue``), the versions then, with ``baseline``, the first version's baseline
        under the label ``"baseline"``."""
        out = {
            self.labels[v]: (h["predicted_ltv"] - h["early_net_revenue"]).to_numpy()
            for v, h in ((v, self.holdouts[v]) for v in self.versions)
        }
        if baseline:
            h = self.holdouts[self.versions[0]]
            out["baseline"] = (h["baseline_ltv"] - h["early_net_revenue"]).to_numpy()
        return out

    def baselines(self) -> dict[str, np.ndarray]:
        """Label -> that version's baseline prediction (``baseline_k`` × early net revenue) on the cohort."""
        return {self.labels[v]: self.holdouts[v]["baseline_ltv"].to_numpy() for v in self.versions}


def _aliases(client, name: str) -> dict[str, str]:
    """Version -> alias (``champion``/``challenger``) of a registered model."""
    try:
        model = client.get_registered_model(name)
    except Exception as exc:  # MlflowException: no such model
        raise RegistryError(
            f"no registered model {name!r}; train one with `pltv train` or pick another name"
        ) from exc
    return {str(v): alias for alias, v in (model.aliases or {}).items()}


def default_versions(client, name: str, *, max_versions: int = DEFAULT_MAX_VERSIONS) -> list[str]:
    """The champion (when there is one) then the newest other versions, ``max_versions`` in all."""
    from pltv.registry import champion_version

    all_versions = sorted(
        (str(mv.version) for mv in client.search_model_versions(f"name='{name}'")), key=int, reverse=True
    )
    if not all_versions:
        raise RegistryError(f"registered model {name!r} has no versions; run `pltv train` first")
    champion = champion_version(client, name)
    ordered = ([champion] if champion else []) + [v for v in all_versions if v != champion]
    return ordered[:max_versions]


def _weekly_bias(frame: pd.DataFrame, predicted: np.ndarray, *, cutoff) -> pd.DataFrame:
    """Users, Σpredicted, Σactual and total bias per weekly signup cohort (weeks start on Monday)."""
    week = frame["signup_at"].dt.to_period("W-SUN").dt.start_time
    rows = []
    for start, index in frame.groupby(week, sort=True).indices.items():
        actual = frame["actual_ltv"].to_numpy()[index]
        pred = predicted[index]
        rows.append(
            {
                "signup_week": start,
                "users": len(index),
                "predicted": float(pred.sum()),
                "actual": float(actual.sum()),
                "total_bias": metrics.total_bias(actual, pred) if actual.sum() != 0 else float("nan"),
                "out_of_time": bool(cutoff is not None and start >= cutoff),
            }
        )
    return pd.DataFrame(rows)


def compare_versions(
    tracking_uri: str,
    name: str,
    versions=None,
    *,
    source,
    as_of=None,
    test_fraction: float = 0.2,
    max_versions: int = DEFAULT_MAX_VERSIONS,
) -> Comparison:
    """Score ``versions`` of registered model ``name`` on the same most recent matured cohort.

    ``versions``: version numbers or aliases; ``None`` takes the champion and the newest other versions
    (``max_versions`` in all). ``source``: a path, a :class:`~pltv.config.SourceConfig` or an open
    :class:`~pltv.sources.Source`. ``as_of`` defaults to :func:`pltv.train.complete_until` (the day after the data ends, never past today).
    Raises :class:`~pltv.errors.RegistryError` for unknown models/versions and
    :class:`~pltv.errors.ConfigError` when the versions disagree on send day or horizon.
    """
    from mlflow import MlflowClient

    from pltv import registry, tracking
    from pltv.sources import Source, open_source

    tracking.configure(tracking_uri, existing=True)
    client = MlflowClient(tracking_uri)
    aliases = _aliases(client, name)
    alias_version = {a: v for v, a in aliases.items()}
    if versions is None:
        chosen = default_versions(client, name, max_versions=max_versions)
    else:
        refs = [str(v) for v in ([versions] if isinstance(versions, str | int) else versions)]
        chosen = [r if r.isdigit() else alias_version.get(r, r) for r in refs]
        chosen = list(dict.fromkeys(chosen))  # keep order, drop repeats
    models = {v: registry.load_model(tracking_uri, name, v) for v in chosen}
    shapes = {(m.send_day, m.horizon_days) for m in models.values()}
    if len(shapes) != 1:
        raise ConfigError(
            f"versions {chosen} of {name} disagree on (send_day, horizon_days) {sorted(shapes)}; "
            "compare versions of one send day and horizon"
        )
    send_day, horizon_days = shapes.pop()
    params = {v: client.get_run(client.get_model_version(name, v).run_id).data.params for v in chosen}

    own = not isinstance(source, Source)
    src = open_source(source) if own else source
    try:
        for v, model in models.items():
            lost = [c for c in model.categoricals if c not in CATEGORICALS and c not in src.user_columns]
            if lost:  # the daily job refuses this too: every user would be scored as "unknown"
                raise ConfigError(
                    f"{name} v{v} reads users column(s) {lost} (extra_categoricals it was trained with) that "
                    f"the source {src.path} does not have; point [source] of pltv.toml at the data it was "
                    "trained on, or map the columns in [source.columns.users]"
                )
        as_of = to_utc_naive(as_of) if as_of is not None else complete_until(src.quality.data_end)
        frames: dict[tuple[tuple[str, ...], tuple[str, ...]], pd.DataFrame] = {}
        matured = {}
        for v, model in models.items():
            key = (tuple(model.event_names), tuple(model.categoricals))
            if key not in frames:
                frame = build_features(
                    src.con, send_day=send_day, as_of=as_of, horizon_days=horizon_days,
                    event_names=key[0], categoricals=key[1],
                )  # fmt: skip
                frames[key] = frame[frame["actual_ltv"].notna()].reset_index(drop=True)
            matured[v] = frames[key]
    finally:
        if own:
            src.close()

    first = matured[chosen[0]]
    if first.empty:
        raise InsufficientDataError(
            f"no matured users as of {as_of:%Y-%m-%d} for horizon {horizon_days} days; use a later as_of"
        )
    test_from = split_cohorts(first, test_fraction=test_fraction)
    labels = {v: f"v{v} ({aliases[v]})" if v in aliases else f"v{v}" for v in chosen}
    holdouts, rows, weekly, ks = {}, [], [], {}
    for v in chosen:
        frame = matured[v]
        test = frame[frame["signup_at"] >= test_from]
        baseline = EarlyRevenueMultiple()
        baseline.k_ = float(params[v].get("baseline_k", "nan"))
        if not np.isfinite(baseline.k_):
            raise RegistryError(f"{name} v{v}: its training run logged no baseline_k param; retrain it")
        ks[v] = baseline.k_
        model = models[v]
        holdouts[v] = holdout_frame(
            test,
            send_day=send_day,
            predicted_ltv=model.predict(test),
            baseline_ltv=baseline.predict(test),
        )
        scores = evaluate_holdout(holdouts[v])
        trained_test_from = params[v].get("test_from")
        cutoff = pd.Timestamp(trained_test_from) if trained_test_from else None
        common = {
            "version": v,
            "label": labels[v],
            "alias": aliases.get(v, ""),
            "trained_as_of": params[v].get("as_of", ""),
            "users": len(test),
            # the cohort is out of time for this version only when it starts on/after its own test cut-off
            "out_of_time": bool(cutoff is not None and test_from >= cutoff),
        }
        model_scores = {k: s for k, s in scores.items() if not k.startswith("baseline_")}
        base_scores = {k.removeprefix("baseline_"): s for k, s in scores.items() if k.startswith("baseline_")}
        rows.append({**common, "predictor": "model", **model_scores})
        rows.append({**common, "predictor": "baseline", **base_scores})
        for predictor, pred in (("model", model.predict(frame)), ("baseline", baseline.predict(frame))):
            weekly.append(
                _weekly_bias(frame, np.asarray(pred, dtype=float), cutoff=cutoff).assign(
                    version=v, label=labels[v], predictor=predictor
                )
            )
    bias = pd.concat(weekly, ignore_index=True)
    bias["evaluation_cohort"] = bias["signup_week"] >= test_from - pd.Timedelta(days=6)
    return Comparison(
        name=name,
        send_day=int(send_day),
        horizon_days=int(horizon_days),
        as_of=as_of,
        test_from=test_from,
        versions=chosen,
        labels=labels,
        holdouts=holdouts,
        metrics=pd.DataFrame(rows),
        bias_by_week=bias,
        baseline_k=ks,
    )
