"""A local Graph-API-compatible Conversions API endpoint, for tests, demos and staging runs.

``POST /{version}/{pixel_id}/events`` over a real loopback socket (HTTP/1.1 keep-alive, TCP_NODELAY),
validating like Meta documents (see :func:`activation.meta.validate_event`): token present, 1..1000
events, required fields, ``event_time`` within 7 days of the sandbox's clock and not in the future,
SHA-256 formats, ``AppendValue`` rules, insufficient-customer-information combinations. One bad event
rejects the whole batch with a Graph-style error body. Accepted events are deduplicated on
(``event_name``, ``event_id``) within 48 h and kept: ``GET /{version}/{pixel_id}/events`` returns them.

Accepts Meta's JSON body and the SDK's form body (``data`` = JSON list of JSON strings, token in the
query string). Seeded, reproducible fault injection (latency, HTTP 500, throttling codes 4/17/613/80004
as HTTP 400 with ``is_transient``, dropped connections before or after processing), set at start or
at runtime with ``POST /_sandbox/faults``; clock settable with ``POST /_sandbox/clock``.

Use ``with Sandbox() as sb: sb.url`` in tests (port 0, background thread), or ``pltv sandbox``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activation.client import appsecret_proof
from activation.errors import SandboxError
from activation.meta import DEDUP_WINDOW_S, MAX_EVENTS_PER_REQUEST, validate_event
from activation.sandbox_state import THROTTLE_CODES, FaultConfig, SandboxState, parse_now

log = logging.getLogger("activation.sandbox")

_EVENTS_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/events/?$")
# Graph API versions the sandbox serves: REFERENCE.md §1 (the SDK's v26.0 is the newest; every version is
# supported for at least 2 years, about six releases back). Graph versions are always ``vN.0``.
NEWEST_API_MAJOR = 26
OLDEST_API_MAJOR = 20
MAX_BODY_BYTES = (
    16 * 1024 * 1024
)  # no documented size limit (UNCONFIRMED): a bound so one request cannot eat RAM
READ_TIMEOUT_S = 30.0  # a request whose body never arrives frees its thread after this long


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    timeout = (
        READ_TIMEOUT_S  # StreamRequestHandler applies it to the socket: a stalled client cannot hang a thread
    )

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # request lines may carry tokens in SDK-style query strings: never logged

    # ---- plumbing ----------------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _plain(self, status: int, reason: str) -> None:
        """A malformed HTTP request: a plain answer, and the connection closed (its framing is unknown)."""
        body = f"{status} {reason}\n".encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering 400/411/413 (a framing error is never a traceback)."""
        if self.headers.get("Transfer-Encoding"):
            self._plain(411, "Length Required")  # chunked bodies are not accepted: send Content-Length
            return None
        values = self.headers.get_all("Content-Length") or []
        if not values:
            self._plain(411, "Length Required")
            return None
        if len(set(values)) != 1 or not values[0].strip().isdigit():
            self._plain(400, "Bad Request: Content-Length must be one non-negative integer")
            return None
        n = int(values[0])
        if n > MAX_BODY_BYTES:
            self._plain(413, "Payload Too Large")
            return None
        try:
            body = self.rfile.read(n) if n else b""
        except (TimeoutError, OSError):
            self.close_connection = True
            return None
        if len(body) != n:  # the client closed before sending what it announced
            self.close_connection = True
            return None
        return body

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _error(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        transient: bool = False,
        kind: str = "OAuthException",
    ) -> None:
        state = self.server.state
        with state.lock:
            trace = state.next_trace()
            if not transient:
                state.stats["rejected_batches"] += 1
                state.last_errors = (
                    state.last_errors
                    + [{"code": code, "error_subcode": subcode, "message": message, "fbtrace_id": trace}]
                )[-20:]
        error = {
            "message": message,
            "type": kind,
            "code": code,
            "error_subcode": subcode,
            "is_transient": transient,
            "error_user_title": "",
            "error_user_msg": "",
            "fbtrace_id": trace,
        }
        self._send_json(status, {"error": error})

    # ---- routes ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        state = self.server.state
        if _EVENTS_PATH.match(path):
            with state.lock:
                data = [e for _, e in state.accepted.values()] + list(state.without_id)
                stats = dict(state.stats)
            self._send_json(200, {"data": data, "stats": stats})
        elif path == "/_sandbox/summary":
            self._send_json(200, self.server.sandbox.summary())
        else:
            self._error(404, 803, "Unknown path", kind="GraphMethodException")

    def do_POST(self) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            return
        m = _EVENTS_PATH.match(split.path)
        if m:
            if self._refuse_path(m.group(1), m.group(2)):
                return
            self._events(body, parse_qs(split.query), m.group(2))
        elif split.path == "/_sandbox/faults":
            try:
                changes = json.loads(body or b"{}")
                if "kinds" in changes:
                    changes["kinds"] = tuple(changes["kinds"])
                self.server.sandbox.set_faults(**changes)
            except (ValueError, TypeError) as exc:
                self._error(400, 100, f"bad fault settings: {exc}")
                return
            self._send_json(200, asdict(self.server.state.faults))
        elif split.path == "/_sandbox/clock":
            try:
                self.server.sandbox.set_now(json.loads(body or b"{}")["now"])
            except (ValueError, KeyError, TypeError):
                self._error(400, 100, 'expected {"now": ISO datetime or unix seconds}')
                return
            self._send_json(200, {"now": self.server.state.clock()})
        elif split.path == "/_sandbox/reset":
            with self.server.state.lock:
                self.server.state.reset()
            self._send_json(200, {"reset": True})
        else:
            self._error(404, 803, "Unknown path", kind="GraphMethodException")

    def _refuse_path(self, version: str, pixel_id: str) -> bool:
        """Answer as the Graph API does for a version it does not serve or a pixel id that cannot exist."""
        major, minor = (int(part) for part in version[1:].split("."))
        if minor != 0 or major > NEWEST_API_MAJOR:
            self._error(400, 2500, f"Unknown path components: /{version}", kind="OAuthException")
            return True
        if major < OLDEST_API_MAJOR:
            # the Marketing API's answer to a retired version (CAPI calls count as Marketing API calls)
            self._error(
                400,
                2635,
                f"(#2635) You are calling a deprecated version of the Ads API. Please update to the latest "
                f"version: v{NEWEST_API_MAJOR}.0.",
            )
            return True
        if not pixel_id.isascii() or not pixel_id.isdigit():
            # REFERENCE.md §6: 100 + subcode 33 = the pixel does not exist or permissions are missing
            self._error(
                400,
                100,
                "Unsupported post request. Object with ID does not exist, cannot be loaded due to missing "
                "permissions, or does not support this operation",
                subcode=33,
                kind="GraphMethodException",
            )
            return True
        return False

    def _events(self, body: bytes, query: Mapping[str, list[str]], pixel_id: str) -> None:
        state = self.server.state
        with state.lock:
            state.stats["requests"] += 1
            faults = state.faults
            fault = (
                state.rng.choice(faults.kinds) if faults.rate and state.rng.random() < faults.rate else None
            )
            throttle_code = state.rng.choice(THROTTLE_CODES)
            if fault:
                state.stats["faults"] += 1
                state.fault_counts[fault] = state.fault_counts.get(fault, 0) + 1
        if fault == "latency":
            time.sleep(faults.latency_s)
        elif fault == "http_500":
            self._error(500, 2, "Service temporarily unavailable", transient=True)
            return
        elif fault == "throttle":
            self._error(
                400, throttle_code, f"(#{throttle_code}) Application request limit reached", transient=True
            )
            return
        elif fault == "drop":
            self._drop()
            return
        params = self._params(body, query)
        if params is None:
            self._error(400, 100, "Request body must be JSON or form-encoded with a data parameter")
            return
        token = params.get("access_token")
        if not token:
            self._error(400, 104, "An access token is required to request this resource.")
            return
        if state.access_token is not None and token != state.access_token:
            self._error(400, 190, "Invalid OAuth access token - Cannot parse access token")
            return
        if state.app_secret is not None and params.get("appsecret_proof") != appsecret_proof(
            state.app_secret, token
        ):
            self._error(400, 100, "Invalid appsecret_proof provided in the API argument", subcode=None)
            return
        data = params.get("data")
        if not isinstance(data, list) or not data:
            self._error(400, 100, "(#100) The parameter data is required and must be a non-empty list")
            return
        if len(data) > MAX_EVENTS_PER_REQUEST:
            self._error(400, 100, f"(#100) A batch may hold at most {MAX_EVENTS_PER_REQUEST} events")
            return
        now = state.clock()
        for event in data:
            rejection = validate_event(event, now=now)
            if rejection is not None:
                self._error(400, rejection.code, rejection.message, subcode=rejection.subcode)
                return
        with state.lock:
            for event in data:
                event_id = event.get("event_id")
                if event_id is None:
                    state.without_id.append(event)
                    state.stats["accepted"] += 1
                    continue
                key = (event["event_name"], str(event_id))
                first = state.accepted.get(key)
                if first is not None and now - first[0] <= DEDUP_WINDOW_S:
                    state.stats["duplicates"] += 1
                else:
                    state.accepted[key] = (now, event)
                    state.stats["accepted"] += 1
                    state.counted[key] = state.counted.get(key, 0) + 1
            trace = state.next_trace()
        if fault == "drop_after":
            self._drop()  # processed, but the response is lost: the client retries, dedup absorbs it
            return
        self._send_json(200, {"events_received": len(data), "messages": [], "fbtrace_id": trace})

    @staticmethod
    def _params(body: bytes, query: Mapping[str, list[str]]) -> dict[str, Any] | None:
        params: dict[str, Any] = {k: v[0] for k, v in query.items()}
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError:  # Meta parses UTF-8 only: a mangled body is refused, not guessed
            return None
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                return None
            if not isinstance(parsed, dict):
                return None
            params.update(parsed)
        elif text:
            params.update({k: v[0] for k, v in parse_qs(text).items()})
        data = params.get("data")
        try:
            if isinstance(data, str):
                data = json.loads(data)
            if isinstance(data, list):
                data = [json.loads(e) if isinstance(e, str) else e for e in data]
        except ValueError:
            return None
        params["data"] = data
        return params


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    state: SandboxState
    sandbox: Sandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (timed out, killed) is normal here: no traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.error("sandbox.request_failed error=%s", type(exc).__name__)


