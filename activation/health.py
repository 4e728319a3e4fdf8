"""Signal health from the ledger and the source: what `pltv report` shows about delivery, match keys, values.

Pure functions over the ledger's rows (:meth:`activation.ledger.Ledger.rows`) and the source's users:

- :func:`outcome_counts` — events per send date by outcome (sent, skipped by reason, failed, expired…);
- :func:`trailing_volume` — events sent in the trailing 7 days at each send date (Meta counts per week);
- :func:`value_drift` — quantiles of the sent values and their PSI against the design's holdout
  (:func:`activation.report.population_stability_index`), over the trailing 7 days;
- :func:`sent_users` — the users behind the sent events: the ledger keeps no user ids, so each event id is
  recomputed from the source's users, as the calibration readout does (:func:`activation.readout.match_users`);
- :func:`match_keys` — per-key coverage and the EMQ-style estimate per send date, and invalid
  identifiers per key, from the same normalization and hashing the daily job uses
  (:func:`activation.identity.hash_identifiers`); hashes stay in memory, only counts come out;
- :func:`delivery_flags`, :func:`match_flags`, :func:`value_flags` — what is off, each with its number, in a
  :class:`Flags` (which defers to ``pltv status``'s own warnings where the toolkit keeps a run history).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from activation import IdentityReport, estimate_match_quality, hash_identifiers
from activation.daily_report import PSI_MIN_EVENTS, PSI_WARNING
from activation.design import LEARNING_EVENTS_PER_AD_SET_WEEK as LEARNING_EVENTS_PER_AD_SET
from activation.design import MIN_DATASET_EVENTS_PER_WEEK
from activation.ledger_states import EXPIRED
from activation.meta import HASHED_KEYS
from activation.readout import match_users
from activation.report import population_stability_index
from activation.spec import EventSpec
from pltv.contract import IDENTIFIER_KEYS

WINDOW_DAYS = 7
COVERAGE_DROP = 0.10  # a key's coverage more than 10 points below its trailing mean is flagged
_ORDER = ("sent", "skipped", "failed", "unconfirmed", "expired", "pending")


def outcome_of(state: str, reason: str | None) -> str:
    """The chart's outcome for a ledger row: ``sent``, ``skipped: <reason>``, ``failed: <reason>``,
    ``expired``, ``pending`` or any other state as it is (e.g. ``unconfirmed``)."""
    if reason == EXPIRED:
        return "expired"
    if state in ("skipped", "failed") and reason:
        return f"{state}: {reason}"
    return state


def outcome_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Events per send date (index) and outcome (columns, sent first); zeros where nothing happened."""
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="send_date"))
    outcome = [
        outcome_of(s, r if isinstance(r, str) else None)
        for s, r in zip(rows["state"], rows["reason"], strict=True)
    ]
    table = (
        pd.DataFrame({"send_date": pd.to_datetime(rows["send_date"]), "outcome": outcome})
        .value_counts()
        .unstack(fill_value=0)
        .sort_index()
    )
    rank = {name: i for i, name in enumerate(_ORDER)}
    columns = sorted(table.columns, key=lambda c: (rank.get(c.split(":")[0], len(_ORDER)), -table[c].sum()))
    return table[columns].astype(int)


def _window(dates: pd.Series, day: pd.Timestamp) -> pd.Series:
    return (dates > day - pd.Timedelta(days=WINDOW_DAYS)) & (dates <= day)


def trailing_volume(rows: pd.DataFrame) -> pd.Series:
    """Events sent in the ``WINDOW_DAYS`` days up to each send date of the ledger (index: send dates)."""
    dates = pd.to_datetime(rows["send_date"])
    sent = dates[rows["state"] == "sent"]
    days = sorted(dates.unique())
    return pd.Series([int(_window(sent, d).sum()) for d in days], index=pd.DatetimeIndex(days, name="send_date"),
                     name="sent_7d", dtype=int)  # fmt: skip


