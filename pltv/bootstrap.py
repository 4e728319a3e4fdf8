"""Bootstrap statistics, users resampled with replacement in bounded memory: :func:`resamples` (the index
chunks every interval here draws from), the lift of one arm over another and its percentile interval."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pltv.errors import InsufficientDataError

RESAMPLE_CELLS = 2_000_000  # indices drawn at once: bounded memory on large cohorts


def resamples(size: int, n_boot: int, rng: np.random.Generator) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, idx)`` chunks of ``n_boot`` resamples of ``size`` rows: ``idx[k]`` is resample ``start + k``."""
    step = max(1, RESAMPLE_CELLS // max(size, 1))
    for start in range(0, n_boot, step):
        yield start, rng.integers(0, size, size=(min(step, n_boot - start), size))


def _boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``x`` (with replacement), in bounded memory."""
    out = np.empty(n_boot)
    for start, idx in resamples(x.size, n_boot, rng):
        out[start : start + len(idx)] = x[idx].mean(axis=1)
    return out


def lift_draws(treatment, control, *, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap draws of ``mean(treatment) / mean(control) − 1``, users resampled within each arm."""
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if t.size == 0 or c.size == 0:
        raise InsufficientDataError("the lift needs users in both arms")
    rng = np.random.default_rng(seed)
    mt, mc = _boot_means(t, n_boot, rng), _boot_means(c, n_boot, rng)
    ok = mc > 0
    return mt[ok] / mc[ok] - 1


def lift_interval(
    treatment, control, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """``mean(treatment) / mean(control) − 1`` and its percentile bootstrap interval at ``level``."""
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if t.size == 0 or c.size == 0 or c.mean() <= 0:
        raise InsufficientDataError("the lift needs users in both arms and revenue in the control arm")
    draws = lift_draws(t, c, n_boot=n_boot, seed=seed)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(t.mean() / c.mean() - 1), (float(lo), float(hi))
