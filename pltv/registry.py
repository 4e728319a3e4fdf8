"""MLflow model registry: one registered model per send day, aliases ``champion`` and ``challenger``.

The logged model is an MLflow pyfunc (:class:`LtvPythonModel`): a features frame from
:func:`pltv.features.build_features` in, ``predicted_ltv`` out. :func:`load_model` returns that object
unwrapped, so the daily job and notebooks call ``.predict(features)`` on it directly and read
``.event_names`` / ``.categoricals`` / ``.send_day`` / ``.horizon_days`` to build the right features.

Champion rule (:func:`decide_alias`): a version that loses to its own baseline (``k · early revenue``) on
its out-of-time cohort — lower Gini or higher decile MAPE — is never ``champion`` without ``--promote``.
Otherwise a new version becomes ``champion`` when it is at least as good as the
current champion re-scored on the *same* out-of-time cohort: Gini no lower than the champion's − 0.005 and
decile MAPE no higher than the champion's + 0.02; otherwise ``challenger``. A version trained for another
horizon, or whose test cohort overlaps the champion's training users, is not comparable and becomes
``challenger`` with that reason. ``promote=True/False`` overrides.
Registry stages are deprecated in MLflow; only aliases are used.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pltv import metrics, tracking
from pltv.errors import RegistryError
from pltv.evaluate import baseline_losses
from pltv.features import CATEGORICALS, to_utc_naive

CHAMPION = "champion"
CHALLENGER = "challenger"
GINI_TOLERANCE = 0.005
MAPE_TOLERANCE = 0.02


def model_name(template: str, send_day: int) -> str:
    """``pltv_d{send_day}`` -> ``pltv_d3``; a template without the placeholder gets ``_d3`` appended."""
    return template.format(send_day=send_day) if "{send_day}" in template else f"{template}_d{send_day}"


with warnings.catch_warnings():
    # MLflow warns at class creation that predict has no type hints; it takes a features frame and aligns
    # columns itself, so MLflow's type-hint validation is deliberately not used. MLflow re-enables the
    # warning inside its own check (a "once" filter), so only silencing the display works; the check's result
    # is cached per function, so loading a model later does not warn again.
    warnings.showwarning = lambda *args, **kwargs: None

    class LtvPythonModel(mlflow.pyfunc.PythonModel):
        """A fitted estimator plus what scoring needs: send day, horizon, event names, feature columns."""

        def __init__(self, estimator, *, send_day: int, horizon_days: int, event_names, feature_names):
            self.estimator = estimator
            self.send_day = int(send_day)
            self.horizon_days = int(horizon_days)
            self.event_names = list(event_names)
            self.feature_names = list(feature_names)

        @property
        def categoricals(self) -> list[str]:
            """The categorical user columns the model reads (country/platform/channel plus configured extras)."""
            return list(getattr(self.estimator, "categoricals_", CATEGORICALS))

        def predict(self, context=None, model_input=None, params=None) -> np.ndarray:
            """Predicted LTV per row of a features frame (also callable as ``predict(features)``)."""
            frame = model_input if model_input is not None else context
            if not isinstance(frame, pd.DataFrame):
                frame = pd.DataFrame(frame)
            return np.asarray(self.estimator.predict(frame), dtype=np.float64)


def _pip_requirements() -> list[str]:
    """What the pyfunc imports besides its own code (which travels with it, see :func:`_code_paths`)."""
    reqs = []
    for dist in ("lightgbm", "scikit-learn", "pandas", "numpy", "duckdb"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _code_paths() -> list[str]:
    """The ``pltv`` package itself, copied into the model: it loads where the toolkit is not installed
    (e.g. ``mlflow models serve``), with the code it was trained with."""
    return [str(Path(__file__).resolve().parent)]


def log_model(wrapper: LtvPythonModel, features: pd.DataFrame, *, name: str = "model"):
    """Log the pyfunc in the active run (signature from the features, explicit pip requirements)."""
    from mlflow.models import infer_signature

    sample = features[wrapper.feature_names].head(50)
    signature = infer_signature(sample, wrapper.predict(features.head(50)))
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the cloudpickle notice: we pickle our own estimator on purpose
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no input example": the signature comes from real features
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=wrapper,
                signature=signature,
                pip_requirements=_pip_requirements(),
                code_paths=_code_paths(),
            )
    finally:
        quiet.setLevel(level)


@dataclass(frozen=True)
class Registration:
    """Outcome of registering one version."""

    name: str
    version: str
    alias: str
    reason: str


def _client(client_or_uri) -> MlflowClient:
    return client_or_uri if isinstance(client_or_uri, MlflowClient) else MlflowClient(client_or_uri)


def champion_version(client_or_uri, name: str) -> str | None:
    """The version holding the ``champion`` alias, or ``None`` (no model or no champion yet)."""
    client = _client(client_or_uri)
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_model(tracking_uri: str, name: str, version_or_alias: str | int = CHAMPION) -> LtvPythonModel:
    """The registered pyfunc, unwrapped: ``.predict(features) -> predicted_ltv``, ``.event_names``..."""
    ref = str(version_or_alias)
    uri = f"models:/{name}/{ref}" if ref.isdigit() else f"models:/{name}@{ref}"
    tracking.configure(tracking_uri, existing=True)
    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except MlflowException as exc:
        raise RegistryError(
            f"cannot load {uri} from {tracking_uri}: {str(exc).splitlines()[0]}; "
            "train one with `pltv train` or pick an existing version/alias"
        ) from exc


def holdout_for(tracking_uri: str, name: str, version: str | int) -> pd.DataFrame:
    """The out-of-time holdout predictions (``holdout.parquet``) logged with a version's training run."""
    client = MlflowClient(tracking_uri)
    ref = str(version)
    try:
        mv = (
            client.get_model_version(name, ref)
            if ref.isdigit()
            else client.get_model_version_by_alias(name, ref)
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(mv.run_id, "holdout.parquet", tmp)
            return pd.read_parquet(path)
    except MlflowException as exc:
        raise RegistryError(f"no holdout for {name} version {ref} in {tracking_uri}: {exc}") from exc


def decide_alias(
    new_scores: dict[str, float],
    champion_scores: dict[str, float] | None,
    promote: bool | None,
    *,
    not_comparable: str | None = None,
) -> tuple[str, str]:
    """``(alias, reason)`` for a new version given both models' scores on the same out-of-time cohort.

    ``new_scores`` may carry ``baseline_gini`` / ``baseline_decile_mape`` (the baseline on the same cohort): a
    version worse than its baseline on either is ``challenger`` unless ``promote``.
    ``not_comparable`` (from :func:`_comparability`) says why the champion cannot be scored against the new
    version; the new version is then ``challenger`` unless ``promote`` is set.
    """
    if promote is True:
        return CHAMPION, "promoted by --promote"
    if promote is False:
        return CHALLENGER, "kept as challenger by --no-promote"
    losses = baseline_losses(new_scores)
    if losses:
        detail = ", ".join(
            f"{key.replace('_', ' ')} {model:.3f} vs baseline {base:.3f}"
            for key, (model, base) in losses.items()
        )
        return CHALLENGER, (
            f"loses to the baseline (k x early revenue) on the out-of-time cohort ({detail}); "
            "use --promote to make it champion anyway"
        )
    if not_comparable is not None:
        return CHALLENGER, f"not comparable: {not_comparable}; use --promote to replace it"
    if champion_scores is None:
        return CHAMPION, "first version: no champion yet"
    g_new, g_old = new_scores["gini"], champion_scores["gini"]
    m_new, m_old = new_scores["decile_mape"], champion_scores["decile_mape"]
    better_gini = g_new >= g_old - GINI_TOLERANCE
    better_cal = m_new <= m_old + MAPE_TOLERANCE
    detail = f"gini {g_new:.3f} vs champion {g_old:.3f}, decile MAPE {m_new:.3f} vs {m_old:.3f}"
    if better_gini and better_cal:
        return CHAMPION, f"at least as good as the champion ({detail})"
    return CHALLENGER, f"worse than the champion ({detail})"


def _comparability(
    champion_horizon: int | None,
    champion_test_from: pd.Timestamp | None,
    new_horizon: int | None,
    new_test_start: pd.Timestamp | None,
) -> str | None:
    """Why the champion cannot be judged on the new version's test cohort, or ``None`` if it can.

    Versions for different horizons predict different quantities; and a champion whose training users
    (signed up before its ``test_from``) include part of the new test cohort would be scored in-sample.
    Facts that are unknown (``None``) are not held against the comparison.
    """
    reasons = []
    if champion_horizon is not None and new_horizon is not None and champion_horizon != new_horizon:
        reasons.append(f"the champion predicts a {champion_horizon}-day LTV, this version {new_horizon} days")
    if champion_test_from is not None and new_test_start is not None and new_test_start < champion_test_from:
        reasons.append(
            "the champion was trained on part of this test cohort (its training users signed up before "
            f"{champion_test_from:%Y-%m-%d}, this test cohort from {new_test_start:%Y-%m-%d})"
        )
    return "; ".join(reasons) or None


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_naive_day(value) -> pd.Timestamp | None:
    """A date or timestamp as a tz-naive (UTC) ``pd.Timestamp``; ``None`` when missing or unparseable."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if ts is pd.NaT else pd.Timestamp(to_utc_naive(ts))


def _version_facts(client: MlflowClient, mv) -> tuple[int | None, pd.Timestamp | None]:
    """``(horizon_days, test_from)`` of a registered version: its tags, else its training run's params."""
    facts = {key: mv.tags.get(key) for key in ("horizon_days", "test_from")}
    if None in facts.values():
        try:
            params = client.get_run(mv.run_id).data.params if mv.run_id else {}
        except MlflowException:
            params = {}
        facts = {key: value if value is not None else params.get(key) for key, value in facts.items()}
    return _as_int(facts["horizon_days"]), _as_naive_day(facts["test_from"])


def score_champion(tracking_uri: str, name: str, test: pd.DataFrame) -> tuple[str, dict[str, float]] | None:
    """Re-score the current champion on ``test`` (features + ``actual_ltv``): ``(version, scores)``."""
    version = champion_version(tracking_uri, name)
    if version is None:
        return None
    champion = load_model(tracking_uri, name, version)
    pred = champion.predict(test)
    scores = {
        "gini": metrics.normalized_gini(test["actual_ltv"], pred),
        "decile_mape": metrics.decile_mape(test["actual_ltv"], pred),
    }
    return version, scores


def register(
    tracking_uri: str,
    name: str,
    model_uri: str,
    *,
    run_id: str,
    new_scores: dict[str, float],
    test: pd.DataFrame,
    promote: bool | None = None,
    tags: dict[str, str] | None = None,
) -> Registration:
    """Register ``model_uri`` under ``name`` and set ``champion`` or ``challenger`` by the champion rule.

    The champion is re-scored on ``test`` only when comparable: same ``horizon_days`` (the ``tags`` entry vs
    the champion's tag or run param) and a test cohort starting no earlier than the champion's own
    ``test_from`` (else it would be scored on its training users). Otherwise the new version is
    ``challenger`` with the reason stated, unless ``promote`` is set.
    """
    client = MlflowClient(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    tags = dict(tags or {})
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None  # no model or no champion yet
    not_comparable = None
    if champion is not None:
        new_test_start = _as_naive_day(test["signup_at"].min()) if "signup_at" in test and len(test) else None
        not_comparable = _comparability(
            *_version_facts(client, champion), _as_int(tags.get("horizon_days")), new_test_start
        )
    current = None
    if champion is not None and not_comparable is None and promote is None:
        current = score_champion(tracking_uri, name, test)
    alias, reason = decide_alias(
        new_scores, current[1] if current else None, promote, not_comparable=not_comparable
    )
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description="pLTV model for one send day (pltv train)")
        mv = client.create_model_version(name, model_uri, run_id=run_id, tags=tags)
        client.set_registered_model_alias(name, alias, mv.version)
        client.set_model_version_tag(name, mv.version, "alias_reason", reason)
    except MlflowException as exc:
        raise RegistryError(f"registering {name} in {tracking_uri} failed: {exc}") from exc
    return Registration(name=name, version=str(mv.version), alias=alias, reason=reason)
