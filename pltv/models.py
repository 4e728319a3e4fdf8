"""pLTV estimators (scikit-learn style: ``fit`` returns ``self``, learned state ends in ``_``).

Every estimator takes a features frame from :func:`pltv.features.build_features` and the total-LTV label
``actual_ltv``. The revenue already known at the send moment (``early_net_revenue``) is part of the label,
so the LightGBM models learn only the *future* part and add the known part back::

    predicted_ltv = early_net_revenue + scale_ · predicted_future

- :class:`HurdleLTV`: P(future revenue > 0) × E[future | > 0], the second part a log1p-scale regression
  with Duan's smearing correction, for the zero-inflated, heavy-tailed target;
- :class:`TweedieLTV`: one LightGBM model with a tweedie objective;
- :class:`EarlyRevenueMultiple`: the heuristic every team uses, ``k · early net revenue`` with ``k`` fitted
  on the training cohorts (so it predicts 0 for everyone at send day 0, where there is no early revenue).

``recalibrate(X, y)`` fits ``scale_`` so that Σpredicted = Σactual on the given matured users (training
uses every training cohort): the aggregate recalibration. Columns are aligned by name at predict time: a missing event-count
column counts 0, unknown columns are ignored, unseen category levels become missing.

LightGBM is imported lazily and run deterministically (fixed seed, ``deterministic=True``, 2 threads).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pltv.features import EVENT_PREFIX, categorical_columns, feature_columns

EARLY = "early_net_revenue"


def _lgbm_params(**overrides: Any) -> dict[str, Any]:
    params = {
        "n_estimators": 250,
        "learning_rate": 0.04,
        "num_leaves": 15,
        "min_child_samples": 40,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "random_state": 7,
        "deterministic": True,
        "force_col_wise": True,
        "n_jobs": 2,
        "verbose": -1,
    }
    params.update(overrides)
    return params


def _threads(rows: int) -> dict[str, Any]:
    """Small data trains faster (and steadier on a busy machine) on one thread."""
    return {"n_jobs": 1} if rows < 50_000 else {}


class _Encoded:
    """Learns the feature columns and category levels at fit; turns any features frame into model input."""

    def fit(self, X: pd.DataFrame) -> _Encoded:
        self.columns_ = feature_columns(X)
        self.categories_ = {c: sorted(str(v) for v in X[c].dropna().unique()) for c in categorical_columns(X)}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for col in self.columns_:
            if col in self.categories_:
                values = X[col].astype(object) if col in X.columns else pd.Series(None, index=X.index)
                known = values.isin(self.categories_[col])
                out[col] = pd.Categorical(values.where(known, None), categories=self.categories_[col])
            elif col in X.columns:
                out[col] = pd.to_numeric(X[col], errors="coerce").astype(np.float64).to_numpy()
            else:
                fill = 0.0 if col.startswith(EVENT_PREFIX) else np.nan
                out[col] = np.full(len(X), fill)
        return pd.DataFrame(out, index=X.index)


def _early(X: pd.DataFrame) -> np.ndarray:
    if EARLY not in X.columns:
        return np.zeros(len(X))
    return np.nan_to_num(X[EARLY].to_numpy(dtype=np.float64))


class _FutureModel:
    """Shared plumbing: learn the future part, add the known early revenue, recalibrate in aggregate."""

    scale_: float = 1.0

    def _fit_future(self, Xe: pd.DataFrame, future: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_future(self, Xe: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y) -> _FutureModel:
        """Fit on matured users: ``y`` is the total-LTV label (``actual_ltv``)."""
        y = np.asarray(y, dtype=np.float64)
        self.encoder_ = _Encoded().fit(X)
        self.feature_names_ = list(self.encoder_.columns_)
        self.event_names_ = list(X.attrs.get("event_names", []))
        self.categoricals_ = list(self.encoder_.categories_)
        self._fit_future(self.encoder_.transform(X), y - _early(X))
        self.scale_ = 1.0
        return self

    def predict_future(self, X: pd.DataFrame) -> np.ndarray:
        """Expected revenue after the send moment (recalibrated)."""
        return self.scale_ * np.clip(self._predict_future(self.encoder_.transform(X)), 0, None)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted LTV over the horizon: early net revenue + predicted future revenue."""
        return _early(X) + self.predict_future(X)

    def recalibrate(self, X: pd.DataFrame, y) -> _FutureModel:
        """Scale the future part so that Σpredicted = Σ``y`` on these matured users."""
        self.scale_ = 1.0
        future_pred = self.predict_future(X).sum()
        future_true = float(np.sum(np.asarray(y, dtype=np.float64) - _early(X)))
        self.scale_ = float(future_true / future_pred) if future_pred > 0 and future_true > 0 else 1.0
        return self

    def feature_importance(self) -> pd.Series:  # pragma: no cover - abstract
        raise NotImplementedError


