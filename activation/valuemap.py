"""Value mappings: how a calibrated pLTV becomes the ``value`` Meta optimizes on.

A mapping is fitted on the model's out-of-time holdout and then applied, unchanged, to every day's scores;
its parameters are plain numbers so that an :class:`~activation.spec.EventSpec` can pin them. Every
mapping is monotone non-decreasing in the prediction and floored at a small positive amount (Meta rejects
zero and negative pLTV values).

- ``calibrated`` — the calibrated pLTV as is (floored).
- ``capped`` — the calibrated pLTV capped at a high holdout percentile, so a few extreme predictions do
  not dominate bidding (floored).
- ``decile_means`` — the holdout's mean actual LTV of the prediction decile the user falls in (the
  per-decile multiplier approach of Google's Marketing Analytics Jumpstart), made monotone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from activation.errors import EventSettingsError

KINDS = ("calibrated", "capped", "decile_means")
DEFAULT_FLOOR = 1.0
DEFAULT_CAP_QUANTILE = 0.99


@dataclass(frozen=True)
class ValueMapping:
    """A fitted mapping: ``kind`` plus the numbers that define it."""

    kind: str
    floor: float = DEFAULT_FLOOR
    cap: float | None = None
    edges: tuple[float, ...] = field(default=())  # decile_means: prediction cut points (9, ascending)
    values: tuple[float, ...] = field(default=())  # decile_means: value per bucket (10, non-decreasing)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EventSettingsError(f"value mapping kind must be one of {KINDS}, got {self.kind!r}")
        if not self.floor > 0:
            raise EventSettingsError(f"value mapping floor must be positive, got {self.floor}")
        if self.kind == "capped" and (self.cap is None or self.cap < self.floor):
            raise EventSettingsError("a capped mapping needs a cap at or above its floor")
        if self.kind == "decile_means" and (
            len(self.values) != len(self.edges) + 1 or np.any(np.diff(self.values) < 0)
        ):
            raise EventSettingsError("decile_means needs len(values) == len(edges) + 1, non-decreasing")

    def apply(self, predicted: np.ndarray) -> np.ndarray:
        """Map predictions to positive values (vectorized)."""
        p = np.nan_to_num(np.asarray(predicted, dtype=float), nan=0.0)
        if self.kind == "capped":
            p = np.minimum(p, self.cap)
        elif self.kind == "decile_means":
            p = np.asarray(self.values)[np.searchsorted(np.asarray(self.edges), p, side="right")]
        return np.round(np.maximum(p, self.floor), 2)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "floor": self.floor}
        if self.kind == "capped":
            out["cap"] = self.cap
        if self.kind == "decile_means":
            out["edges"] = list(self.edges)
            out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueMapping:
        return cls(
            kind=data["kind"],
            floor=float(data.get("floor", DEFAULT_FLOOR)),
            cap=None if data.get("cap") is None else float(data["cap"]),
            edges=tuple(float(x) for x in data.get("edges", ())),
            values=tuple(float(x) for x in data.get("values", ())),
        )


def _r(x: float) -> float:
    """Round fitted parameters so that the spec's JSON (and so its id) is stable across platforms."""
    return float(round(float(x), 4))


def fit_mapping(
    kind: str,
    predicted: np.ndarray,
    actual: np.ndarray,
    *,
    floor: float = DEFAULT_FLOOR,
    cap_quantile: float = DEFAULT_CAP_QUANTILE,
) -> ValueMapping:
    """Fit a mapping of ``kind`` on holdout predictions and actual LTVs."""
    predicted = np.asarray(predicted, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if kind == "calibrated":
        return ValueMapping(kind, floor=floor)
    if kind == "capped":
        return ValueMapping(kind, floor=floor, cap=_r(max(np.quantile(predicted, cap_quantile), floor)))
    if kind == "decile_means":
        edges = np.quantile(predicted, np.linspace(0.1, 0.9, 9))
        bucket = np.searchsorted(edges, predicted, side="right")
        means = np.array([actual[bucket == b].mean() if np.any(bucket == b) else np.nan for b in range(10)])
        means = np.nan_to_num(means, nan=0.0)
        monotone = np.maximum.accumulate(np.maximum(means, floor))  # isotonic from below, floored
        return ValueMapping(
            kind, floor=floor, edges=tuple(_r(e) for e in edges), values=tuple(_r(v) for v in monotone)
        )
    raise EventSettingsError(f"value mapping kind must be one of {KINDS}, got {kind!r}")
