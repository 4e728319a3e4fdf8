"""End to end over a loopback socket: client + ledger + sandbox, exactly once, faults, bad events, bad token."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date

import pytest
from capi_helpers import TOKEN, client_config, make_events

from activation.client import CapiClient
from activation.delivery import deliver
from activation.errors import AccessDenied, BatchRefused, EndpointRefused
from activation.ledger import Ledger, RunInfo
from activation.sandbox import Sandbox


def _run(run_id: str) -> RunInfo:
    return RunInfo(run_id=run_id, spec_id="spec-1", send_date=date(2026, 10, 30), model_version="3")


def _with_unhashed_email(events: list, index: int) -> tuple[list, object]:
    """The events with event ``index`` carrying a raw (unhashed) email, which Meta rejects (code 100)."""
    bad = events[index]
    payload = dict(bad.payload) | {"user_data": {"em": "Someone@Example.com", "client_user_agent": "UA"}}
    events[index] = dataclasses.replace(bad, payload=payload)
    return events, bad


def _received(sb) -> Counter:
    return Counter(e["event_id"] for e in sb.events())


def test_10k_events_arrive_exactly_once_and_a_rerun_sends_nothing(sb, tmp_path):
    """Every event_id arrives once; the same run again sends nothing because the ledger says sent."""
    events = make_events(10_000)
    with Ledger(tmp_path / "ledger.duckdb") as ledger, CapiClient(client_config(sb.url)) as client:
        report = deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        assert (report.sent, report.failed) == (10_000, 0)
        requests_before = sb.summary()["stats"]["requests"]
        again = deliver(events, [], client=client, ledger=ledger, run=_run("r2"))
        assert (again.sent, again.already_done) == (0, 10_000)
        assert ledger.summary().counts["sent"] == 10_000
    assert sb.summary()["stats"]["requests"] == requests_before == 10
    received = _received(sb)
    assert len(received) == 10_000 and set(received.values()) == {1}
    assert sb.summary()["stats"]["duplicates"] == 0


def test_everything_arrives_despite_20_percent_transient_faults(sb, tmp_path):
    """With 20% injected 5xx/throttling/drops/latency, retries deliver every event."""
    sb.set_faults(rate=0.2, seed=1, latency_s=0.05)
    events = make_events(10_000)
    with (
        Ledger(tmp_path / "ledger.duckdb") as ledger,
        CapiClient(client_config(sb.url, batch_size=500)) as client,
    ):
        report = deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        assert (report.sent, report.failed) == (10_000, 0)
        assert ledger.summary().counts == {"pending": 0, "sent": 10_000, "failed": 0, "skipped": 0}
    assert sb.summary()["stats"]["faults"] > 0
    assert set(_received(sb)) == {e.event_id for e in events}


def test_one_invalid_event_is_isolated_and_the_other_999_delivered(sb, tmp_path):
    """A batch rejected for one bad event is bisected: 999 sent, the bad one failed with Meta's code."""
    events, bad = _with_unhashed_email(make_events(1000), 637)
    with Ledger(tmp_path / "ledger.duckdb") as ledger, CapiClient(client_config(sb.url)) as client:
        report = deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        assert (report.sent, report.failed) == (999, 1)
        row = ledger.con.execute(
            "SELECT state, error_code, error_subcode, error_message, fbtrace_id FROM capi_events WHERE event_id = ?",
            [bad.event_id],
        ).fetchone()
    assert row[:3] == ("failed", 100, 2804017)
    assert "SHA-256" in row[3] and row[4]
    assert set(_received(sb)) == {e.event_id for e in events} - {bad.event_id}


def test_bad_token_stops_the_run_and_marks_nothing_sent(tmp_path):
    """A 190 raises AccessDenied with a clear message; no row is sent, all stay pending for a later run."""
    events = make_events(3000)
    with Sandbox(access_token="the-right-token") as strict, Ledger(tmp_path / "l.duckdb") as ledger:
        with CapiClient(client_config(strict.url)) as client, pytest.raises(AccessDenied) as info:
            deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        assert ledger.summary().counts == {"pending": 3000, "sent": 0, "failed": 0, "skipped": 0}
        assert strict.events() == []
    assert info.value.code == 190 and "190" in str(info.value) and "META_ACCESS_TOKEN" in str(info.value)
    assert TOKEN not in str(info.value)


def test_crash_mid_run_leaves_pending_rows_the_next_run_completes(sb, tmp_path):
    """Rows left pending by a dead run (sent or not) are completed next run; each event arrives once."""
    events = make_events(2500)
    path = tmp_path / "ledger.duckdb"
    with Ledger(path) as ledger, CapiClient(client_config(sb.url)) as client:
        ledger.claim_pending(events, run=_run("dead"))
        ledger.record_outcomes(client.send_batch([e.payload for e in events[:1000]], "0"))
        client.send_batch([e.payload for e in events[1000:1500]], "1")  # sent, then the process died
    with Ledger(path) as ledger:
        assert len(ledger.pending()) == 1500
        with CapiClient(client_config(sb.url)) as client:
            report = deliver(events, [], client=client, ledger=ledger, run=_run("next"))
        assert (report.sent, report.already_done) == (1500, 1000)
        assert ledger.pending() == [] and ledger.summary().counts["sent"] == 2500
    received = _received(sb)
    assert len(received) == 2500 and set(received.values()) == {1}
    assert sb.summary()["stats"]["duplicates"] == 500  # Meta-side dedup absorbs the re-sent half batch


