"""The ledger's state machine: every transition from every place, and status per run (real DuckDB files)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from activation.ledger import TABLE, Ledger, RunInfo
from activation.ledger_states import PLACES, TRANSITIONS, may_leave, place_of
from activation.status import render_status
from activation.types import EventOutcome, PlannedEvent, SkippedEvent

T0 = datetime(2026, 10, 30, 1, 0)
EVENT_TIME = int(datetime(2026, 10, 29, 12, tzinfo=UTC).timestamp())
#: one row per place: (state, reason)
ROWS = {
    "pending": ("pending", None),
    "sent": ("sent", None),
    "failed_retryable": ("failed", "retries_exhausted"),
    "failed_for_good": ("failed", "rejected"),
    "skipped_for_clock": ("skipped", "in_future"),
    "skipped_for_good": ("skipped", "no_consent"),
    "unconfirmed": ("failed", "unconfirmed"),
}
RUN = RunInfo(run_id="run-2", spec_id="spec-1", send_date=date(2026, 10, 30), model_version="1")


def _ledger_with(tmp_path, place: str) -> Ledger:
    ledger = Ledger(tmp_path / f"{place}.duckdb", clock=lambda: T0)
    state, reason = ROWS[place]
    ledger.con.execute(
        f"INSERT INTO {TABLE} (event_id, run_id, spec_id, send_date, event_name, event_time, value, state, "
        "reason, created_at, updated_at, maybe_delivered_at) VALUES ('e1', 'run-1', 'spec-1', "
        "DATE '2026-10-30', 'pLTV_D3', ?, 10.0, ?, ?, ?, ?, ?)",
        [EVENT_TIME, state, reason, T0, T0, T0],  # every row may have reached Meta at T0
    )
    assert place_of(state, reason) == place
    return ledger


def _apply(ledger: Ledger, transition: str) -> None:
    if transition == "skip":
        ledger.record_skipped([SkippedEvent("e1", "pLTV_D3", EVENT_TIME, 10.0, "too_old")], run=RUN)
    elif transition == "claim":
        ledger.claim_pending([PlannedEvent("e1", "pLTV_D3", EVENT_TIME, 10.0, {})], run=RUN)
    elif transition == "outcome":
        ledger.record_outcomes([EventOutcome("e1", "sent", 1, 1, "trace")])
    elif transition == "settle":
        ledger.settle_unconfirmed(now=datetime(2026, 11, 2, tzinfo=UTC), window_s=47 * 3600)
    elif transition == "supersede":
        ledger.supersede(["e1"])
    else:
        ledger.expire(older_than=datetime(2026, 11, 30, tzinfo=UTC))


def _row(ledger: Ledger) -> tuple:
    return ledger.con.execute(f"SELECT state, reason, run_id FROM {TABLE} WHERE event_id = 'e1'").fetchall()[
        0
    ]


def test_every_place_has_a_row_and_owed_rows_are_the_ones_expire_may_take():
    """The table names every place once; 'sent' is left by no transition."""
    assert set(ROWS) == set(PLACES)
    assert all("sent" not in sources for sources, _ in TRANSITIONS.values())


def test_places_partition_the_rows_null_reasons_included():
    """Every (state, reason) row is in exactly one place, the one place_of names (transitions may name the
    places a row may not be in)."""
    import duckdb

    con = duckdb.connect()
    reasons = [None, "retries_exhausted", "rejected", "unconfirmed", "in_future", "no_consent", "expired"]
    for state in ("pending", "sent", "failed", "skipped"):
        for reason in reasons:
            con.execute(
                "CREATE OR REPLACE TABLE r AS SELECT ?::VARCHAR AS state, ?::VARCHAR AS reason",
                [state, reason],
            )
            hits = [
                p
                for p, sql in PLACES.items()
                if con.execute(f"SELECT {sql.format(t='r')} FROM r").fetchall()[0][0]
            ]
            assert hits == [place_of(state, reason)], (state, reason)
            for transition, (sources, _) in TRANSITIONS.items():
                may = con.execute(f"SELECT {may_leave(transition, 'r')} FROM r").fetchall()[0][0]
                assert bool(may) == (place_of(state, reason) in sources), (state, reason, transition)


@pytest.mark.parametrize("place", sorted(ROWS))
@pytest.mark.parametrize("transition", sorted(TRANSITIONS))
def test_each_transition_moves_exactly_the_rows_the_table_allows(tmp_path, place, transition):
    """A row changes by a transition iff its place is one the transition may leave, into the target state."""
    with _ledger_with(tmp_path, place) as ledger:
        before = _row(ledger)
        _apply(ledger, transition)
        after = _row(ledger)
    sources, target = TRANSITIONS[transition]
    if place in sources:
        assert after[0] in target.split("|") and after != before
        want = {"skip": ("skipped", "too_old"), "claim": ("pending", None), "outcome": ("sent", None),
                "expire": ("failed", "expired"), "settle": ("failed", "unconfirmed"),
                "supersede": ("failed", "unconfirmed")}[transition]  # fmt: skip
        assert after[:2] == want
    else:
        assert after == before


def test_a_new_event_id_may_take_skip_and_claim(tmp_path):
    """A new event id enters as skipped or pending."""
    with Ledger(tmp_path / "l.duckdb", clock=lambda: T0) as ledger:
        ledger.record_skipped([SkippedEvent("s", "pLTV_D3", EVENT_TIME, 1.0, "no_consent")], run=RUN)
        assert ledger.claim_pending([PlannedEvent("p", "pLTV_D3", EVENT_TIME, 1.0, {})], run=RUN) == ["p"]
        assert ledger.states(["s", "p"]) == {"s": ("skipped", "no_consent"), "p": ("pending", None)}


def test_a_rerun_skipping_for_the_same_reason_leaves_the_skip_with_the_first_run(tmp_path):
    """Status attributes a skip to the run that made it: a re-run skipping it again takes nothing over."""
    path = tmp_path / "ledger.duckdb"
    first = RunInfo(run_id="run-20261101-aaaaaaaa", spec_id="spec-1", send_date=date(2026, 11, 1))
    rerun = RunInfo(run_id="run-20261101-bbbbbbbb", spec_id="spec-1", send_date=date(2026, 11, 1))
    skips = [
        SkippedEvent(f"s{i}", "AppendValue", EVENT_TIME, 1.0, "missing_conversion_ids") for i in range(19)
    ]
    sent = [PlannedEvent(f"p{i}", "AppendValue", EVENT_TIME, 1.0, {}) for i in range(14)]
    clock = iter(
        [T0, T0, T0, datetime(2026, 11, 1, 1, 5), datetime(2026, 11, 1, 1, 5), datetime(2026, 11, 1, 1, 5)]
    )
    with Ledger(path, clock=lambda: next(clock)) as ledger:
        for run in (first, rerun):
            ledger.record_skipped(skips, run=run)
            claimed = ledger.claim_pending(sent, run=run)
            ledger.record_outcomes([EventOutcome(i, "sent", 1) for i in claimed])
        # a later run that skips an event for another reason does take it over
        ledger.record_skipped([SkippedEvent("s0", "AppendValue", EVENT_TIME, 1.0, "no_consent")], run=rerun)
    lines = render_status(path).splitlines()
    runs = {line.split()[1]: line.split()[3:5] for line in lines[1:] if line.startswith("2026-11-01")}
    assert runs == {first.run_id: ["14", "18"], rerun.run_id: ["0", "1"]}
