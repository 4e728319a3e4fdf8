"""Run history: one row per daily run in the ledger file (table ``capi_runs``), and the warnings it supports.

A row holds what the run's report said — counts by outcome and skip reason, value quantiles, PSI against
the design's holdout, per-key match coverage and the EMQ-style estimate, invalid identifiers per key — and
the trailing-7-day sent volume beside what the spec expected. Dry runs are recorded, marked ``dry_run``,
and left out of volumes and trends (nothing was sent).

:func:`run_warnings` is pure: it reads the history frame and says, with the number, when

- the trailing week's volume is under Meta's thresholds (100 per week for the dataset, ~50 per ad set),
- the latest run's PSI is above 0.2,
- a key's coverage is more than 10 points below its trailing mean (the previous runs, up to 7, weighted by
  their events), and by more than two binomial standard errors of the run's own event count (a handful of
  events swings by more than 10 points by chance),
- the latest run had failures, unconfirmed or expired events, or Meta stopped it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

RUNS_TABLE = "capi_runs"
DATASET_WEEKLY_MIN = 100  # Meta's pLTV: >= 100 conversions per week for the dataset
AD_SET_WEEKLY_MIN = 50  # the learning phase: ~50 optimization events per ad set per week
PSI_WARNING = 0.2
COVERAGE_DROP = 0.10  # a key's coverage this far under its trailing mean is a warning
TRAILING_RUNS = 7

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
    run_id              VARCHAR PRIMARY KEY,
    run_date            DATE NOT NULL,
    recorded_at         TIMESTAMP NOT NULL,
    dry_run             BOOLEAN NOT NULL,
    spec_id             VARCHAR NOT NULL,
    model_version       VARCHAR,
    eligible            INTEGER NOT NULL,
    planned             INTEGER NOT NULL,
    sent                INTEGER NOT NULL,
    skipped             INTEGER NOT NULL,
    skipped_by_reason   VARCHAR NOT NULL,  -- JSON {{reason: count}}
    failed              INTEGER NOT NULL,
    unconfirmed         INTEGER NOT NULL,
    expired             INTEGER NOT NULL,
    deferred            INTEGER NOT NULL,
    value_p10           DOUBLE,
    value_p50           DOUBLE,
    value_p90           DOUBLE,
    value_max           DOUBLE,
    psi                 DOUBLE,
    coverage            VARCHAR NOT NULL,  -- JSON {{key: share of planned events carrying it}}
    emq_estimate        DOUBLE,
    invalid_identifiers VARCHAR NOT NULL,  -- JSON {{key: count dropped as invalid}}
    volume_7d           INTEGER NOT NULL,  -- sent over the 7 run dates ending with this one (live runs)
    expected_weekly     DOUBLE,            -- the spec's expected weekly volume
    stopped             VARCHAR            -- why Meta stopped the run (error class and code), else NULL
)
"""
_JSON = ("skipped_by_reason", "coverage", "invalid_identifiers")
COLUMNS = (
    "run_id", "run_date", "recorded_at", "dry_run", "spec_id", "model_version", "eligible", "planned", "sent",
    "skipped", "skipped_by_reason", "failed", "unconfirmed", "expired", "deferred", "value_p10", "value_p50",
    "value_p90", "value_max", "psi", "coverage", "emq_estimate", "invalid_identifiers", "volume_7d",
    "expected_weekly", "stopped",
)  # fmt: skip


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_SCHEMA)


def _trailing_sent(con: duckdb.DuckDBPyConnection, run_date: date, run_id: str) -> int:
    """Sent by the other live runs of the 7 run dates ending with ``run_date`` (earlier runs of the same date
    included: a re-run sends only what is still owed); the current run adds its own."""
    row = con.execute(
        f"SELECT coalesce(sum(sent), 0) FROM {RUNS_TABLE} WHERE NOT dry_run AND run_id <> $run "
        "AND run_date > CAST($d AS DATE) - INTERVAL 7 DAY AND run_date <= CAST($d AS DATE)",
        {"d": run_date, "run": run_id},
    ).fetchall()
    return int(row[0][0])