def test_a_wrong_endpoint_stops_the_run_and_loses_no_event(sb, tmp_path):
    """A Graph URL with the version twice (Meta: 803 / not the events path): the run stops, nothing is
    marked rejected, and the run with the right URL sends every event, none reported as already sent."""
    events = make_events(300)
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        with CapiClient(client_config(f"{sb.url}/v26.0")) as wrong, pytest.raises(EndpointRefused) as info:
            deliver(events, [], client=wrong, ledger=ledger, run=_run("r1"))
        assert "Graph URL" in str(info.value) and "stay owed" in str(info.value)
        assert ledger.summary().counts["failed"] == 0
        with CapiClient(client_config(sb.url)) as right:
            report = deliver(events, [], client=right, ledger=ledger, run=_run("r2"))
    assert (report.sent, report.already_done, report.rejected_before) == (300, 0, 0)
    assert len(_received(sb)) == 300


def test_rejected_events_are_not_resent_nor_counted_as_sent(sb, tmp_path):
    """An event Meta rejected stays rejected; a re-run reports it as rejected earlier, not as sent."""
    events, _ = _with_unhashed_email(make_events(20), 3)
    with Ledger(tmp_path / "ledger.duckdb") as ledger, CapiClient(client_config(sb.url)) as client:
        first = deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        again = deliver(events, [], client=client, ledger=ledger, run=_run("r2"))
    assert (first.sent, first.failed) == (19, 1)
    assert (again.sent, again.already_done, again.rejected_before) == (0, 19, 1)


def test_owed_rows_too_old_for_meta_expire_and_only_lasting_skips_are_settled(tmp_path):
    """pending / failed-after-retries / clock-skipped rows older than the cutoff become failed/expired;
    a skip for the clock (in_future) stays owed until then, a skip for the user (no_consent) is settled."""
    from datetime import UTC, datetime, timedelta

    from activation.status import render_status
    from activation.types import SkippedEvent

    events = make_events(4, now=datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        ledger.claim_pending(events[:2], run=_run("dead"))
        skip = [SkippedEvent(e.event_id, e.event_name, e.event_time, e.value, r)
                for e, r in zip(events[2:], ("in_future", "no_consent"), strict=True)]  # fmt: skip
        ledger.record_skipped(skip, run=_run("r1"))
        ids = [e.event_id for e in events]
        assert ledger.settled(ids) == {events[3].event_id}
        assert ledger.expire(older_than=datetime(2026, 9, 1, tzinfo=UTC)) == 0
        assert ledger.expire(older_than=datetime(2026, 10, 1, tzinfo=UTC) + timedelta(days=7)) == 3
        assert ledger.settled(ids) == set(ids) and ledger.pending() == []
    assert "3 expired" in render_status(tmp_path / "ledger.duckdb")


def test_a_batch_whose_every_event_is_refused_stops_the_run_and_keeps_them_owed(sb, tmp_path):
    """Every event refused with the same code after bisection is a request/design error, not 40 bad
    events: the run stops, nothing is marked rejected, and the events stay owed."""
    events = make_events(40)
    for i in range(len(events)):
        events, _ = _with_unhashed_email(events, i)
    with Ledger(tmp_path / "ledger.duckdb") as ledger, CapiClient(client_config(sb.url)) as client:
        with pytest.raises(BatchRefused, match="every one of the 40 events"):
            deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
        assert ledger.summary().counts["failed"] == 0 and len(ledger.pending()) == 40
        assert ledger.settled(e.event_id for e in events) == set()


def test_status_of_a_ledger_file_no_run_has_written_yet(tmp_path):
    """An empty DuckDB file (a run killed before its first write) reads as an empty ledger, not an error."""
    import duckdb

    from activation.status import render_status

    duckdb.connect(str(tmp_path / "empty.duckdb")).close()
    assert render_status(tmp_path / "empty.duckdb") == "(the ledger is empty)"


def test_two_bad_events_at_the_tail_of_a_run_are_just_rejected(sb, tmp_path):
    """Below the whole-batch threshold, a batch of only bad events is rejected event by event: a couple of
    bad users must not stop every daily run from now on."""
    events = make_events(2)
    for i in range(2):
        events, _ = _with_unhashed_email(events, i)
    with Ledger(tmp_path / "ledger.duckdb") as ledger, CapiClient(client_config(sb.url)) as client:
        report = deliver(events, [], client=client, ledger=ledger, run=_run("r1"))
    assert (report.sent, report.failed) == (0, 2)
