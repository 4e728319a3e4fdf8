"""The delivery ledger: one DuckDB row per event, pending → sent | failed | skipped.

No identifier (raw or hashed) and no ``user_id`` is stored: only the PII-free ``event_id``, the run,
spec and model, the value and what Meta answered.

Protocol (each step its own transaction, so a crash at any point leaves rows the next run completes):

1. :meth:`Ledger.record_skipped` — events the builder refused, with the reason.
2. :meth:`Ledger.claim_pending` — planned events become ``pending`` *before* any batch leaves; returns
   the ids to send: new ones, ``pending`` rows left by a dead run (safe to re-send: Meta deduplicates on
   ``event_name`` + ``event_id``), earlier ``failed`` rows whose retries ran out, and earlier skips now
   sendable. A ``sent`` event is never returned again.
3. :meth:`Ledger.record_outcomes` — each batch's outcomes right after it returns.

:meth:`Ledger.summary` answers "what happened" per send date and/or run, for ``pltv status``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from activation.errors import LedgerError, LedgerWriteError
from activation.ledger_schema import TABLE, prepare_table
from activation.ledger_states import (
    EXPIRED,
    FAILED,
    MAY_HAVE_REACHED,
    NOT_SENT,
    OWED,
    PENDING,
    PLACES,
    REJECTED,
    RETRYABLE,
    SENT,
    SKIPPED,
    STATES,
    SUPERSEDED,
    UNCONFIRMED,
    may_leave,
)
from activation.types import EventOutcome, PlannedEvent, SkippedEvent


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Identifies one delivery run."""

    run_id: str
    spec_id: str
    send_date: date
    model_version: str | None = None


@dataclass(frozen=True)
class RunCounts:
    """What one run's rows ended as (``pltv status``'s line for the run)."""

    send_date: date
    run_id: str
    spec_id: str
    sent: int
    skipped: int
    failed: int
    expired: int
    pending: int
    unconfirmed: int = 0


