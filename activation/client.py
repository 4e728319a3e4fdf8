"""Client for the Conversions API: batches, bounded concurrency, retries, bisection of rejected batches.

Transport kept apart from logic: :func:`classify`, :func:`is_retryable` and :func:`backoff_delay` are
pure; :class:`CapiClient` does the I/O with a pooled ``requests.Session`` and takes ``sleep``, ``clock``
and ``rng`` so tests run fast and reproducibly.

- ``POST {graph_url}/{api_version}/{pixel_id}/events`` with a JSON body ``{data, access_token,
  appsecret_proof?, test_event_code?, partner_agent?}``. The token is in the body, never the URL.
- Retries on HTTP 5xx, timeouts, dropped connections, ``is_transient`` and Meta's throttling/temporary
  codes; exponential backoff with full jitter, an attempt cap and a per-batch deadline.
- Code 100 (invalid parameter) rejects the whole batch: the batch is split in halves until the bad
  events are isolated (an event is marked rejected only on its own); the rest is delivered. If every
  event of a batch ends refused with the same error, the run stops instead (see below).
- Token/permission errors (190, 10, 200-299, 102, 104, 3, 100/33), and every other refusal that is
  about the request rather than an event (unknown pixel or path 803/2500, an answer that is not the
  Graph API's error envelope, an unknown code), raise a :class:`RunStopped` (:class:`AccessDenied` for the
  token, :class:`EndpointRefused` for the request, :class:`BatchRefused` for a whole batch) and stop the run: batches not yet
  sent are not sent and their events stay owed, so a configuration mistake never loses events.
- Logs carry batch numbers, counts, status codes and Meta's codes: never a batch's contents.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter

from activation.endpoint import check_graph_url, sanitize_server_text, sanitize_trace_id
from activation.errors import (
    AccessDenied,
    BatchRefused,
    ClientConfigError,
    DeliveryError,
    EndpointRefused,
    RunStopped,
)
from activation.meta import (
    FATAL_CODES,
    MAX_EVENTS_PER_REQUEST,
    REQUEST_CODES,
    RETRYABLE_CODES,
    SPLIT_CODES,
    TOKEN_SUBCODE_OF_100,
)
from activation.redaction import log_event
from activation.types import EventOutcome

log = logging.getLogger("activation.client")

# a batch of at least this many events, every one refused with the same error, is a request or design
# error (stop the run); a couple of bad events at the tail of a run are just rejected
WHOLE_BATCH_MIN = 10
Verdict = Literal["ok", "retry", "split", "fatal"]


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Where and how to send. Secrets are excluded from repr; the CLI reads them from the environment."""

    pixel_id: str
    access_token: str = field(repr=False)
    app_secret: str | None = field(default=None, repr=False)
    graph_url: str = "https://graph.facebook.com"
    api_version: str = "v26.0"
    test_event_code: str | None = None
    partner_agent: str | None = "pltv-toolkit"
    batch_size: int = MAX_EVENTS_PER_REQUEST
    max_workers: int = 4
    connect_timeout_s: float = 1.5
    read_timeout_s: float = 1.5
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 20.0
    deadline_s: float = 120.0  # per batch, retries included

    def __post_init__(self) -> None:
        check_graph_url(self.graph_url)  # https, or plain http only to loopback: the token is in the body
        if not 1 <= self.batch_size <= MAX_EVENTS_PER_REQUEST:
            raise ClientConfigError(f"batch_size must be 1..{MAX_EVENTS_PER_REQUEST}, got {self.batch_size}")
        if self.max_workers < 1 or self.max_attempts < 1:
            raise ClientConfigError("max_workers and max_attempts must be >= 1")

    @property
    def url(self) -> str:
        """The events endpoint (no secret in it)."""
        return f"{self.graph_url.rstrip('/')}/{self.api_version}/{self.pixel_id}/events"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in logs or messages."""
        proof = appsecret_proof(self.app_secret, self.access_token) if self.app_secret else ""
        return tuple(s for s in (self.access_token, self.app_secret, proof) if s)


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """hex(HMAC-SHA256(key=app_secret, msg=access_token)), as Meta's Secure Requests guide defines."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def classify(status: int | None, error: Mapping[str, Any] | None) -> Verdict:
    """The decision for one response: ``status`` None means no response (timeout, dropped connection)."""
    if status is None:
        return "retry"
    if error is None:  # no Graph API error envelope: the endpoint itself is wrong (or a proxy answered)
        return "ok" if 200 <= status < 300 else ("retry" if status >= 500 or status == 429 else "fatal")
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    if code in FATAL_CODES or code in REQUEST_CODES or (code == 100 and subcode == TOKEN_SUBCODE_OF_100):
        return "fatal"
    if code in RETRYABLE_CODES or error.get("is_transient") is True:
        return "retry"
    if code in SPLIT_CODES:
        return "split"
    if status >= 500 or status == 429:
        return "retry"
    return "fatal"  # not about one event, not known to pass: stop and keep the events owed


