"""Run reports: how today's sent values compare with the holdout the event was designed on.

The population stability index (PSI) compares two distributions over fixed bins:
``PSI = sum((a - e) * ln(a / e))`` with ``e`` the reference share and ``a`` the observed share per bin.
Rule of thumb (credit-scoring practice): < 0.1 stable, 0.1-0.2 some shift, > 0.2 a shift worth a look.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPS = 1e-4


def reference_bins(values: Sequence[float], bins: int = 10) -> dict[str, tuple[float, ...]]:
    """Interior quantile edges of ``values`` and the share of values per bin (ties make shares unequal)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {}
    edges = np.unique(np.round(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]), 6))
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
    return {"edges": tuple(float(e) for e in edges), "shares": tuple(float(c) for c in counts / v.size)}


def population_stability_index(
    edges: Sequence[float], reference_shares: Sequence[float], values: Sequence[float]
) -> float:
    """PSI of ``values`` against a reference given as bin ``edges`` and ``reference_shares``."""
    v = np.asarray(values, dtype=float)
    e = np.clip(np.asarray(reference_shares, dtype=float), _EPS, None)
    if v.size == 0:
        return 0.0
    counts = np.bincount(np.searchsorted(np.asarray(edges), v, side="right"), minlength=len(e))
    a = np.clip(counts / v.size, _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))