class HurdleLTV(_FutureModel):
    """P(payer after the send moment) × E[future revenue | payer], LightGBM for both parts.

    The value part regresses ``log1p(future)`` on payers; back-transformed with Duan's smearing factor
    (mean of ``exp(residual)`` on the training payers) so that it estimates a mean, not a median.
    """

    def __init__(self, *, classifier_params: dict | None = None, regressor_params: dict | None = None):
        self.classifier_params = classifier_params
        self.regressor_params = regressor_params

    def _fit_future(self, Xe: pd.DataFrame, future: np.ndarray) -> None:
        from lightgbm import LGBMClassifier, LGBMRegressor

        payer = future > 0
        if payer.sum() < 2 or payer.all():
            raise ValueError("HurdleLTV needs both payers and non-payers after the send moment")
        threads = _threads(len(Xe))
        self.classifier_ = LGBMClassifier(**_lgbm_params(**threads, **(self.classifier_params or {})))
        self.classifier_.fit(Xe, payer.astype(int))
        self.regressor_ = LGBMRegressor(
            **_lgbm_params(**({"min_child_samples": 20} | threads | (self.regressor_params or {})))
        )
        target = np.log1p(future[payer])
        self.regressor_.fit(Xe[payer], target)
        residual = target - self.regressor_.predict(Xe[payer])
        self.smearing_ = float(np.mean(np.exp(residual)))

    def _predict_future(self, Xe: pd.DataFrame) -> np.ndarray:
        p = self.classifier_.predict_proba(Xe)[:, 1]
        value = np.exp(self.regressor_.predict(Xe)) * self.smearing_ - 1
        return p * np.clip(value, 0, None)

    def predict_payer(self, X: pd.DataFrame) -> np.ndarray:
        """P(any revenue after the send moment)."""
        return self.classifier_.predict_proba(self.encoder_.transform(X))[:, 1]

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, both parts summed, largest first."""
        gain = self.classifier_.booster_.feature_importance(
            "gain"
        ) + self.regressor_.booster_.feature_importance("gain")
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


class TweedieLTV(_FutureModel):
    """One LightGBM regression of future revenue with a tweedie objective (mass at zero + heavy tail)."""

    def __init__(self, *, variance_power: float = 1.3, params: dict | None = None):
        self.variance_power = variance_power
        self.params = params

    def _fit_future(self, Xe: pd.DataFrame, future: np.ndarray) -> None:
        from lightgbm import LGBMRegressor

        self.regressor_ = LGBMRegressor(
            **_lgbm_params(
                objective="tweedie",
                tweedie_variance_power=self.variance_power,
                **(_threads(len(Xe)) | (self.params or {})),
            )
        )
        self.regressor_.fit(Xe, np.clip(future, 0, None))

    def _predict_future(self, Xe: pd.DataFrame) -> np.ndarray:
        return self.regressor_.predict(Xe)

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.regressor_.booster_.feature_importance("gain")
        return pd.Series(gain, index=self.feature_names_).sort_values(ascending=False)


class EarlyRevenueMultiple:
    """Baseline: ``k · max(early net revenue, 0)``, ``k = Σ actual LTV / Σ early revenue`` on training users.

    With no early revenue at all (send day 0) ``k`` is 0: the heuristic has nothing to multiply.
    """

    def fit(self, X: pd.DataFrame, y) -> EarlyRevenueMultiple:
        early = np.clip(_early(X), 0, None)
        total = float(np.sum(y))
        self.k_ = total / float(early.sum()) if early.sum() > 0 else 0.0
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.k_ * np.clip(_early(X), 0, None)


MODEL_KINDS = {"hurdle": HurdleLTV, "tweedie": TweedieLTV}


def make_model(kind: str, **params: Any) -> _FutureModel:
    """A fresh estimator by name (``hurdle`` or ``tweedie``)."""
    try:
        return MODEL_KINDS[kind](**params)
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}") from None
