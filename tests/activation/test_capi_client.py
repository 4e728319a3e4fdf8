"""Client logic: the pure retry decision, backoff, auth fields, and retries/deadline over a real socket."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest
import requests
from capi_helpers import SECRET, TOKEN, client_config, make_events
from hypothesis import given
from hypothesis import strategies as st

from activation.client import (
    CapiClient,
    appsecret_proof,
    backoff_delay,
    classify,
    is_retryable,
    request_body,
)


@pytest.mark.parametrize(
    ("status", "error", "verdict"),
    [
        (200, None, "ok"),
        (None, None, "retry"),
        (503, None, "retry"),
        (500, {"code": 2, "is_transient": True}, "retry"),
        (400, {"code": 17, "error_subcode": 2446079}, "retry"),
        (400, {"code": 613}, "retry"),
        (400, {"code": 80004}, "retry"),
        (400, {"code": 368}, "retry"),
        (400, {"code": 9999, "is_transient": True}, "retry"),
        (400, {"code": 100, "error_subcode": 2804003}, "split"),
        (400, {"code": 100, "error_subcode": 33}, "fatal"),
        (400, {"code": 190}, "fatal"),
        (403, {"code": 10}, "fatal"),
        (403, {"code": 200}, "fatal"),
        (400, {"code": 2500}, "fatal"),
        (404, None, "fatal"),
        (400, {"code": 803}, "fatal"),
        (400, {"code": 12345}, "fatal"),
    ],
)
def test_classification_follows_metas_error_codes_not_only_http_status(status, error, verdict):
    """Throttling codes arriving as HTTP 400 retry; 100 splits; token/permission codes, a wrong endpoint
    and unknown refusals stop the run (events stay owed), never mark events rejected."""
    assert classify(status, error) == verdict
    assert is_retryable(status, error) == (verdict == "retry")


@given(attempt=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_backoff_is_jittered_and_capped(attempt, seed):
    """Backoff lies within [0, min(cap, base * 2^(attempt-1))]."""
    d = backoff_delay(attempt, base_s=0.5, cap_s=20.0, rng=random.Random(seed))
    assert 0 <= d <= min(20.0, 0.5 * 2 ** (attempt - 1))


def test_appsecret_proof_is_hmac_sha256_of_the_token():
    """appsecret_proof = hex(HMAC-SHA256(app_secret, access_token))."""
    assert (
        appsecret_proof(SECRET, TOKEN)
        == hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    )


def test_token_goes_in_the_body_never_the_url():
    """The endpoint URL carries no secret."""
    cfg = client_config("http://127.0.0.1:1")
    assert TOKEN not in cfg.url and "access_token" not in cfg.url
    assert TOKEN not in repr(cfg) and SECRET not in repr(cfg)


def test_retries_on_5xx_then_succeeds(sb):
    """Every request failing at first (rate 1) then recovering: the batch is delivered after retries."""
    sb.set_faults(rate=1.0, seed=3, kinds=("http_500",))
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 3:
            sb.set_faults(rate=0.0)

    with CapiClient(client_config(sb.url), sleep=sleep) as client:
        outcomes = client.send_batch([e.payload for e in make_events(10)])
    assert {o.state for o in outcomes} == {"sent"} and outcomes[0].attempts == 4
    assert len(sleeps) == 3


def test_retries_stop_at_the_attempt_cap_and_mark_failed_retryable(sb):
    """Persistent throttling ends as failed (retryable) after max_attempts, never an endless loop."""
    sb.set_faults(rate=1.0, seed=3, kinds=("throttle",))
    with CapiClient(client_config(sb.url, max_attempts=3), sleep=lambda s: None) as client:
        outcomes = client.send_batch([e.payload for e in make_events(5)])
    assert {(o.state, o.attempts, o.retryable) for o in outcomes} == {("failed", 3, True)}
    assert outcomes[0].error_code in (4, 17, 613, 80004)


def test_total_deadline_bounds_retrying(sb):
    """A total deadline stops retries even below the attempt cap (fake clock)."""
    sb.set_faults(rate=1.0, seed=3, kinds=("http_500",))
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += 10.0

    cfg = client_config(sb.url, max_attempts=100, deadline_s=25.0, backoff_base_s=1.0, backoff_cap_s=1.0)
    with CapiClient(cfg, sleep=sleep, clock=lambda: t[0]) as client:
        outcomes = client.send_batch([e.payload for e in make_events(2)])
    assert outcomes[0].state == "failed" and outcomes[0].attempts <= 4


def test_request_body_is_what_the_client_posts_and_drops_secrets_on_request(sb):
    """request_body: the sandbox accepts it as the client's own POST; secrets=False has no token or proof."""
    cfg = client_config(sb.url, test_event_code="TEST123")
    payloads = [e.payload for e in make_events(3)]
    body = request_body(payloads, cfg)
    resp = requests.post(cfg.url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert resp.status_code == 200 and resp.json()["events_received"] == 3
    assert [e["event_id"] for e in sb.events()] == [p["event_id"] for p in payloads]

    dry = request_body(payloads, cfg, secrets=False)
    assert TOKEN.encode() not in dry and b"appsecret_proof" not in dry
    assert json.loads(dry) == {
        "data": payloads,
        "test_event_code": "TEST123",
        "partner_agent": "pltv-toolkit",
    }
    assert json.loads(request_body(payloads, None)) == {"data": payloads}


def test_batches_that_end_while_the_caller_is_busy_are_handed_over_together(sb):
    """send() yields the outcomes of every batch that ended since the last yield: a slow consumer (a ledger
    write) gets fewer, larger lists, and together they hold each event exactly once."""
    import time

    events = [e.payload for e in make_events(60)]
    with CapiClient(client_config(sb.url, batch_size=10)) as client:
        yields = []
        for outcomes in client.send(events):
            yields.append([o.event_id for o in outcomes])
            time.sleep(0.3)  # the other batches end meanwhile
    ids = [i for y in yields for i in y]
    assert sorted(ids) == sorted(e["event_id"] for e in events)
    assert len(yields) < 6 and max(len(y) for y in yields) > 10