@dataclass(frozen=True)
class LedgerSummary:
    """Counts per state, skip reasons and the last errors (codes, messages, trace ids)."""

    counts: dict[str, int]
    skip_reasons: dict[str, int]
    last_errors: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        """A few lines for a terminal."""
        lines = ["  ".join(f"{s}={self.counts.get(s, 0):,}" for s in STATES)]
        if self.skip_reasons:
            lines.append("skipped: " + ", ".join(f"{r}={n:,}" for r, n in self.skip_reasons.items()))
        for e in self.last_errors:
            lines.append(
                f"error code={e['error_code']} subcode={e['error_subcode']} events={e['events']:,} "
                f"fbtrace_id={e['fbtrace_id']}: {e['error_message']}"
            )
        return "\n".join(lines)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Ledger:
    """The ledger over a DuckDB connection (or a file path, opened and owned here)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection | str | Path, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._own = not isinstance(con, duckdb.DuckDBPyConnection)
        try:
            self.con = duckdb.connect(str(con)) if self._own else con
            self.writable = prepare_table(self.con)
        except duckdb.Error as exc:
            raise LedgerError(f"cannot open the delivery ledger ({type(exc).__name__}): {exc}") from exc
        self._clock = clock

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection when the ledger opened it."""
        if self._own:
            self.con.close()

    def _now(self) -> datetime:
        now = self._clock()
        return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now

    def _transaction(self, fn: Callable[[], Any]) -> Any:
        """``fn`` in one transaction; a write the disk refuses (full, quota) is a :class:`LedgerWriteError`
        and leaves the ledger as it was before ``fn``."""
        try:
            self.con.execute("BEGIN TRANSACTION")
            try:
                out = fn()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            detail = str(exc).splitlines()[0][:300]
            raise LedgerWriteError(
                f"the ledger could not be written ({type(exc).__name__}: {detail}). It is consistent: events "
                "whose outcome was not written stay pending, and the next run completes them (re-sent only "
                "inside Meta's 48 h dedup window). Free the disk and run again"
            ) from None
        return out

    def _frame(self, rows: Sequence[PlannedEvent | SkippedEvent], run: RunInfo, state: str) -> pd.DataFrame:
        now = self._now()
        n = len(rows)
        frame = pd.DataFrame(
            {
                "event_id": [r.event_id for r in rows],
                "run_id": [run.run_id] * n,
                "spec_id": [run.spec_id] * n,
                "model_version": [run.model_version] * n,
                "send_date": [run.send_date] * n,
                "event_name": [r.event_name for r in rows],
                "event_time": np.fromiter((r.event_time for r in rows), dtype=np.int64, count=n),
                "value": np.fromiter((r.value for r in rows), dtype=np.float64, count=n),
                "state": [state] * n,
                "reason": [getattr(r, "reason", None) for r in rows],
                "created_at": [now] * n,
                "updated_at": [now] * n,
            }
        )
        if frame["event_id"].duplicated().any():
            raise LedgerError("duplicate event_id in one run: each (spec, user) must appear once")
        return frame

    def _upsert(self, frame: pd.DataFrame, where: str) -> list[str]:
        """Insert new rows, update known ones that may move (``where``); the ids written, in one statement."""
        self.con.register("_incoming", frame)
        try:
            rows = self.con.execute(
                f"""
                INSERT INTO {TABLE} (event_id, run_id, spec_id, model_version, send_date, event_name,
                                     event_time, value, state, reason, created_at, updated_at)
                SELECT event_id, run_id, spec_id, model_version, CAST(send_date AS DATE), event_name,
                       event_time, value, state, reason, created_at, updated_at FROM _incoming
                ON CONFLICT (event_id) DO UPDATE SET
                    run_id = excluded.run_id, model_version = excluded.model_version,
                    event_time = excluded.event_time, value = excluded.value, state = excluded.state,
                    reason = excluded.reason, updated_at = excluded.updated_at,
                    maybe_delivered_at = {MAY_HAVE_REACHED.format(t=TABLE)}
                WHERE {where}
                RETURNING event_id
                """
            ).fetchall()
        finally:
            self.con.unregister("_incoming")
        return [r[0] for r in rows]

    def record_skipped(self, skipped: Sequence[SkippedEvent], *, run: RunInfo) -> int:
        """Write skips (with reasons); a row already ``sent`` is left alone. Returns the count given."""
        if not skipped:
            return 0
        frame = self._frame(skipped, run, "skipped")
        same = f"{TABLE}.state = '{SKIPPED}' AND {TABLE}.reason IS NOT DISTINCT FROM excluded.reason"
        where = f"{may_leave('skip', TABLE)} AND NOT ({same})"
        self._transaction(lambda: self._upsert(frame, where))
        return len(frame)

    def claim_pending(self, events: Sequence[PlannedEvent], *, run: RunInfo) -> list[str]:
        """Mark ``events`` pending for ``run`` and return the ids to send now (never one already sent).

        Not re-claimed: ``sent`` rows, and ``failed`` rows Meta rejected as invalid (they would poison
        the batch again); ``failed`` rows whose retries ran out are claimed again.
        """
        if not events:
            return []
        frame = self._frame(events, run, "pending")
        # the rows written (new, or known and allowed to move) are the claimed ones: pending for this run
        claimed = set(self._transaction(lambda: self._upsert(frame, may_leave("claim", TABLE))))
        return [e.event_id for e in events if e.event_id in claimed]

    def record_outcomes(self, outcomes: Sequence[EventOutcome]) -> None:
        """Write one batch's outcomes (its own transaction). A ``sent`` row never changes again."""
        if not outcomes:
            return
        frame = pd.DataFrame(
            {
                "event_id": [o.event_id for o in outcomes],
                "state": [o.state for o in outcomes],
                "reason": [
                    None if o.state == SENT else (RETRYABLE if o.retryable else REJECTED) for o in outcomes
                ],
                "attempts": [o.attempts for o in outcomes],
                "events_received": pd.array([o.events_received for o in outcomes], dtype="Int64"),
                "error_code": pd.array([o.error_code for o in outcomes], dtype="Int64"),
                "error_subcode": pd.array([o.error_subcode for o in outcomes], dtype="Int64"),
                "error_message": [o.error_message for o in outcomes],
                "fbtrace_id": [o.fbtrace_id for o in outcomes],
                # sent, or no definitive answer: it may have reached Meta from the moment it was claimed
                "reached": [o.state == SENT or o.maybe_delivered for o in outcomes],
            }
        )
        now = self._now()

        def write() -> None:
            self.con.register("_outcomes", frame)
            try:
                self.con.execute(
                    f"""
                    UPDATE {TABLE} SET state = o.state, reason = o.reason,
                        attempts = {TABLE}.attempts + o.attempts, events_received = o.events_received,
                        error_code = o.error_code, error_subcode = o.error_subcode,
                        error_message = o.error_message, fbtrace_id = o.fbtrace_id, updated_at = ?,
                        maybe_delivered_at = CASE WHEN o.reached
                            THEN coalesce({TABLE}.maybe_delivered_at, {TABLE}.updated_at)
                            ELSE {TABLE}.maybe_delivered_at END
                    FROM _outcomes o
                    WHERE {TABLE}.event_id = o.event_id AND {may_leave("outcome", TABLE)}
                    """,
                    [now],
                )
            finally:
                self.con.unregister("_outcomes")

        self._transaction(write)

    def pending(self, *, send_date: date | None = None) -> list[str]:
        """Ids still pending (a dead run's leftovers), oldest send date first."""
        sql = f"SELECT event_id FROM {TABLE} WHERE state = 'pending'"
        params: list[Any] = []
        if send_date is not None:
            sql += " AND send_date = ?"
            params.append(send_date)
        return [r[0] for r in self.con.execute(sql + " ORDER BY send_date, event_id", params).fetchall()]

    def _rows(self, event_ids: Iterable[str], select: str, where: str = "TRUE") -> list[tuple]:
        """``select`` over the known rows among ``event_ids`` that match ``where``."""
        self.con.register("_ids", pd.DataFrame({"event_id": list(event_ids)}))
        try:
            return self.con.execute(
                f"SELECT {select} FROM {TABLE} JOIN _ids USING (event_id) WHERE {where}"
            ).fetchall()
        finally:
            self.con.unregister("_ids")

    def settled(self, event_ids: Iterable[str]) -> set[str]:
        """The ids with nothing left to do: sent, rejected by Meta, expired, or skipped for a lasting reason.

        Every other id is owed: unknown, ``pending`` (a dead run), ``failed`` after retries, or skipped only
        because of the clock."""
        return {row[0] for row in self._rows(event_ids, "event_id", f"NOT {may_leave('expire', TABLE)}")}

    def expire(self, *, older_than: datetime) -> int:
        """Owed rows whose event time is before ``older_than`` (Meta refuses such events) become
        ``failed``/``expired``, so nothing promises a re-send that can no longer happen. Returns how many."""
        cutoff = int(older_than.replace(tzinfo=older_than.tzinfo or UTC).timestamp())
        now = self._now()

        def run() -> int:
            return self.con.execute(
                f"UPDATE {TABLE} SET state = 'failed', reason = '{EXPIRED}', updated_at = ? "
                f"WHERE event_time < ? AND {may_leave('expire', TABLE)} RETURNING event_id",
                [now, cutoff],
            ).fetchall()

        return len(self._transaction(run))

    def settle_unconfirmed(self, *, now: datetime, window_s: float) -> int:
        """Rows still owed that may have reached Meta more than ``window_s`` ago (Meta's dedup window,
        less a margin) become ``failed``/``unconfirmed``: a re-send now would be counted a second time.
        Returns how many."""
        now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
        cutoff = now - timedelta(seconds=window_s)
        stamp = self._now()

        def run() -> list:
            return self.con.execute(
                f"UPDATE {TABLE} SET state = '{FAILED}', reason = '{UNCONFIRMED}', updated_at = ?, "
                f"maybe_delivered_at = {MAY_HAVE_REACHED.format(t=TABLE)} "
                f"WHERE {MAY_HAVE_REACHED.format(t=TABLE)} < ? AND {may_leave('settle', TABLE)} "
                "RETURNING event_id",
                [stamp, cutoff],
            ).fetchall()

        return len(self._transaction(run))

    def other_specs(self, *, event_name: str, spec_id: str) -> list[str]:
        """The other specs whose events carried ``event_name`` (a redesign keeps the name, or reuses it)."""
        rows = self.con.execute(
            f"SELECT DISTINCT spec_id FROM {TABLE} WHERE event_name = ? AND spec_id <> ? ORDER BY 1",
            [event_name, spec_id],
        ).fetchall()
        return [r[0] for r in rows]

    def supersede(self, event_ids: Iterable[str], *, write: bool = True) -> tuple[set[str], int]:
        """For ids of an earlier spec (the same users' events under it): the ids whose user is served, and
        how many rows this settled as unconfirmed.

        Served: sent, unconfirmed, or still owed but may have reached Meta (then settled as unconfirmed
        now: the earlier spec's id will not be sent again, and a new id would be counted a second time).
        An owed row that never reached Meta becomes ``skipped``/``superseded``: the current spec sends
        that user. With ``write=False`` (a dry run) nothing changes and the served ids are the same."""
        ids = list(event_ids)
        if not ids:
            return set(), 0
        if not write:
            served = (
                f"({PLACES['sent'].format(t=TABLE)}) OR ({PLACES['unconfirmed'].format(t=TABLE)}) OR "
                + (f"({may_leave('supersede', TABLE)} AND {MAY_HAVE_REACHED.format(t=TABLE)} IS NOT NULL)")
            )
            return {r[0] for r in self._rows(ids, "event_id", served)}, 0
        stamp = self._now()
        reached = MAY_HAVE_REACHED.format(t=TABLE)

        def run() -> tuple[set[str], int]:
            self.con.register("_old", pd.DataFrame({"event_id": ids}))
            try:
                old = f"{TABLE}.event_id IN (SELECT event_id FROM _old)"
                settled = self.con.execute(
                    f"UPDATE {TABLE} SET state = '{FAILED}', reason = '{UNCONFIRMED}', updated_at = ?, "
                    f"maybe_delivered_at = {reached} "
                    f"WHERE {old} AND {may_leave('supersede', TABLE)} AND {reached} IS NOT NULL "
                    "RETURNING event_id",
                    [stamp],
                ).fetchall()
                owed = " OR ".join(f"({PLACES[p].format(t=TABLE)})" for p in OWED)
                self.con.execute(
                    f"UPDATE {TABLE} SET state = '{SKIPPED}', reason = '{SUPERSEDED}', updated_at = ? "
                    f"WHERE {old} AND ({owed})",
                    [stamp],
                )
                served = f"({PLACES['sent'].format(t='l')}) OR ({PLACES['unconfirmed'].format(t='l')})"
                rows = self.con.execute(
                    f"SELECT l.event_id FROM {TABLE} l JOIN _old USING (event_id) WHERE {served}"
                ).fetchall()
            finally:
                self.con.unregister("_old")
            return {r[0] for r in rows}, len(settled)

        return self._transaction(run)

    def release(self, event_ids: Iterable[str], *, run: RunInfo) -> int:
        """This run's ``pending`` rows whose batch never left (the run stopped first) stay owed, marked
        as never delivered, so a later run does not count them as possibly delivered. Returns how many."""
        ids = list(event_ids)
        if not ids:
            return 0

        def release_() -> int:
            self.con.register("_released", pd.DataFrame({"event_id": ids}))
            try:
                return len(
                    self.con.execute(
                        f"UPDATE {TABLE} SET reason = '{NOT_SENT}' WHERE state = '{PENDING}' AND run_id = ? "
                        "AND event_id IN (SELECT event_id FROM _released) RETURNING event_id",
                        [run.run_id],
                    ).fetchall()
                )
            finally:
                self.con.unregister("_released")

        return self._transaction(release_)

    def is_empty(self) -> bool:
        """True when no run has written a row yet."""
        return self.con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0] == 0

    def states(self, event_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """``(state, reason)`` of each known id."""
        return {
            event_id: (state, reason)
            for event_id, state, reason in self._rows(event_ids, "event_id, state, reason")
        }

    def rows(self) -> pd.DataFrame:
        """Every event row without Meta's free text and trace ids, by send date: what the report aggregates."""
        return self.con.execute(
            f"SELECT event_id, run_id, spec_id, model_version, send_date, event_name, event_time, value, "
            f"state, reason, error_code, error_subcode FROM {TABLE} ORDER BY send_date, event_id"
        ).df()

    def runs(self, *, days: int = 7) -> list[RunCounts]:
        """Per run of the ``days`` most recent send dates (newest first): what its rows ended as."""
        rows = self.con.execute(
            f"""
            WITH recent AS (SELECT DISTINCT send_date FROM {TABLE} ORDER BY send_date DESC LIMIT ?)
            SELECT send_date, run_id, spec_id,
                   count(*) FILTER (WHERE state = '{SENT}') AS sent,
                   count(*) FILTER (WHERE state = '{SKIPPED}') AS skipped,
                   count(*) FILTER (WHERE state = '{FAILED}' AND coalesce(reason, '') NOT IN ('{EXPIRED}', '{UNCONFIRMED}')) AS failed,
                   count(*) FILTER (WHERE reason = '{EXPIRED}') AS expired,
                   count(*) FILTER (WHERE state = '{PENDING}') AS pending,
                   count(*) FILTER (WHERE state = '{FAILED}' AND reason = '{UNCONFIRMED}') AS unconfirmed,
                   min(created_at) AS started
            FROM {TABLE} JOIN recent USING (send_date)
            GROUP BY ALL ORDER BY send_date DESC, started DESC
            """,
            [days],
        ).fetchall()
        return [RunCounts(*r[:9]) for r in rows]

    def backlog(self) -> tuple[int, int, int, int]:
        """(pending, failed after retries, expired, unconfirmed) over the whole ledger."""
        row = self.con.execute(
            f"SELECT count(*) FILTER (WHERE state = '{PENDING}'), "
            f"count(*) FILTER (WHERE state = '{FAILED}' AND reason = '{RETRYABLE}'), "
            f"count(*) FILTER (WHERE state = '{FAILED}' AND reason = '{EXPIRED}'), "
            f"count(*) FILTER (WHERE state = '{FAILED}' AND reason = '{UNCONFIRMED}') FROM {TABLE}"
        ).fetchall()[0]
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def summary(
        self, *, send_date: date | None = None, run_id: str | None = None, errors: int = 5
    ) -> LedgerSummary:
        """Counts per state and skip reason, and the most recent error groups, for a day and/or run."""
        where, params = ["TRUE"], []
        if send_date is not None:
            where.append("send_date = ?")
            params.append(send_date)
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        cond = " AND ".join(where)
        counts = dict(
            self.con.execute(
                f"SELECT state, count(*) FROM {TABLE} WHERE {cond} GROUP BY 1", params
            ).fetchall()
        )
        reasons = dict(
            self.con.execute(
                f"SELECT reason, count(*) FROM {TABLE} WHERE {cond} AND state = 'skipped' GROUP BY 1 ORDER BY 2 DESC",
                params,
            ).fetchall()
        )
        rows = self.con.execute(
            f"""
            SELECT error_code, error_subcode, error_message, max(fbtrace_id), count(*), max(updated_at)
            FROM {TABLE} WHERE {cond} AND state = 'failed' AND coalesce(reason, '') NOT IN ('{EXPIRED}', '{UNCONFIRMED}')
            GROUP BY 1, 2, 3 ORDER BY 6 DESC LIMIT {int(errors)}
            """,
            params,
        ).fetchall()
        last = [
            dict(
                zip(
                    ("error_code", "error_subcode", "error_message", "fbtrace_id", "events", "at"),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ]
        return LedgerSummary(
            counts={s: int(counts.get(s, 0)) for s in STATES}, skip_reasons=reasons, last_errors=last
        )
