"""The token and the body go only where they must: https (plain http only to loopback), never through a
redirect, no replay clock against any Meta host; what an endpoint answers is capped and redacted; an attempt
without a definitive answer is recorded as possibly delivered (real client, real loopback servers)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from capi_helpers import TOKEN, client_config, make_events

from activation.client import CapiClient
from activation.daily import DailyOptions
from activation.delivery import deliver
from activation.errors import ClientConfigError, EndpointRefused, RunStopped
from activation.ledger import Ledger, RunInfo
from pltv.config import CapiConfig, Config

RUN = RunInfo(run_id="run-1", spec_id="spec-1", send_date=date(2026, 10, 30))


class _Server:
    """A loopback HTTP server answering every POST with ``answer(body) -> (status, headers, bytes)``."""

    def __init__(self, answer) -> None:
        self.requests: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(body)
                status, headers, payload = answer(body)
                self.send_response(status)
                for k, v in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory():
    servers: list[_Server] = []

    def make(answer) -> _Server:
        servers.append(_Server(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_redirect_is_never_followed_and_stops_the_run_with_events_owed(sb, server_factory, tmp_path):
    """A 307 to another endpoint: not followed (the body holds the token), the run stops (exit 3), the target
    receives nothing and every event stays owed, never marked sent."""
    target = server_factory(lambda body: (200, {}, b'{"events_received": 5, "fbtrace_id": "x"}'))
    redirect = server_factory(lambda body: (307, {"Location": f"{target.url}/v26.0/123/events"}, b""))
    events = make_events(5)
    with Ledger(tmp_path / "l.duckdb") as ledger, CapiClient(client_config(redirect.url)) as client:
        with pytest.raises(EndpointRefused, match="HTTP 307 redirect"):
            deliver(events, [], client=client, ledger=ledger, run=RUN)
        states = ledger.states(e.event_id for e in events)
        assert ledger.settled(e.event_id for e in events) == set()  # owed to the next run
    assert target.requests == [] and len(redirect.requests) == 1
    assert {s for s, _ in states.values()} == {"pending"}


def test_an_echoing_endpoint_cannot_put_the_token_into_messages_logs_or_the_ledger(server_factory, tmp_path):
    """Meta's message and fbtrace_id are the endpoint's words: an echo of the request body (token, hashes)
    comes back capped, without control characters, redacted; an fbtrace_id that is not Meta-shaped is dropped."""

    def echo(body: bytes):
        text = body.decode() + "\x1b[2J\r\nphone 4155550199 ip 203.0.113.9"
        error = {"message": text * 3, "code": 100, "fbtrace_id": TOKEN}
        return 400, {"Content-Type": "application/json"}, json.dumps({"error": error}).encode()

    server = server_factory(echo)
    with CapiClient(client_config(server.url)) as client:
        (outcome,) = client.send_batch([make_events(1)[0].payload])
    assert outcome.state == "failed" and outcome.fbtrace_id is None
    message = outcome.error_message
    assert TOKEN not in message and "\x1b" not in message and "\n" not in message and len(message) <= 300
    assert "4155550199" not in message and "203.0.113.9" not in message
    assert not any(v in message for v in make_events(1)[0].payload["user_data"].values())


@pytest.mark.parametrize(
    ("fault", "maybe"),
    [("latency", True), ("drop", True), ("drop_after", True), ("http_500", False), ("throttle", False)],
)
def test_an_attempt_without_a_definitive_answer_is_recorded_as_maybe_delivered(sb, fault, maybe):
    """A read timeout or a connection reset after the body left may have delivered; a Graph error body
    (5xx or throttling) definitely did not."""
    sb.set_faults(rate=1.0, kinds=(fault,), latency_s=0.4)
    config = client_config(sb.url, max_attempts=2, read_timeout_s=0.2)
    with CapiClient(config) as client:
        (outcome,) = client.send_batch([make_events(1)[0].payload])
    assert outcome.state == "failed" and outcome.retryable and outcome.maybe_delivered is maybe


def test_connection_refused_is_a_definite_failure():
    """Nothing listens: the body never left, so the event stays owed (never unconfirmed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with CapiClient(client_config(f"http://127.0.0.1:{port}", max_attempts=2)) as client:
        (outcome,) = client.send_batch([make_events(1)[0].payload])
    assert outcome.state == "failed" and not outcome.maybe_delivered


@pytest.mark.parametrize("url", ["http://203.0.113.9", "http://graph.facebook.com", "http://10.0.0.5:8787"])
def test_plain_http_off_loopback_is_refused_before_anything_is_sent(url):
    """The token would cross the network in clear: ClientConfigError, nothing built or sent."""
    with pytest.raises(ClientConfigError, match="plain http"):
        client_config(url)


def test_cli_with_a_plain_http_graph_url_exits_2_and_sends_nothing(sb, tmp_path):
    """`--graph-url http://203.0.113.9` through a loopback proxy: exit 2, the proxy sees no request."""
    env = {**os.environ, "META_ACCESS_TOKEN": TOKEN, "HTTP_PROXY": sb.url, "http_proxy": sb.url}
    before = sb.summary()["stats"]["requests"]
    proc = subprocess.run(
        [sys.executable, "-m", "pltv.cli", "score-and-send", "--date", "2026-10-30", "--spec",
         str(tmp_path / "spec.json"), "--pixel-id", "123", "--graph-url", "http://203.0.113.9",
         "--ledger", str(tmp_path / "l.duckdb")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "plain http to 203.0.113.9" in proc.stderr and "Traceback" not in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
    assert sb.summary()["stats"]["requests"] == before and not (tmp_path / "l.duckdb").exists()


@pytest.mark.parametrize(
    "url",
    ["https://GRAPH.FACEBOOK.COM", "https://graph.facebook.com.", "https://Graph.Facebook.com:443/",
     "https://graph-video.facebook.com", "https://sandbox@graph.facebook.com"],
)  # fmt: skip
def test_the_replay_clock_is_refused_for_every_meta_host(url):
    """--now against Meta by any spelling of its host is refused (it was a case-sensitive substring test)."""
    config = Config(capi=CapiConfig(pixel_id="1", graph_url=url))
    with pytest.raises(ClientConfigError, match="refused for sending to Meta"):
        DailyOptions.from_config(
            config, run_date=date(2026, 10, 30), spec_path="s.json", access_token="t", replay_now="2026-10-30"
        )


def test_run_stopped_leaves_unsent_batches_owed_as_never_delivered(tmp_path):
    """A token error on the first batch: the batches that never left are owed and not 'may have reached'."""
    from activation.sandbox import Sandbox

    events = make_events(30)

    with Sandbox(access_token=TOKEN) as strict, Ledger(tmp_path / "l.duckdb") as ledger:
        config = client_config(strict.url, batch_size=5, max_workers=1, access_token="wrong")
        with CapiClient(config) as client, pytest.raises(RunStopped):
            deliver(events, [], client=client, ledger=ledger, run=RUN)
        reasons = ledger.con.execute("SELECT reason, count(*) FROM capi_events GROUP BY 1").fetchall()
    assert dict(reasons).get("not_sent", 0) >= 25
