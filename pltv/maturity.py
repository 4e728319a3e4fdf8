"""How revenue matures: the share of horizon revenue that matured cohorts earn by each day after signup.

Both readouts need it before a cohort's horizon has passed: the calibration readout compares the revenue
realized by day ``m`` with the sent value scaled by the share earned by ``m``; the experiment readout
projects the unrealized rest of a user's horizon from the model's prediction. The share comes from the
source itself: every user whose horizon has matured by ``as_of`` (``signup_at + horizon_days <= as_of``),
the same population training learns from, pooled (Σ revenue by day ``m`` / Σ revenue by the horizon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np

from pltv.errors import InsufficientDataError
from pltv.features import to_utc_naive

_SQL = """
WITH matured AS (
    SELECT user_id, signup_at FROM users WHERE signup_at + to_days(CAST($horizon AS INTEGER)) <= $as_of
),
revenue AS (
    SELECT CAST(floor((epoch(t.occurred_at) - epoch(m.signup_at)) / 86400) AS INTEGER) AS day, t.revenue
    FROM transactions t JOIN matured m USING (user_id)
    WHERE t.occurred_at >= m.signup_at AND t.occurred_at < m.signup_at + to_days(CAST($horizon AS INTEGER))
),
final AS (SELECT day, sum(revenue) AS revenue FROM revenue GROUP BY day)
SELECT * FROM final ORDER BY day
"""


@dataclass(frozen=True)
class MaturityCurve:
    """``share[k]``: the share of horizon revenue earned in ``[signup_at, signup_at + k days)``."""

    share: np.ndarray  # length horizon_days + 1; share[0] = 0, share[horizon_days] = 1
    horizon_days: int
    users: int  # matured users it was measured on
    signup_from: datetime | None
    signup_to: datetime | None

    def at(self, days) -> np.ndarray:
        """The share earned by ``days`` (whole days; clipped to ``[0, horizon_days]``)."""
        k = np.clip(np.floor(np.asarray(days, dtype=float)), 0, self.horizon_days).astype(int)
        return self.share[k]

    def describe(self) -> str:
        """Where the share comes from, for the readouts' output."""
        span = f"{self.signup_from:%Y-%m-%d}..{self.signup_to:%Y-%m-%d}" if self.signup_from else "none"
        return (
            f"share of {self.horizon_days}-day revenue by day m, pooled over the {self.users:,} users of the "
            f"source whose horizon matured (signups {span})"
        )


def maturity_curve(con: duckdb.DuckDBPyConnection, *, horizon_days: int, as_of) -> MaturityCurve:
    """The pooled maturity curve of the source's matured users (see the module docstring)."""
    as_of = to_utc_naive(as_of)
    params = {"horizon": int(horizon_days), "as_of": as_of}
    rows = con.execute(_SQL, params).fetchall()
    users, first, last = con.execute(
        "SELECT count(*), min(signup_at), max(signup_at) FROM users "
        "WHERE signup_at + to_days(CAST($horizon AS INTEGER)) <= $as_of",
        params,
    ).fetchall()[0]
    by_day = np.zeros(horizon_days)
    for day, revenue in rows:
        by_day[day] = revenue
    total = by_day.sum()
    if not users or total <= 0:
        raise InsufficientDataError(
            f"no user of the source has a matured {horizon_days}-day horizon with revenue before {as_of:%Y-%m-%d}: "
            "the share of horizon revenue earned by day m cannot be measured (use a longer history or a "
            "shorter horizon)"
        )
    share = np.concatenate([[0.0], np.cumsum(by_day) / total])
    share[-1] = 1.0
    return MaturityCurve(share, int(horizon_days), int(users), first, last)