def is_retryable(status: int | None, error: Mapping[str, Any] | None) -> bool:
    """True when the same request may succeed later (transient error, throttling, 5xx, no response)."""
    return classify(status, error) == "retry"


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))


_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def _encode(obj: Any) -> bytes:
    """Compact JSON bytes (ASCII-escaped, as ``json.dumps`` does by default)."""
    return _ENCODER.encode(obj).encode()


def _body(encoded: Sequence[bytes], fields: Mapping[str, str]) -> bytes:
    """``{"data":[<encoded events>], <fields>}``, the events already encoded by :func:`_encode`."""
    tail = b"]," + _encode(dict(fields))[1:] if fields else b"]}"
    return b'{"data":[' + b",".join(encoded) + tail


def body_fields(config: ClientConfig, *, secrets: bool = True) -> dict[str, str]:
    """The request's fields beside ``data``: token and proof (only when ``secrets``), test code, agent."""
    fields = {}
    if secrets:
        fields["access_token"] = config.access_token
        if config.app_secret:
            fields["appsecret_proof"] = appsecret_proof(config.app_secret, config.access_token)
    for k in ("test_event_code", "partner_agent"):
        if getattr(config, k):
            fields[k] = getattr(config, k)
    return fields


def request_body(
    payloads: Sequence[Mapping[str, Any]], config: ClientConfig | None, *, secrets: bool = True
) -> bytes:
    """The exact body :class:`CapiClient` POSTs for these events; ``secrets=False`` leaves out the token and
    the proof (the dry-run outbox); without a config, the events alone."""
    fields = body_fields(config, secrets=secrets) if config is not None else {}
    return _body([_encode(p) for p in payloads], fields)


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class _Response:
    status: int | None
    error: Mapping[str, Any] | None
    events_received: int | None = None
    fbtrace_id: str | None = None
    # no definitive answer (a read timeout, a reset after the body left, a 5xx or a 200 without Meta's
    # answer): the events may have been delivered
    maybe_delivered: bool = False


