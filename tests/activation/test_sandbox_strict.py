"""The sandbox is as strict as Meta at the HTTP and URL level: malformed requests get 400/411, never a traceback
or a hung thread; a pixel id or API version Meta would refuse is refused."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from capi_helpers import TOKEN, make_events

from activation.sandbox import Sandbox


def _raw(sb: Sandbox, request: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes over a loopback socket and read the answer until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def _post_head(content_length: str, body: bytes = b"") -> bytes:
    return (
        b"POST /v26.0/123/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {content_length}\r\n\r\n".encode()
        + body
    )


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", ""])
def test_malformed_content_length_is_answered_400_and_the_server_stays_up(sb, capfd, value):
    """Content-Length abc/-1/1e3/empty: HTTP 400 at once (no traceback, no thread waiting forever)."""
    started = time.monotonic()
    answer = _raw(sb, _post_head(value, b"{}"))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert time.monotonic() - started < 3
    assert "Traceback" not in capfd.readouterr().err
    ok = requests.post(
        f"{sb.url}/v26.0/123/events",
        json={"data": [e.payload for e in make_events(1)], "access_token": TOKEN},
        timeout=5,
    )
    assert ok.status_code == 200


def test_post_without_content_length_is_answered_411(sb):
    """A POST without Content-Length (or chunked) gets 411 Length Required."""
    head = b"POST /v26.0/123/events HTTP/1.1\r\nHost: x\r\n\r\n"
    assert _raw(sb, head).startswith(b"HTTP/1.1 411")
    chunked = b"POST /v26.0/123/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert _raw(sb, chunked).startswith(b"HTTP/1.1 411")


def test_oversized_body_is_answered_413_without_reading_it(sb):
    """A Content-Length past the sandbox's bound is refused before the body is read."""
    assert _raw(sb, _post_head(str(10**12))).startswith(b"HTTP/1.1 413")


def test_a_body_that_never_arrives_frees_the_thread(monkeypatch):
    """A client announcing more bytes than it sends is dropped after the read timeout, not held forever."""
    import activation.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module._Handler, "timeout", 0.5)
    with Sandbox() as sb:
        started = time.monotonic()
        answer = _raw(sb, _post_head("100", b"{"), timeout=5)
        assert answer == b"" and time.monotonic() - started < 3


def _graph_error(sb: Sandbox, path: str) -> tuple[int, dict]:
    r = requests.post(
        f"{sb.url}{path}",
        json={"data": [e.payload for e in make_events(1)], "access_token": TOKEN},
        timeout=5,
    )
    return r.status_code, r.json().get("error", {})


def test_non_numeric_pixel_id_is_refused_as_an_unknown_object(sb):
    """Pixel `abc`: code 100 subcode 33 (the object does not exist), as Meta answers; nothing kept."""
    status, err = _graph_error(sb, "/v26.0/abc/events")
    assert status == 400 and (err["code"], err["error_subcode"]) == (100, 33)
    assert sb.events() == []


@pytest.mark.parametrize(
    ("version", "code"), [("v1.0", 2635), ("v19.0", 2635), ("v26.1", 2500), ("v99.0", 2500)]
)
def test_api_version_meta_does_not_serve_is_refused(sb, version, code):
    """A retired version (v1.0) is refused as deprecated, one that does not exist as unknown path components."""
    status, err = _graph_error(sb, f"/{version}/123/events")
    assert status == 400 and err["code"] == code
    assert sb.events() == []


def test_supported_versions_are_served(sb):
    """Versions within Meta's two-year support window are accepted."""
    for version in ("v20.0", "v24.0", "v26.0"):
        r = requests.post(
            f"{sb.url}/{version}/123/events",
            json={"data": [e.payload for e in make_events(1, spec=version)], "access_token": TOKEN},
            timeout=5,
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "value", ["inf", "nan", "1e20", "-5", "0001-01-01", "9999-12-31T00:00:00", "tomorrow", ""]
)
def test_replay_clock_outside_any_plausible_moment_is_a_value_error(value):
    """--now inf / 1e20 / year 1 is a one-line ValueError (the CLI's exit 2), never an OverflowError."""
    from activation.sandbox_state import parse_now

    with pytest.raises(ValueError, match="--now must be"):
        parse_now(value)


def test_now_out_of_range_is_a_clean_exit_2_from_the_cli(tmp_path):
    """`pltv score-and-send --now inf` exits 2 with one line, before anything is loaded."""
    from typer.testing import CliRunner

    from pltv.cli import app

    result = CliRunner().invoke(
        app, ["score-and-send", "--date", "2026-10-30", "--now", "inf", "--spec", str(tmp_path / "s.json"),
              "--graph-url", "http://127.0.0.1:9", "--ledger", str(tmp_path / "l.duckdb")],
        env={"META_ACCESS_TOKEN": "t"},
    )  # fmt: skip
    assert result.exit_code == 2 and "--now must be" in result.output
    assert "Traceback" not in result.output


def test_appsecret_proof_can_be_exercised_from_the_cli(tmp_path):
    """`pltv sandbox` with META_APP_SECRET requires a matching appsecret_proof: right proof 200, wrong 400."""
    import os
    import socket
    import subprocess
    import sys

    from capi_helpers import client_config

    from activation.client import CapiClient

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "META_APP_SECRET": "cli-secret"}
    proc = subprocess.Popen([sys.executable, "-m", "pltv.cli", "sandbox", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/_sandbox/summary", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        payload = [make_events(1)[0].payload]
        with CapiClient(client_config(url, app_secret="cli-secret", max_attempts=1)) as good:
            assert good.send_batch(payload)[0].state == "sent"
        with CapiClient(client_config(url, app_secret="wrong", max_attempts=1)) as bad:
            outcome = bad.send_batch(payload)[0]
        assert outcome.state == "failed" and "appsecret_proof" in outcome.error_message
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_body_that_is_not_utf8_is_refused(sb):
    """Invalid UTF-8 is a 400 Graph error (it was decoded with replacement characters and accepted)."""
    body = b'{"access_token": "t", "data": [{"event_name": "\xff\xfe"}]}'
    answer = _raw(
        sb,
        _post_head(str(len(body)), body).replace(b"Content-Length", b"Connection: close\r\nContent-Length"),
    )
    assert answer.startswith(b"HTTP/1.1 400") and b'"code": 100' in answer