def record_run(con: duckdb.DuckDBPyConnection, record: Mapping[str, Any]) -> dict[str, Any]:
    """Insert one run's row (``volume_7d`` is computed here from the earlier rows); returns the row."""
    ensure_table(con)
    row = {c: record.get(c) for c in COLUMNS}
    row["recorded_at"] = row["recorded_at"] or datetime.now()
    for c in _JSON:
        row[c] = json.dumps(dict(record.get(c) or {}), sort_keys=True)
    for c in ("eligible", "planned", "sent", "skipped", "failed", "unconfirmed", "expired", "deferred"):
        row[c] = int(row[c] or 0)
    row["dry_run"] = bool(row["dry_run"])
    row["volume_7d"] = (0 if row["dry_run"] else row["sent"]) + _trailing_sent(
        con, row["run_date"], row["run_id"]
    )
    con.execute(
        f"INSERT OR REPLACE INTO {RUNS_TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
        [row[c] for c in COLUMNS],
    )
    return row


def read_runs(con: duckdb.DuckDBPyConnection, *, limit: int | None = None) -> pd.DataFrame:
    """The history, oldest first (JSON columns decoded); empty when no run was recorded."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()",
        [RUNS_TABLE],
    ).fetchall()[0][0]
    if not exists:
        return pd.DataFrame(columns=list(COLUMNS))
    sql = f"SELECT * FROM {RUNS_TABLE} ORDER BY run_date DESC, recorded_at DESC"
    frame = (
        con.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).df().iloc[::-1].reset_index(drop=True)
    )
    for c in _JSON:
        frame[c] = frame[c].map(json.loads)
    return frame


def run_warnings(runs: pd.DataFrame, *, ad_sets: int = 1) -> list[str]:
    """What ``pltv status`` warns about, each with its number (see the module docstring)."""
    live = runs[~runs["dry_run"].astype(bool)].reset_index(drop=True) if len(runs) else runs
    if not len(live):
        return []
    last = live.iloc[-1]
    out = []
    volume = int(last["volume_7d"])
    if volume < DATASET_WEEKLY_MIN:
        out.append(
            f"volume: {volume:,} events sent in the 7 days to {last['run_date']:%Y-%m-%d}, under Meta's "
            f"{DATASET_WEEKLY_MIN}/week for the dataset"
            + (
                f" (the spec expected {last['expected_weekly']:,.0f})"
                if pd.notna(last["expected_weekly"])
                else ""
            )
        )
    per_ad_set = volume / max(ad_sets, 1)
    if per_ad_set < AD_SET_WEEKLY_MIN:
        out.append(
            f"volume: {per_ad_set:,.0f} events per ad set in the 7 days ({ad_sets} ad set(s)), under the "
            f"~{AD_SET_WEEKLY_MIN}/week the learning phase needs"
        )
    if pd.notna(last["psi"]) and last["psi"] > PSI_WARNING:
        out.append(f"drift: PSI {last['psi']:.3f} against the design's holdout (> {PSI_WARNING})")
    previous = live.iloc[-1 - TRAILING_RUNS : -1]
    n = int(last["planned"])
    weights = previous["planned"].to_numpy(float) if len(previous) else np.zeros(0)
    if n and weights.sum() > 0:
        for key, share in sorted(last["coverage"].items()):
            mean = float(np.average([c.get(key, 0.0) for c in previous["coverage"]], weights=weights))
            drop = mean - share
            # a drop a run this small shows by chance (2 binomial standard errors) is not a warning
            if drop > COVERAGE_DROP and drop > 2 * np.sqrt(mean * (1 - mean) / n):
                out.append(
                    f"coverage: {key} on {share:.0%} of {n:,} events, {drop:.0%} under its trailing mean "
                    f"{mean:.0%} ({len(previous)} runs)"
                )
    for column in ("failed", "unconfirmed", "expired"):
        if int(last[column]):
            out.append(f"delivery: {int(last[column]):,} event(s) {column} in run {last['run_id']}")
    if isinstance(last["stopped"], str) and last["stopped"]:
        out.append(
            f"delivery: run {last['run_id']} was stopped by Meta ({last['stopped']}); unsent events stay owed"
        )
    return out


def render_history(runs: pd.DataFrame, *, days: int = 7, ad_sets: int = 1) -> str:
    """The trend (one line per run of the ``days`` latest run dates) and the warnings (from every run)."""
    if not len(runs):
        return "run history: none recorded yet"
    dates = sorted(set(runs["run_date"]))[-days:]
    shown = runs[runs["run_date"].isin(dates)]
    lines = [
        f"{'run date':<11} {'run':<22} {'sent':>7} {'failed':>6} {'p50':>8} {'PSI':>6} {'EMQ~':>5} "
        f"{'7d sent':>8} {'expected':>8}"
    ]
    for r in shown.itertuples():
        psi = f"{r.psi:6.3f}" if pd.notna(r.psi) else f"{'n/a':>6}"
        p50 = f"{r.value_p50:8.2f}" if pd.notna(r.value_p50) else f"{'':>8}"
        emq = f"{r.emq_estimate:5.1f}" if pd.notna(r.emq_estimate) else f"{'':>5}"
        exp = f"{r.expected_weekly:8,.0f}" if pd.notna(r.expected_weekly) else f"{'':>8}"
        lines.append(
            f"{r.run_date:%Y-%m-%d}  {r.run_id:<22} {r.sent:7,} {r.failed:6,} {p50} {psi} {emq} "
            f"{r.volume_7d:8,} {exp}" + ("  (dry run)" if r.dry_run else "")
        )
    lines.extend(f"WARNING {w}" for w in run_warnings(runs, ad_sets=ad_sets))
    return "\n".join(lines)


def _per_key(dropped: Mapping) -> dict[str, int]:
    """``{(key, reason): n}`` (identifier values present but unusable) -> ``{key: n}``."""
    out: dict[str, int] = {}
    for (key, _reason), n in dropped.items():
        out[key] = out.get(key, 0) + int(n)
    return out


def record_from_report(
    report: Any, *, expected_weekly: float | None = None, stopped: BaseException | None = None
) -> dict[str, Any]:
    """A history row from a :class:`~activation.daily_report.DailyReport`; ``stopped``: the error that stopped the
    run, named by class and code."""
    quantiles = report.value_quantiles or {}
    quality = report.match_quality
    return {
        "run_id": report.run_id,
        "run_date": report.run_date,
        "dry_run": report.dry_run,
        "spec_id": report.spec_id,
        "model_version": str(report.model).rpartition("/")[2],
        "eligible": report.eligible,
        "planned": report.planned,
        "sent": report.sent,
        "skipped": sum(report.skipped.values()),
        "skipped_by_reason": dict(report.skipped),
        "failed": report.failed,
        "unconfirmed": getattr(report, "unconfirmed", 0),
        "expired": report.expired,
        "deferred": report.deferred,
        "value_p10": quantiles.get("p10"),
        "value_p50": quantiles.get("p50"),
        "value_p90": quantiles.get("p90"),
        "value_max": quantiles.get("max"),
        "psi": report.psi,
        "coverage": dict(quality.coverage) if quality is not None and quality.events else {},
        "emq_estimate": quality.estimated_score if quality is not None and quality.events else None,
        "invalid_identifiers": _per_key(getattr(report, "identity_dropped", {}) or {}),
        "expected_weekly": expected_weekly,
        "stopped": None
        if stopped is None
        else type(stopped).__name__ + (f" code {stopped.code}" if getattr(stopped, "code", None) else ""),
    }