def _body_never_left(exc: BaseException) -> bool:
    """A connection error raised before the request was sent (refused, DNS, connect timeout)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | ConnectTimeoutError):
            return True
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__, *getattr(e, "args", ())])
    return False


class CapiClient:
    """Sends events to ``config.url``. Thread-safe; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._own_session = session is None
        self.session = session or requests.Session()
        if self._own_session:
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(4, config.max_workers), max_retries=0)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._stop = threading.Event()
        self._fields = body_fields(config)

    def __enter__(self) -> CapiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Send nothing more: batches not started are dropped (their events stay owed), retries end."""
        self._stop.set()

    def close(self) -> None:
        """Close the pooled connections (when the session is the client's own)."""
        if self._own_session:
            self.session.close()

    # ---- one request -------------------------------------------------------------------------------

    def _post(self, body: bytes) -> _Response:
        cfg = self.config
        try:
            resp = self.session.post(
                cfg.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(cfg.connect_timeout_s, cfg.read_timeout_s),
                allow_redirects=False,  # a redirect would carry the body, token included, elsewhere
            )
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            return _Response(None, None, maybe_delivered=not _body_never_left(exc))
        except requests.RequestException as exc:
            raise DeliveryError(
                f"cannot reach the Conversions API at {cfg.url}: {type(exc).__name__}"
            ) from None
        status = resp.status_code
        if 300 <= status < 400:  # never followed: an endpoint refusal, the run stops with events owed
            return _Response(status, {"code": None, "message": f"HTTP {status} redirect (never followed)"})
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return (
                _Response(status, None, maybe_delivered=True)
                if status >= 500
                else _Response(status, {"code": None})
            )
        error = payload.get("error")
        trace = sanitize_trace_id(
            (error if isinstance(error, dict) else payload).get("fbtrace_id"), self.config.secrets
        )
        if isinstance(error, dict):
            return _Response(status, error, fbtrace_id=trace)
        if "events_received" not in payload:  # e.g. a 200 "Service Unavailable" page
            return _Response(500 if resp.ok else status, None, maybe_delivered=True)
        return _Response(status, None, _int(payload.get("events_received")), trace)

    def _post_with_retries(
        self, encoded: Sequence[bytes], batch: str
    ) -> tuple[Verdict, _Response, int, bool]:
        """The last verdict and answer, the attempts made, and whether any attempt may have delivered."""
        cfg = self.config
        body = _body(encoded, self._fields)
        start = self._clock()
        attempt = 0
        maybe = False
        while True:
            attempt += 1
            resp = self._post(body)
            maybe = maybe or resp.maybe_delivered
            verdict = classify(resp.status, resp.error)
            if verdict != "retry":
                return verdict, resp, attempt, maybe
            code = _int(resp.error.get("code")) if resp.error else None
            if attempt >= cfg.max_attempts or self._stop.is_set():
                log_event(
                    log,
                    "activation.retries_exhausted",
                    logging.WARNING,
                    batch=batch,
                    attempts=attempt,
                    status=resp.status,
                    code=code,
                )
                return verdict, resp, attempt, maybe
            with self._rng_lock:
                delay = backoff_delay(
                    attempt, base_s=cfg.backoff_base_s, cap_s=cfg.backoff_cap_s, rng=self._rng
                )
            if self._clock() - start + delay > cfg.deadline_s:
                log_event(log, "activation.deadline_exceeded", logging.WARNING, batch=batch, attempts=attempt)
                return verdict, resp, attempt, maybe
            log_event(
                log,
                "activation.batch_retry",
                logging.INFO,
                batch=batch,
                attempt=attempt,
                status=resp.status,
                code=code,
                delay_s=round(delay, 3),
            )
            self._sleep(delay)

    # ---- one batch, with bisection -----------------------------------------------------------------

    def send_batch(self, events: Sequence[Mapping[str, Any]], batch: str = "0") -> list[EventOutcome]:
        """Deliver one batch (≤ batch_size): per-event outcomes; raises RunStopped when Meta refuses the request.

        When bisection ends with *every* event of a batch (of at least :data:`WHOLE_BATCH_MIN`) refused with
        the same error, the error is not about events but about the request (or about how every event is
        built): the run stops with BatchRefused and the events stay owed, instead of all being marked
        rejected for good."""
        outcomes = self._send_encoded(events, [_encode(e) for e in events], batch)
        refused = [o for o in outcomes if o.state == "failed" and not o.retryable]
        errors = {(o.error_code, o.error_subcode) for o in refused}
        if len(outcomes) >= WHOLE_BATCH_MIN and len(refused) == len(outcomes) and len(errors) == 1:
            code, subcode = errors.pop()
            self._stop.set()
            log_event(log, "activation.batch_refused_whole", logging.ERROR, batch=batch, events=len(outcomes),
                      code=code, subcode=subcode)  # fmt: skip
            raise BatchRefused(
                f"Meta refused every one of the {len(outcomes)} events of a batch with the same error (code "
                f"{code}, subcode {subcode}): {outcomes[0].error_message}. That is the request or the event "
                "design, not individual events; nothing more was sent in this run, and the events stay owed "
                "to the next run.",
                code=code,
                subcode=subcode,
                fbtrace_id=outcomes[0].fbtrace_id,
            )
        return outcomes

    def _send_encoded(
        self, events: Sequence[Mapping[str, Any]], encoded: Sequence[bytes], batch: str, maybe: bool = False
    ) -> list[EventOutcome]:
        """:meth:`send_batch` with each event's JSON encoded once (halves reuse it, never re-encode).

        ``maybe``: an attempt on a batch holding these events got no definitive answer."""
        if self._stop.is_set():
            return []
        verdict, resp, attempts, reached = self._post_with_retries(encoded, batch)
        maybe = maybe or reached
        ids = [str(e.get("event_id")) for e in events]
        if verdict == "ok":
            received = resp.events_received
            if received is not None and received != len(events):
                log_event(
                    log,
                    "activation.events_received_mismatch",
                    logging.WARNING,
                    batch=batch,
                    events=len(events),
                    received=received,
                )
            log_event(
                log,
                "activation.batch_sent",
                batch=batch,
                events=len(events),
                status=resp.status,
                attempts=attempts,
                fbtrace_id=resp.fbtrace_id,
            )
            return [EventOutcome(i, "sent", attempts, received, resp.fbtrace_id) for i in ids]
        error = resp.error or {}
        code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
        message = sanitize_server_text(error.get("message") or f"HTTP {resp.status}", self.config.secrets)
        if verdict == "fatal":
            self._stop.set()
            log_event(
                log,
                "activation.access_denied",
                logging.ERROR,
                batch=batch,
                code=code,
                subcode=subcode,
                fbtrace_id=resp.fbtrace_id,
            )
            token = code in FATAL_CODES or (code == 100 and subcode == TOKEN_SUBCODE_OF_100)
            what = "the access token or its permissions" if token else f"the request (HTTP {resp.status})"
            check = (
                "META_ACCESS_TOKEN / META_APP_SECRET and the token's access to the pixel"
                if token
                else "the Graph URL, API version and pixel id"
            )
            stop = AccessDenied if token else EndpointRefused
            raise stop(
                f"Meta refused {what} (code {code}, subcode {subcode}, fbtrace_id {resp.fbtrace_id}): "
                f"{message}. Check {check}; nothing more was sent in this run, and the events not sent "
                "stay owed to the next run.",
                code=code,
                subcode=subcode,
                fbtrace_id=resp.fbtrace_id,
            )
        if verdict == "split" and len(events) > 1:
            mid = len(events) // 2
            log_event(
                log, "activation.batch_split", batch=batch, events=len(events), code=code, subcode=subcode
            )
            return self._send_encoded(events[:mid], encoded[:mid], f"{batch}a", maybe) + self._send_encoded(
                events[mid:], encoded[mid:], f"{batch}b", maybe
            )
        log_event(
            log,
            "activation.batch_failed",
            logging.WARNING,
            batch=batch,
            events=len(events),
            status=resp.status,
            code=code,
            subcode=subcode,
            fbtrace_id=resp.fbtrace_id,
        )
        retryable = verdict == "retry"
        return [
            EventOutcome(
                i, "failed", attempts, None, resp.fbtrace_id, code, subcode, message, retryable, maybe
            )
            for i in ids
        ]

    # ---- many batches, concurrently ----------------------------------------------------------------

    def send(self, events: Sequence[Mapping[str, Any]]) -> Iterator[list[EventOutcome]]:
        """Send ``events`` in batches with bounded concurrency; yield the outcomes of the batches that
        ended since the last yield, as one list (batches that end while the caller records the last
        ones are handed over together, so the caller writes them in one go).

        On a token/permission error the remaining batches are cancelled, the in-flight ones finish,
        their outcomes are yielded, and the :class:`RunStopped` is raised.
        """
        self._stop.clear()
        batches = chunk(list(events), self.config.batch_size)
        fatal: RunStopped | None = None
        with ThreadPoolExecutor(max_workers=self.config.max_workers, thread_name_prefix="capi") as pool:
            futures = [pool.submit(self.send_batch, b, str(i)) for i, b in enumerate(batches)]
            not_done = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                ready: list[EventOutcome] = []
                for fut in sorted(done, key=futures.index):  # in batch order
                    try:
                        ready.extend(fut.result())
                    except CancelledError:
                        continue
                    except RunStopped as exc:
                        if fatal is None:
                            fatal = exc
                            for f in futures:
                                f.cancel()
                if ready:
                    yield ready
        if fatal is not None:
            raise fatal


def chunk(items: Sequence[Any], size: int = MAX_EVENTS_PER_REQUEST) -> list[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items; together they partition ``items`` in order."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return [items[i : i + size] for i in range(0, len(items), size)]
