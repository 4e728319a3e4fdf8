"""Sent-vs-realized calibration: the values Meta received against the revenue that followed.

The ledger keeps no user ids. The users behind its ``sent`` rows are found from the source by recomputing
what identifies their events: :func:`activation.event_id_for` of (the row's ``spec_id``, each user
of the source) — the daily job's own derivation, called rather than copied, so a change of derivation
follows. Sent events no source user reproduces are counted as unmatched.

Over the matched users whose horizon has matured by the source's ``as_of`` (``signup_at + horizon_days <=
as_of``), per send week (Monday) and overall: users, Σ sent value, Σ realized horizon revenue,
**bias = Σ sent / Σ realized − 1** with a bootstrap interval (users resampled), normalized Gini of the
realized revenue ordered by the sent value, and (overall) a decile table.

For users not yet matured, the same at a partial maturity ``m`` (default 30 and 90 days): the realized
revenue by ``m`` against the sent value × the share of horizon revenue that matured cohorts earn by ``m``
(:mod:`pltv.maturity`: pooled over the source's users whose horizon matured, the population training learns
from). The share's own noise is in the interval: each bootstrap draw resamples those reference users too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from activation import event_id_for  # the daily job's own derivation (public API; follows its moves)
from activation.errors import ActivationError, LedgerError
from activation.ledger import TABLE
from pltv.errors import InsufficientDataError
from pltv.features import as_of_or_default
from pltv.maturity import maturity_curve
from pltv.metrics import decile_table, normalized_gini


class ReadoutError(ActivationError, ValueError):
    """The calibration readout cannot be computed (no ledger, nothing sent, nothing matched)."""


@dataclass(frozen=True, kw_only=True)
class CalibrationOptions:
    horizon_days: int = 365
    partial_days: tuple[int, ...] = (30, 90)
    event_name: str | None = None  # default: the event name with the most sent events
    as_of: datetime | str | None = None  # default: the day after the source's data ends
    level: float = 0.95
    n_boot: int = 2000
    seed: int = 0


def sent_events(ledger: str | Path) -> pd.DataFrame:
    """The ledger's ``sent`` rows (``event_id``, ``spec_id``, ``send_date``, ``event_name``, ``value``),
    read through a read-only connection."""
    path = Path(ledger)
    if not path.is_file():
        raise ReadoutError(f"no ledger at {path}: run `pltv score-and-send` first (or pass --ledger)")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise LedgerError(f"cannot open the delivery ledger {path} ({type(exc).__name__})") from exc
    try:
        return con.execute(
            f"SELECT event_id, spec_id, send_date, event_name, value FROM {TABLE} WHERE state = 'sent'"
        ).df()
    except duckdb.Error as exc:
        raise LedgerError(f"{path} is not a delivery ledger ({type(exc).__name__})") from exc
    finally:
        con.close()


def match_users(users: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """``events`` with the ``user_id`` whose event id they carry (NaN when no user of ``users`` does)."""
    ids = users["user_id"].astype(str).tolist()
    keys = [
        pd.DataFrame({"event_id": [event_id_for(spec_id, u) for u in ids], "user_id": ids})
        for spec_id in events["spec_id"].unique()
    ]
    lookup = pd.concat(keys, ignore_index=True) if keys else pd.DataFrame(columns=["event_id", "user_id"])
    return events.merge(lookup, on="event_id", how="left")


# ---- pure statistics ------------------------------------------------------------------------------------


def _boot_index(rng: np.random.Generator, n: int, n_boot: int):
    step = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, step):
        yield start, rng.integers(0, n, size=(min(step, n_boot - start), n))


def _boot_sums(rng: np.random.Generator, n_boot: int, *columns: np.ndarray) -> list[np.ndarray]:
    """Per bootstrap draw, the sums of each of ``columns`` (rows resampled together)."""
    out = [np.empty(n_boot) for _ in columns]
    for start, idx in _boot_index(rng, len(columns[0]), n_boot):
        for col, acc in zip(columns, out, strict=True):
            acc[start : start + len(idx)] = col[idx].sum(axis=1)
    return out


def bias_interval(
    sent, realized, *, scale=None, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """``scale × Σ sent / Σ realized − 1`` and its percentile bootstrap interval (users resampled).

    ``scale`` is a number, or a pair of arrays ``(part, whole)`` over reference users: the share
    ``Σ part / Σ whole``, resampled in each draw as well (its own noise enters the interval)."""
    s, r = np.asarray(sent, dtype=float), np.asarray(realized, dtype=float)
    rng = np.random.default_rng(seed)
    if scale is None or np.isscalar(scale):
        factor, draws_factor = float(scale or 1.0), None
    else:
        part, whole = (np.asarray(a, dtype=float) for a in scale)
        factor = part.sum() / whole.sum()
        bp, bw = _boot_sums(rng, n_boot, part, whole)
        draws_factor = bp / np.where(bw > 0, bw, np.nan)
    point = factor * s.sum() / r.sum() - 1 if r.sum() > 0 else float("nan")
    bs, br = _boot_sums(rng, n_boot, s, r)
    draws = (draws_factor if draws_factor is not None else factor) * bs / np.where(br > 0, br, np.nan) - 1
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float(point), (float("nan"), float("nan"))
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(point), (float(lo), float(hi))


# ---- the readout ----------------------------------------------------------------------------------------


@dataclass
class CalibrationRow:
    """One send week (or ``overall``) at one maturity (``horizon`` or ``m`` days)."""

    week: str
    users: int
    sum_sent: float  # at partial maturity: Σ sent × share(m)
    sum_realized: float
    bias: float
    bias_ci: tuple[float, float]
    gini: float | None


@dataclass
class CalibrationReadout:
    as_of: datetime
    horizon_days: int
    level: float
    sent_events: int
    matched: int
    unmatched: int
    matured_users: int
    users: int  # matured users in the readout (the headline population)
    bias: float | None
    bias_ci: tuple[float, float] | None
    gini: float | None
    weeks: list[CalibrationRow]  # matured users per send week
    overall: CalibrationRow | None = None
    deciles: list[dict[str, float]] = field(default_factory=list)
    partial: dict[int, dict[str, Any]] = field(default_factory=dict)  # m -> share, overall, weeks
    share_source: str | None = None
    event_name: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def row(r: CalibrationRow) -> dict[str, Any]:
            return {**r.__dict__, "bias_ci": list(r.bias_ci)}

        return {
            "as_of": f"{self.as_of:%Y-%m-%d}",
            "event_name": self.event_name,
            "horizon_days": self.horizon_days,
            "level": self.level,
            "sent_events": self.sent_events,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "users": self.users,
            "bias": self.bias,
            "bias_ci": list(self.bias_ci) if self.bias_ci else None,
            "gini": self.gini,
            "weeks": [row(r) for r in self.weeks],
            "overall": row(self.overall) if self.overall else None,
            "deciles": self.deciles,
            "partial": {
                str(m): {
                    **p,
                    "overall": row(p["overall"]) if p["overall"] else None,
                    "weeks": [row(r) for r in p["weeks"]],
                }
                for m, p in self.partial.items()
            },  # fmt: skip
            "share_source": self.share_source,
            "notes": self.notes,
        }

    def render(self) -> str:
        pct = int(round(self.level * 100))
        lines = [
            f"sent {self.event_name} values vs realized revenue as of {self.as_of:%Y-%m-%d} "
            f"({self.horizon_days}-day horizon): "
            f"{self.sent_events:,} sent events, {self.matched:,} matched to a source user, "
            f"{self.unmatched:,} not matched",
        ]

        def table(rows: list[CalibrationRow], sent_label: str) -> list[str]:
            out = [f"  {'send week':<10} {'users':>7} {sent_label:>12} {'Σ realized':>12} {'bias':>8} "
                   f"{pct} % interval      {'Gini':>6}"]  # fmt: skip
            for r in rows:
                gini = f"{r.gini:6.3f}" if r.gini is not None and np.isfinite(r.gini) else f"{'n/a':>6}"
                out.append(
                    f"  {r.week:<10} {r.users:7,} {r.sum_sent:12,.0f} {r.sum_realized:12,.0f} {r.bias:+8.1%} "
                    f"[{r.bias_ci[0]:+7.1%}, {r.bias_ci[1]:+7.1%}] {gini}"
                )
            return out

        if self.users:
            lines.append(f"matured ({self.horizon_days} days since signup): {self.users:,} users")
            lines.extend(table([*self.weeks, self.overall], "Σ sent"))
            if self.deciles:
                lines.append("  deciles of sent value: " + "  ".join(
                    f"{int(d['decile'])}: {d['mean_predicted']:.0f}/{d['mean_actual']:.0f}" for d in self.deciles
                ) + "  (mean sent / mean realized)")  # fmt: skip
        else:
            lines.append(f"matured ({self.horizon_days} days since signup): none yet")
        for m, p in self.partial.items():
            if p["overall"] is None:
                lines.append(f"partial maturity {m} days: no unmatured sent user has had {m} days yet")
                continue
            lines.append(
                f"partial maturity {m} days (not yet matured users): sent x share {p['share']:.3f} "
                f"vs realized by day {m}"
            )
            lines.extend(table([*p["weeks"], p["overall"]], f"Σ sent x {p['share']:.2f}"))
        if self.share_source:
            lines.append(f"  share: {self.share_source}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _row(week: str, frame: pd.DataFrame, sent: str, realized: str, options: CalibrationOptions, scale=None):
    s, r = frame[sent].to_numpy(float), frame[realized].to_numpy(float)
    bias, ci = bias_interval(s, r, scale=scale, level=options.level, n_boot=options.n_boot, seed=options.seed)
    factor = 1.0 if scale is None else scale[0].sum() / scale[1].sum()
    gini = normalized_gini(r, s) if len(frame) > 1 and r.sum() > 0 else None
    return CalibrationRow(week, len(frame), float(factor * s.sum()), float(r.sum()), bias, ci,
                          None if gini is None else float(gini))  # fmt: skip


def _rows(frame: pd.DataFrame, sent: str, realized: str, options: CalibrationOptions, scale=None):
    """One row per send week, then the overall row."""
    weeks = [
        _row(f"{week:%Y-%m-%d}", part, sent, realized, options, scale)
        for week, part in frame.groupby("send_week", sort=True)
    ]
    return weeks, _row("overall", frame, sent, realized, options, scale)


_REVENUE_SQL = """
WITH u AS (SELECT i.user_id, s.signup_at FROM _readout_users i JOIN users s USING (user_id)),
final AS (
    SELECT u.user_id, u.signup_at, (epoch($as_of) - epoch(u.signup_at)) / 86400.0 AS age_days,
           {windows}
    FROM u LEFT JOIN transactions t
        ON t.user_id = u.user_id AND t.occurred_at >= u.signup_at AND t.occurred_at < $as_of
    GROUP BY u.user_id, u.signup_at
)
SELECT * FROM final
"""


def _revenue(
    con: duckdb.DuckDBPyConnection, user_ids: pd.Series, days: list[int], as_of: datetime
) -> pd.DataFrame:
    """Per user: ``signup_at``, ``age_days`` at ``as_of`` and net revenue ``rev_<d>`` by each of ``days``."""
    windows = ",\n           ".join(
        f"coalesce(sum(t.revenue) FILTER (WHERE t.occurred_at < u.signup_at + to_days({int(d)})), 0) AS rev_{int(d)}"
        for d in days
    )
    con.register("_readout_users", pd.DataFrame({"user_id": user_ids.astype(str).unique()}))
    try:
        return con.execute(_REVENUE_SQL.replace("{windows}", windows), {"as_of": as_of}).df()
    finally:
        con.unregister("_readout_users")


def read_calibration(
    con: duckdb.DuckDBPyConnection, events: pd.DataFrame, options: CalibrationOptions, *, data_end=None
) -> CalibrationReadout:
    """The readout over a source's canonical tables (``con``) and the ledger's sent rows (``events``)."""
    as_of = as_of_or_default(options.as_of, data_end)
    if as_of is None:
        raise ReadoutError("the calibration readout needs as_of or the source's data_end")
    h = int(options.horizon_days)
    partial_days = sorted({int(m) for m in options.partial_days if 0 < int(m) < h})
    if events.empty:
        raise ReadoutError("the ledger holds no sent events yet: nothing to compare with realized revenue")
    names = events["event_name"].value_counts()
    name = options.event_name or str(names.index[0])
    if name not in names.index:
        raise ReadoutError(
            f"the ledger holds no sent {name!r} events (it has {', '.join(map(repr, names.index))})"
        )
    others = names.drop(name)
    events = events[events["event_name"] == name]
    users = con.execute("SELECT user_id FROM users").df()
    matched = match_users(users, events)
    found = matched[matched["user_id"].notna()].copy()
    readout = CalibrationReadout(
        as_of=as_of, horizon_days=h, level=options.level, sent_events=len(events), matched=len(found),
        unmatched=len(events) - len(found), matured_users=0, users=0, bias=None, bias_ci=None, gini=None,
        weeks=[],
    )  # fmt: skip
    readout.event_name = name
    if len(others):
        readout.notes.append(
            "read only "
            + repr(name)
            + "; also sent: "
            + ", ".join(f"{k!r} ({v:,})" for k, v in others.items())
            + " (each event name is its own signal)"
        )
    if readout.unmatched:
        readout.notes.append(
            f"{readout.unmatched:,} sent events match no user of the source (users deleted or filtered from "
            "this export, or another source): left out"
        )
    if found.empty:
        return readout
    repeated = found["user_id"].duplicated(keep="last")
    if repeated.any():  # the design sends one value per user and event name; a repeat would count twice
        found = found.sort_values("send_date", kind="stable")
        found = found[~found["user_id"].duplicated(keep="last")]
        readout.notes.append(
            f"{int(repeated.sum()):,} users had more than one sent event: the latest is read"
        )
    revenue = _revenue(con, found["user_id"], [*partial_days, h], as_of)
    frame = found.merge(revenue, on="user_id", how="inner")
    send_date = pd.to_datetime(frame["send_date"])
    frame["send_week"] = send_date - pd.to_timedelta(send_date.dt.day_of_week, unit="D")
    matured = frame["age_days"] >= h
    done = frame[matured]
    readout.matured_users = readout.users = len(done)
    if len(done):
        readout.weeks, overall = _rows(done, "value", f"rev_{h}", options)
        readout.overall = overall
        readout.bias, readout.bias_ci, readout.gini = overall.bias, overall.bias_ci, overall.gini
        if len(done) >= 10 and done[f"rev_{h}"].sum() > 0:
            table = decile_table(done[f"rev_{h}"].to_numpy(float), done["value"].to_numpy(float))
            readout.deciles = table.to_dict(orient="records")
    if partial_days:
        try:
            curve = maturity_curve(con, horizon_days=h, as_of=as_of)
        except InsufficientDataError as exc:
            readout.notes.append(f"no partial-maturity view: {exc}")
            return readout
        readout.share_source = curve.describe()
        reference = con.execute(
            "SELECT user_id FROM users WHERE signup_at + to_days(CAST($h AS INTEGER)) <= $as_of",
            {"h": h, "as_of": as_of},
        ).df()
        ref = _revenue(con, reference["user_id"], [*partial_days, h], as_of)
        for m in partial_days:
            part = frame[~matured & (frame["age_days"] >= m)]
            scale = (ref[f"rev_{m}"].to_numpy(float), ref[f"rev_{h}"].to_numpy(float))
            weeks, overall = _rows(part, "value", f"rev_{m}", options, scale) if len(part) else ([], None)
            readout.partial[m] = {"share": float(curve.at(m)), "users": len(part), "overall": overall,
                                  "weeks": weeks}  # fmt: skip
    return readout


def calibration_readout(source, ledger: str | Path, options: CalibrationOptions) -> CalibrationReadout:
    """Open ``source`` (a :class:`~pltv.config.SourceConfig` or path), read the ledger, compare."""
    from pltv.sources import open_source

    events = sent_events(ledger)
    with open_source(source) as src:
        return read_calibration(src.con, events, options, data_end=src.quality.data_end)