def value_drift(rows: pd.DataFrame, spec: EventSpec | None) -> pd.DataFrame:
    """Per send date, over the sent events of the trailing ``WINDOW_DAYS`` days: count, value quantiles, and
    the PSI against ``spec``'s holdout (its own events only; NaN below ``PSI_MIN_EVENTS`` or without it)."""
    sent = rows[rows["state"] == "sent"]
    dates = pd.to_datetime(sent["send_date"])
    out = []
    for day in sorted(pd.to_datetime(rows["send_date"]).unique()):
        inside = _window(dates, day)
        values = sent.loc[inside, "value"].to_numpy(dtype=float)
        record = {"send_date": day, "events": int(values.size)}
        for name, q in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
            record[name] = float(np.quantile(values, q)) if values.size else np.nan
        record["max"] = float(values.max()) if values.size else np.nan
        psi = np.nan
        if spec is not None and spec.value_reference:
            own = sent.loc[inside & (sent["spec_id"] == spec.spec_id), "value"].to_numpy(dtype=float)
            if own.size >= PSI_MIN_EVENTS:
                ref = spec.value_reference
                psi = population_stability_index(ref["edges"], ref["shares"], own)
        record["psi"] = psi
        out.append(record)
    return pd.DataFrame(out, columns=["send_date", "events", "p10", "p50", "p90", "max", "psi"]).set_index(
        "send_date"
    )


def sent_users(users: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The users behind the ledger's sent events, one row per event (``users``' columns + ``send_date``),
    and how many sent events matched no user of the source (a user deleted since, or another source).
    The match is the calibration readout's (:func:`activation.readout.match_users`)."""
    sent = rows.loc[rows["state"] == "sent", ["event_id", "spec_id", "send_date"]]
    matched = match_users(users[["user_id"]].astype({"user_id": str}), sent)
    found = matched[matched["user_id"].notna()]
    frame = found[["user_id", "send_date"]].merge(users.astype({"user_id": str}), on="user_id")
    return frame, int(len(sent) - len(found))


@dataclass
class MatchKeys:
    """Per-key coverage and the EMQ-style estimate per send date; invalid identifiers per key."""

    coverage: pd.DataFrame  # index send_date, one column per key present on some event: share of events
    estimated_score: pd.Series  # index send_date: the EMQ-style 0-10 estimate (ours, not Meta's)
    invalid: pd.DataFrame  # key, present, usable, invalid, reasons
    events_by_day: pd.Series  # index send_date: sent events matched to a user
    events: int
    unmatched: int
    label: str = ""


def match_keys(
    users: pd.DataFrame, rows: pd.DataFrame, *, id_columns: Iterable[str], default_region: str = "US"
) -> MatchKeys:
    """Match-key health of the sent events, from the identifiers their users have in the source now."""
    matched, unmatched = sent_users(users, rows)
    hashed, report = hash_identifiers(matched[list(id_columns)], default_region=default_region)
    present = hashed.notna()
    keys = [k for k in present.columns if present[k].any()]
    day = pd.to_datetime(matched["send_date"])
    coverage = present[keys].groupby(day.to_numpy()).mean() if len(matched) else pd.DataFrame(columns=keys)
    coverage.index = pd.DatetimeIndex(coverage.index, name="send_date")
    records = [
        dict.fromkeys(present.columns[row]) for row in present.to_numpy()
    ]  # the keys each event carries
    scores = {}
    label = estimate_match_quality([]).label
    for d, index in pd.Series(range(len(matched))).groupby(day.to_numpy()).indices.items():
        scores[pd.Timestamp(d)] = estimate_match_quality(records[i] for i in index).estimated_score
    del hashed, records  # nothing hashed outlives this function
    return MatchKeys(
        coverage=coverage,
        estimated_score=pd.Series(scores, name="estimated_score", dtype=float),
        invalid=invalid_table(report),
        events_by_day=day.value_counts().sort_index(),
        events=len(matched),
        unmatched=unmatched,
        label=label,
    )


