"""Identity: normalize and SHA-256 the ``user_data`` match keys of many users at once, column-wise.

:func:`hash_identifiers` — a users DataFrame (data-contract identifier columns,
:data:`pltv.contract.IDENTIFIER_KEYS`) in, a DataFrame of ``user_data``-ready columns (``em``, ``ph``,
…, ``fbc``) out, plus an :class:`IdentityReport` counting what was kept and what was dropped, per key
and reason. Each column is normalized over its *unique* values (phone, state and zip over unique
``(value, country)`` pairs) by :mod:`activation.normalization` (the rules), then hashed once per unique
normalized value; large inputs share that work with forked workers (:mod:`activation.workers`).

An invalid value drops that key for that user and is counted; it never raises and never appears in any
message or log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from activation.meta import USER_DATA_KEYS
from activation.normalization import REGIONAL, Prepared, prepare_values
from activation.workers import PARALLEL_MIN_UNIQUES, SharedWork, workers
from pltv.contract import IDENTIFIER_KEYS

#: Data-contract column → ``user_data`` key.
COLUMN_KEYS: Mapping[str, str] = IDENTIFIER_KEYS

# --------------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityReport:
    """What hashing kept and dropped: counts only, never values."""

    rows: int
    present: Mapping[str, int] = field(default_factory=dict)  # non-empty input values per key
    kept: Mapping[str, int] = field(default_factory=dict)  # usable values per key
    dropped: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (key, reason) -> count

    def coverage(self) -> dict[str, float]:
        """Share of rows with a usable value, per key."""
        return {k: (self.kept.get(k, 0) / self.rows if self.rows else 0.0) for k in USER_DATA_KEYS}

    def render(self) -> str:
        """A short text table: key, kept/rows, dropped by reason."""
        lines = [f"identity: rows={self.rows:,}"]
        for k in USER_DATA_KEYS:
            if not self.present.get(k):
                continue
            drops = ", ".join(f"{r}={n:,}" for (kk, r), n in sorted(self.dropped.items()) if kk == k)
            lines.append(
                f"  {k:<18} kept={self.kept.get(k, 0):>9,}  {('dropped: ' + drops) if drops else ''}"
            )
        return "\n".join(lines)


def _factorize(values: Any) -> tuple[np.ndarray, list[Any]]:
    """Integer codes per row (-1 for missing) and the unique values, in order of appearance."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), uniques.tolist()


def _column_values(
    key: str,
    codes: np.ndarray,
    prepared: Sequence[Prepared],
    present: dict[str, int],
    kept: dict[str, int],
    dropped: dict[tuple[str, str], int],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (normalized, sent) object arrays from the per-unique outcomes; counts per row, not unique.

    ``codes`` index ``prepared`` per row (-1: missing). Blank values count as missing.
    """
    n_u = len(prepared)
    normalized: list[str | None] = [p[0] for p in prepared]
    sent: list[str | None] = [p[1] for p in prepared]
    normalized.append(None)  # the extra slot serves code -1
    sent.append(None)
    rows = np.bincount(codes[codes >= 0], minlength=n_u) if n_u else np.zeros(0, dtype=np.int64)
    blank = np.fromiter((p == (None, None, None) for p in prepared), dtype=bool, count=n_u)
    present[key] = int(rows[~blank].sum())
    ok = np.fromiter((p[0] is not None for p in prepared), dtype=bool, count=n_u)
    kept[key] = int(rows[ok].sum())
    for j, p in enumerate(prepared):
        if p[2] is not None:
            dropped[(key, p[2])] = dropped.get((key, p[2]), 0) + int(rows[j])
    norm_arr = np.array(normalized, dtype=object)
    sent_arr = np.array(sent, dtype=object)
    return norm_arr[codes], sent_arr[codes]


def hash_identifiers(
    users: pd.DataFrame, *, default_region: str | None = "US", parallel: bool = True
) -> tuple[pd.DataFrame, IdentityReport]:
    """Normalize + hash every identifier column of ``users`` into ``user_data``-ready columns.

    Input columns are the data contract's (``email``, ``phone``, …; ``user_data`` key names are also
    accepted). The output has the input's index and one column per present key (``em``, ``ph``, …),
    holding the value to send (hash or plain) or ``None``. Never raises for a bad value.

    Each column is factorized once; every unique value (for ``ph``/``st``/``zp``: every unique
    (value, user's country) pair) is normalized and hashed once, then mapped back to the rows.
    With ``parallel`` (the default), at least :data:`PARALLEL_MIN_UNIQUES` unique values and more than
    one CPU, forked worker processes share that work with the caller; the result is the same as with
    ``parallel=False`` (tested).
    """
    columns: dict[str, pd.Series] = {}
    for col in users.columns:
        key = COLUMN_KEYS.get(col, col if col in USER_DATA_KEYS else None)
        if key is not None and key not in columns:
            columns[key] = users[col]
    present: dict[str, int] = {}
    kept: dict[str, int] = {}
    dropped: dict[tuple[str, str], int] = {}
    out: dict[str, np.ndarray] = {}
    n = len(users)
    country_codes = np.full(n, -1, dtype=np.int64)
    countries: list[str] = []
    if "country" in columns:  # first: it is the phone region and decides the US rules of st/zp
        codes, uniques = _factorize(columns["country"])
        prepared = prepare_values("country", uniques, None, default_region)
        normalized, out["country"] = _column_values("country", codes, prepared, present, kept, dropped)
        country_codes, countries = _factorize(normalized)
    todo: list[tuple[str, np.ndarray, list[Any], list[str | None] | None]] = []
    for key in ("ph", *(k for k in USER_DATA_KEYS if k not in ("ph", "country"))):
        if key not in columns:
            continue
        codes, uniques = _factorize(columns[key])
        pair_country: list[str | None] | None = None
        if key in REGIONAL:
            # one code per (value, country) pair: value code * (countries + 1) + country code + 1
            width = len(countries) + 1
            valid = codes >= 0
            pair_codes, pairs = _factorize(codes[valid] * width + country_codes[valid] + 1)
            codes = np.full(n, -1, dtype=np.int64)
            codes[valid] = pair_codes
            pair_country = [countries[p % width - 1] if p % width else None for p in pairs]
            uniques = [uniques[p // width] for p in pairs]
        todo.append((key, codes, uniques, pair_country))
    n_workers = workers() if parallel else 0
    if n_workers and sum(len(t[2]) for t in todo) >= PARALLEL_MIN_UNIQUES:
        shared = SharedWork([(k, u, c) for k, _, u, c in todo], default_region, n_workers)
        try:
            prepared_by_key = shared.results()
        finally:
            shared.close()
    else:
        prepared_by_key = {k: prepare_values(k, u, c, default_region) for k, _, u, c in todo}
    for key, codes, _, _ in todo:
        prepared = prepared_by_key.get(key, [])
        _, out[key] = _column_values(key, codes, prepared, present, kept, dropped)
    keys = [k for k in USER_DATA_KEYS if k in out]
    frame = pd.DataFrame({k: pd.Series(out[k], index=users.index, dtype=object) for k in keys}, columns=keys)
    return frame, IdentityReport(rows=n, present=present, kept=kept, dropped=dropped)
