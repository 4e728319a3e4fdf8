"""The sandbox answers like Meta: validation, Graph-style errors, dedup, SDK form bodies, seeded faults, clock."""

from __future__ import annotations

import json
import time

import requests
from capi_helpers import TOKEN, make_events

from activation.sandbox import Sandbox


def _post(sb, body, **kw):
    return requests.post(f"{sb.url}/v26.0/123/events", json=body, timeout=5, **kw)


def test_old_event_rejects_the_whole_batch_with_a_graph_error(sb):
    """One event older than 7 days: HTTP 400, code 100 subcode 2804003, nothing kept."""
    events = [e.payload for e in make_events(3)]
    events[1] = events[1] | {"event_time": int(time.time()) - 8 * 86400}
    r = _post(sb, {"data": events, "access_token": TOKEN})
    err = r.json()["error"]
    assert r.status_code == 400 and (err["code"], err["error_subcode"], err["is_transient"]) == (
        100,
        2804003,
        False,
    )
    assert err["fbtrace_id"] and err["type"] == "OAuthException"
    assert sb.events() == []


def test_missing_token_and_oversized_batches_are_refused(sb):
    """No token → code 104; more than 1000 events → code 100."""
    assert _post(sb, {"data": [e.payload for e in make_events(1)]}).json()["error"]["code"] == 104
    r = _post(sb, {"data": [e.payload for e in make_events(1001)], "access_token": TOKEN})
    assert r.json()["error"]["code"] == 100


def test_duplicates_on_name_and_id_are_kept_once(sb):
    """The same (event_name, event_id) twice is accepted once and counted as a duplicate."""
    data = [e.payload for e in make_events(5)]
    for _ in range(2):
        assert _post(sb, {"data": data, "access_token": TOKEN}).json()["events_received"] == 5
    got = requests.get(f"{sb.url}/v26.0/123/events", timeout=5).json()
    assert len(got["data"]) == 5 and got["stats"]["duplicates"] == 5


def test_sdk_form_body_with_token_in_query_is_accepted(sb):
    """The SDK's wire format (form body, data as JSON strings, token in query) is understood."""
    data = json.dumps([json.dumps(e.payload) for e in make_events(2)])
    r = requests.post(f"{sb.url}/v26.0/123/events?access_token={TOKEN}", data={"data": data}, timeout=5)
    assert r.json()["events_received"] == 2


def test_fault_injection_is_reproducible_with_a_seed(sb):
    """Same seed, same sequence of faults; the control endpoint sets them at runtime."""

    def sequence():
        requests.post(
            f"{sb.url}/_sandbox/faults", json={"rate": 0.5, "seed": 7, "kinds": ["http_500"]}, timeout=5
        )
        return [_post(sb, {"data": [], "access_token": TOKEN}).status_code for _ in range(20)]

    first, second = sequence(), sequence()
    assert first == second and 500 in first and 400 in first


def test_clock_can_be_set_to_replay_history():
    """With --now in the past, events from that week are accepted and today's are in the future."""
    with Sandbox(now="2026-10-30T00:00:00") as sb:
        then = make_events(2, now=sb.now())
        assert _post(sb, {"data": [e.payload for e in then], "access_token": TOKEN}).status_code == 200
        today = make_events(1, spec="x")
        assert _post(sb, {"data": [e.payload for e in today], "access_token": TOKEN}).status_code == 400


def test_now_with_a_utc_offset_is_the_same_instant():
    """--now with an offset is converted, not relabelled as UTC; naive means UTC."""
    from activation.sandbox_state import parse_now

    assert parse_now("2026-10-29T20:00:00-05:00") == parse_now("2026-10-30T01:00:00+00:00")
    assert parse_now("2026-10-30T01:00:00") == parse_now("2026-10-30T01:00:00Z") == 1_793_322_000.0


def test_bad_fault_options_and_clocks_are_activation_errors_that_are_value_errors():
    """FaultConfig and the --now clock raise SandboxConfigError (an ActivationError and a ValueError)."""
    import pytest

    from activation.errors import ActivationError, SandboxConfigError
    from activation.sandbox_state import FaultConfig, parse_now

    for bad in (
        lambda: FaultConfig(rate=1.5),
        lambda: FaultConfig(rate=0.1, kinds=("meteor",)),
        lambda: parse_now("inf"),
    ):
        with pytest.raises(SandboxConfigError) as info:
            bad()
        assert isinstance(info.value, ActivationError) and isinstance(info.value, ValueError)