def invalid_table(report: IdentityReport) -> pd.DataFrame:
    """The identifier map and its health, per ``user_data`` key with any input value: the source column it
    comes from, how it is sent (normalized + SHA-256, or as Meta requires it, unhashed), values present,
    usable, invalid, and the invalid ones by reason."""
    column_of = {key: column for column, key in IDENTIFIER_KEYS.items()}
    rows = []
    for key, present in report.present.items():
        if not present:
            continue
        reasons = {r: n for (k, r), n in report.dropped.items() if k == key}
        usable = report.kept.get(key, 0)
        rows.append({"key": key, "source column": column_of.get(key, key),
                     "sent as": "normalized + SHA-256" if key in HASHED_KEYS else "normalized, unhashed",
                     "present": present, "usable": usable, "invalid": present - usable,
                     "reasons": ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))})  # fmt: skip
    return pd.DataFrame(
        rows, columns=["key", "source column", "sent as", "present", "usable", "invalid", "reasons"]
    )


#: The kinds of flag `pltv status` also warns about from the run history (when the toolkit records one):
#: the page then shows the history's warnings instead of its own for these.
STATUS_KINDS = ("volume", "delivery", "coverage", "drift")
_STATUS_SECTION = {"volume": "signal", "delivery": "signal", "coverage": "match", "drift": "values"}


@dataclass
class Flags:
    """What is off, per report section, each message carrying its number (and a kind, see STATUS_KINDS)."""

    by_section: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, section: str, message: str, kind: str = "") -> None:
        self.by_section.setdefault(section, []).append((kind, message))

    def get(self, section: str) -> list[str]:
        return [message for _, message in self.by_section.get(section, [])]

    def use_status_warnings(self, warnings: Iterable[str]) -> None:
        """Replace this page's own volume, delivery, coverage and drift flags by ``pltv status``'s warnings
        (``"volume: ..."``, ``"delivery: ..."``, ``"coverage: ..."``, ``"drift: ..."``), so both say the same."""
        for section, entries in self.by_section.items():
            self.by_section[section] = [(k, m) for k, m in entries if k not in STATUS_KINDS]
        for warning in warnings:
            kind = warning.split(":", 1)[0]
            text = re.sub(r"\brun run-\d{8}-[0-9a-f]+", "the latest run", warning)  # no run ids on the page
            self.add(_STATUS_SECTION.get(kind, "signal"), f"pltv status: {text}", kind="status")


def volume_thresholds(spec: EventSpec | None) -> dict[str, float]:
    """Meta's weekly thresholds and, with a spec, the weekly volume its design expected."""
    out = {
        "Meta: dataset, each week": float(MIN_DATASET_EVENTS_PER_WEEK),
        "Meta: learning, per ad set": float(LEARNING_EVENTS_PER_AD_SET),
    }
    if spec is not None and spec.expected.get("weekly_volume"):
        out["design expected"] = float(spec.expected["weekly_volume"])
    return out


def delivery_flags(flags: Flags, counts: pd.DataFrame, volume: pd.Series, spec: EventSpec | None) -> None:
    """Signal-health flags: weekly volume under Meta's thresholds or the design's, failures, unconfirmed,
    expired and pending events."""
    if volume.empty:
        flags.add("signal", "the ledger holds no events yet: run `pltv score-and-send` first")
        return
    last_day, last = volume.index[-1], int(volume.iloc[-1])
    span = (volume.index[-1] - volume.index[0]).days + 1
    partial = f" (the ledger covers only {span} day(s), so the week is partial)" if span < WINDOW_DAYS else ""
    if last < MIN_DATASET_EVENTS_PER_WEEK:
        flags.add("signal", f"{last:,} events sent in the 7 days to {last_day:%Y-%m-%d}: under Meta's "
                            f"{MIN_DATASET_EVENTS_PER_WEEK}/week for the dataset{partial}", "volume")  # fmt: skip
    elif last < LEARNING_EVENTS_PER_AD_SET:
        flags.add(
            "signal",
            f"{last:,} events in the last 7 days: under the ~50/week an ad set needs to learn",
            "volume",
        )
    expected = spec.expected.get("weekly_volume") if spec is not None else None
    if expected and last < 0.5 * expected and not partial:
        flags.add(
            "signal",
            f"{last:,} events in the last 7 days, under half the {expected:,.0f}/week the design expected",
            "volume",
        )
    for kind, what in (
        ("failed", "failed (see the delivery failures below; retryable ones are sent again by the next run)"),
        ("unconfirmed", "unconfirmed (no definitive answer within the dedup window; never re-sent)"),
        ("expired", "expired (owed, but too old for Meta before a run could send them)"),
        ("pending", "pending (an interrupted run; the next run re-sends them)"),
    ):
        n = int(sum(counts[c].sum() for c in counts.columns if c.split(":")[0] == kind))
        if n:
            flags.add("signal", f"{n:,} event(s) {what}", "delivery" if kind != "pending" else "")