class Sandbox:
    """The sandbox server. ``with Sandbox() as sb:`` serves on a free loopback port in the background."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        now: str | float | datetime | None = None,
        clock: Callable[[], float] | None = None,
        access_token: str | None = None,
        app_secret: str | None = None,
    ) -> None:
        self._real_clock = clock or time.time
        self._offset = 0.0
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise SandboxError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
            ) from exc
        self._server.state = SandboxState(faults or FaultConfig(), self.now, access_token, app_secret)
        self._server.sandbox = self
        if now is not None:
            self.set_now(now)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to use as the client's ``graph_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def now(self) -> float:
        """The sandbox's clock (unix seconds): the real clock shifted by ``set_now``."""
        return self._real_clock() + self._offset

    def set_now(self, now: str | float | datetime) -> None:
        """Move the clock so that it reads ``now`` at this instant (and runs on from there)."""
        self._offset = parse_now(now) - self._real_clock()

    def set_faults(self, **changes: Any) -> FaultConfig:
        """Change fault injection (rate, seed, kinds, latency_s); re-seeds the generator."""
        state = self._server.state
        with state.lock:
            faults = replace(state.faults, **changes)
            state.set_faults(faults)
        return faults

    def events(self) -> list[dict[str, Any]]:
        """The accepted (deduplicated) events."""
        with self._server.state.lock:
            return [e for _, e in self._server.state.accepted.values()] + list(self._server.state.without_id)

    def counted(self) -> dict[tuple[str, str], int]:
        """How many times each (event_name, event_id) was counted: more than once means a re-send after
        Meta's 48 h dedup window (a double-counted value)."""
        with self._server.state.lock:
            return dict(self._server.state.counted)

    def summary(self) -> dict[str, Any]:
        """Counts per event name, request/duplicate/fault counts and the last errors."""
        state = self._server.state
        with state.lock:
            per_name: dict[str, int] = {}
            for name, _ in state.accepted:
                per_name[name] = per_name.get(name, 0) + 1
            return {
                "now": datetime.fromtimestamp(state.clock(), UTC).isoformat(),
                "stats": dict(state.stats),
                "events_by_name": per_name,
                "faults": asdict(state.faults) | {"injected": dict(state.fault_counts)},
                "last_errors": list(state.last_errors),
            }

    def start(self) -> Sandbox:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="capi-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until :meth:`stop` (or KeyboardInterrupt)."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
