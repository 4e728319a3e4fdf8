"""What may have reached Meta is never re-sent after Meta's 48 h dedup window; a redesign never sends a user a
second value for the same event name; an old or foreign ledger file is handled (real DuckDB files)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from activation.errors import LedgerError
from activation.ledger import TABLE, Ledger, RunInfo
from activation.ledger_states import TRANSITIONS
from activation.types import EventOutcome, PlannedEvent

T0 = datetime(2026, 10, 27, 1, 0)
EVENT_TIME = int(datetime(2026, 10, 26, 12, tzinfo=UTC).timestamp())
WINDOW_S = 47 * 3600  # Meta's 48 h less the daily job's margin


def _run(n: int, spec: str = "spec-1") -> RunInfo:
    return RunInfo(run_id=f"run-{n}", spec_id=spec, send_date=date(2026, 10, 26 + n))


def _events(*ids: str, name: str = "pLTV_D1") -> list[PlannedEvent]:
    return [PlannedEvent(i, name, EVENT_TIME, 10.0, {}) for i in ids]


class _Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _reached(ledger: Ledger, event_id: str):
    return ledger.con.execute(
        f"SELECT maybe_delivered_at FROM {TABLE} WHERE event_id = ?", [event_id]
    ).fetchall()[0][0]


def test_no_transition_leaves_unconfirmed_or_sent():
    """Unconfirmed, like sent, is final: no run claims, skips or expires it."""
    assert all("unconfirmed" not in sources and "sent" not in sources for sources, _ in TRANSITIONS.values())


def test_a_timed_out_event_is_resent_inside_the_window_and_settled_unconfirmed_after(tmp_path):
    """A timeout after the body left: the claim moment is recorded; the next day it is re-sent (Meta dedups),
    two days later it is unconfirmed and never claimed again."""
    clock = _Clock(T0)
    with Ledger(tmp_path / "l.duckdb", clock=clock) as ledger:
        assert ledger.claim_pending(_events("a", "b"), run=_run(1)) == ["a", "b"]
        ledger.record_outcomes(
            [
                EventOutcome("a", "failed", 2, retryable=True, maybe_delivered=True),
                EventOutcome("b", "sent", 1, 2, "trace"),
            ]
        )
        assert _reached(ledger, "a") == T0 and _reached(ledger, "b") == T0
        clock.t = T0 + timedelta(days=1)
        assert ledger.settle_unconfirmed(now=clock.t, window_s=WINDOW_S) == 0
        assert ledger.claim_pending(_events("a"), run=_run(2)) == ["a"]  # inside the window: Meta dedups
        ledger.record_outcomes([EventOutcome("a", "failed", 2, retryable=True, maybe_delivered=True)])
        assert _reached(ledger, "a") == T0  # the first possible delivery, not the latest
        clock.t = T0 + timedelta(days=2)
        assert ledger.settle_unconfirmed(now=clock.t, window_s=WINDOW_S) == 1
        assert ledger.states(["a"]) == {"a": ("failed", "unconfirmed")}
        assert ledger.claim_pending(_events("a"), run=_run(3)) == []
        assert ledger.settled(["a"]) == {"a"}
        assert ledger.backlog() == (0, 0, 0, 1)


def test_definite_failures_stay_owed_until_too_old(tmp_path):
    """Connection refused or a Graph error body: nothing reached Meta, so the event stays owed (never
    unconfirmed) and expires only past Meta's 7 days."""
    clock = _Clock(T0)
    with Ledger(tmp_path / "l.duckdb", clock=clock) as ledger:
        ledger.claim_pending(_events("a"), run=_run(1))
        ledger.record_outcomes([EventOutcome("a", "failed", 6, error_code=2, retryable=True)])
        assert _reached(ledger, "a") is None
        clock.t = T0 + timedelta(days=5)
        assert ledger.settle_unconfirmed(now=clock.t, window_s=WINDOW_S) == 0
        assert ledger.claim_pending(_events("a"), run=_run(5)) == ["a"]


def test_a_dead_runs_pending_rows_are_settled_from_the_moment_they_were_claimed(tmp_path):
    """kill -9 after the claim: the rows may have reached Meta from the claim on; a re-claim the next day
    keeps that moment; past the window they are unconfirmed."""
    clock = _Clock(T0)
    with Ledger(tmp_path / "l.duckdb", clock=clock) as ledger:
        ledger.claim_pending(_events("a", "b"), run=_run(1))  # then the process dies
        clock.t = T0 + timedelta(hours=20)
        assert ledger.claim_pending(_events("a"), run=_run(2)) == ["a"]  # and this one dies too
        assert _reached(ledger, "a") == T0
        clock.t = T0 + timedelta(hours=50)
        assert ledger.settle_unconfirmed(now=clock.t, window_s=WINDOW_S) == 2
        assert ledger.states(["a", "b"]) == {"a": ("failed", "unconfirmed"), "b": ("failed", "unconfirmed")}


def test_a_redesign_serves_users_already_sent_and_supersedes_what_never_left(tmp_path):
    """Under an earlier spec: sent and may-have-reached rows mean the user is served (the latter settled as
    unconfirmed); a row that definitely never reached Meta is superseded and the new spec sends the user."""
    with Ledger(tmp_path / "l.duckdb", clock=lambda: T0) as ledger:
        ledger.claim_pending(_events("old-sent", "old-maybe", "old-refused", "old-dead"), run=_run(1))
        ledger.record_outcomes(
            [
                EventOutcome("old-sent", "sent", 1, 1),
                EventOutcome("old-maybe", "failed", 2, retryable=True, maybe_delivered=True),
                EventOutcome("old-refused", "failed", 6, error_code=2, retryable=True),
            ]
        )
        assert ledger.other_specs(event_name="pLTV_D1", spec_id="spec-2") == ["spec-1"]
        assert ledger.other_specs(event_name="pLTV_D3", spec_id="spec-2") == []
        ids = ["old-sent", "old-maybe", "old-refused", "old-dead", "unknown"]
        assert ledger.supersede(ids, write=False) == ({"old-sent", "old-maybe", "old-dead"}, 0)  # a dry run
        assert ledger.states(["old-maybe"]) == {"old-maybe": ("failed", "retries_exhausted")}
        served, settled = ledger.supersede(ids)
        assert served == {"old-sent", "old-maybe", "old-dead"} and settled == 2
        assert ledger.states(["old-maybe", "old-refused", "old-dead"]) == {
            "old-maybe": ("failed", "unconfirmed"),
            "old-refused": ("skipped", "superseded"),
            "old-dead": ("failed", "unconfirmed"),
        }


def test_a_ledger_from_before_the_column_gains_it_and_a_foreign_table_is_refused(tmp_path):
    """An older ledger file is migrated on its first write; a capi_events table of another tool is a
    LedgerError naming the missing columns, not a traceback."""
    old = tmp_path / "old.duckdb"
    with Ledger(old, clock=lambda: T0) as ledger:
        ledger.claim_pending(_events("a"), run=_run(1))
        ledger.con.execute(f"ALTER TABLE {TABLE} DROP COLUMN maybe_delivered_at")
    with Ledger(old, clock=lambda: T0) as ledger:
        assert ledger.settle_unconfirmed(now=T0 + timedelta(days=3), window_s=WINDOW_S) == 1
    foreign = tmp_path / "foreign.duckdb"
    with duckdb.connect(str(foreign)) as con:
        con.execute(f"CREATE TABLE {TABLE} (id INTEGER, payload VARCHAR)")
    with pytest.raises(LedgerError, match=r"not a pltv delivery ledger \(missing columns \['attempts'"):
        Ledger(foreign)