def match_flags(flags: Flags, keys: MatchKeys) -> None:
    """A key whose coverage on the last send date is more than 10 points under its trailing mean, and more
    than two standard errors of that day's share (a 20-event day swings by +-20 points on its own); sent
    events matched to no user; keys with more than 5 % invalid values."""
    cov = keys.coverage
    if len(cov) >= 2:
        last, before = cov.iloc[-1], cov.iloc[-1 - WINDOW_DAYS : -1].mean()
        n = int(keys.events_by_day.get(cov.index[-1], 0))
        for key in cov.columns:
            drop = before[key] - last[key]
            noise = 2 * np.sqrt(before[key] * (1 - before[key]) / max(n, 1))
            if drop > COVERAGE_DROP and drop > noise:
                flags.add("match", f"{key} coverage {last[key]:.0%} on {cov.index[-1]:%Y-%m-%d} ({n:,} events), "
                                   f"{drop:.0%} points under its trailing mean {before[key]:.0%}", "coverage")  # fmt: skip
    if keys.unmatched:
        flags.add("match", f"{keys.unmatched:,} sent event(s) match no user of this source (left out above)")
    invalid = keys.invalid
    for row in invalid[invalid["invalid"] > 0.05 * invalid["present"]].itertuples():
        flags.add("match", f"{row.key}: {row.invalid:,} of {row.present:,} values invalid ({row.reasons})")


def spread(values: np.ndarray) -> tuple[int, float]:
    """Distinct values (to the cent) and max / min: Meta's pLTV rules want >= 5 and >= 3."""
    distinct = int(np.unique(np.round(values, 2)).size)
    ratio = float(values.max() / values.min()) if values.size and values.min() > 0 else float("nan")
    return distinct, ratio


def value_flags(flags: Flags, drift: pd.DataFrame, spec: EventSpec | None, recent: np.ndarray) -> None:
    """PSI above the warning level, or why it cannot be computed; the last 7 days' values breaking Meta's
    pLTV rules (>= 5 distinct values, max >= 3x min) in a value mode."""
    if drift.empty:
        return
    last = drift.iloc[-1]
    if spec is None or not spec.value_reference:
        flags.add("values", "no spec with a holdout distribution: PSI cannot be computed (pass --spec)")
    elif np.isnan(last["psi"]):
        flags.add("values", f"PSI n/a: {int(last['events']):,} events sent in the last 7 days, it needs "
                            f">= {PSI_MIN_EVENTS} to be meaningful")  # fmt: skip
    elif last["psi"] > PSI_WARNING:
        flags.add(
            "values",
            f"PSI {last['psi']:.3f} > {PSI_WARNING}: the sent values drifted from the design's holdout",
            "drift",
        )
    distinct, ratio = spread(recent)
    if spec is not None and spec.mode != "threshold" and recent.size and (distinct < 5 or not ratio >= 3):
        flags.add("values", f"Meta's pLTV rules: {distinct} distinct values, max/min {ratio:.1f} in the last 7 days "
                            "(needs >= 5 distinct, max >= 3x min)")  # fmt: skip


def recent_values(rows: pd.DataFrame, *, days: int = WINDOW_DAYS) -> np.ndarray:
    """Values of the events sent in the last ``days`` send dates of the ledger."""
    if rows.empty:
        return np.zeros(0)
    dates = pd.to_datetime(rows["send_date"])
    inside = _window(dates, dates.max()) & (rows["state"] == "sent")
    return rows.loc[inside, "value"].to_numpy(dtype=float)
