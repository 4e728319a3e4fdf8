"""Where events may go, and what is kept of an endpoint's answer.

- :func:`check_graph_url`: the token travels in the request body, so the Graph URL must be ``https://``;
  plain ``http://`` only to a loopback address (the local sandbox). No credentials, query or fragment.
- :func:`is_meta_host`: does a URL point at Meta (parsed host name, case-insensitive, any Meta domain)?
  The replay clock (``--now``) is refused there.
- :func:`sanitize_server_text` / :func:`sanitize_trace_id`: strings an endpoint sends back (Meta's
  messages, ``fbtrace_id``) reach the terminal, the logs and the ledger, so they are capped, stripped of
  control characters and redacted (secrets, hashes, emails, phone numbers with or without ``+``, IPs) first:
  an echoing or hostile endpoint cannot put the token or a user's identifiers there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from activation.errors import EndpointError
from activation.redaction import REDACTED, redact

# Meta's own domains: the Graph API lives on graph.facebook.com, but any of these is Meta
META_DOMAINS = (
    "facebook.com",
    "fb.com",
    "facebook.net",
    "fbcdn.net",
    "instagram.com",
    "meta.com",
    "whatsapp.com",
)
MAX_SERVER_TEXT = 300  # characters of an endpoint's message kept (ledger, terminal, logs)
MAX_TRACE_ID = 64

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")
# phone numbers written without "+": 10 to 15 digits, alone or in the usual groups
_PHONE = re.compile(r"(?<![\w.:-])\(?\d{2,4}\)?(?:[\s.-]?\d){6,13}(?![\w.:-])")
_IP_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*(?![\w:.])")
_TRACE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# "key": "value" of a user_data key echoed back (a user agent, an fbc...): the value goes
_KEYED = re.compile(
    r"(?i)(\b(?:em|ph|fn|ln|db|ge|ct|st|zp|country|external_id|client_ip_address|client_user_agent|fbc|fbp"
    r"|madid|anon_id|user_data)\b\\?\"?\s*[:=]\s*)(\[[^\]]*\]?|\{[^}]*\}?|\\?\"[^\"]*\"?|[^\s,;}\]]+)"
)


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ::1."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_meta_host(url: str) -> bool:
    """True when ``url``'s host is one of Meta's domains or a subdomain of one (case-insensitive)."""
    host = _host(url)
    return any(host == d or host.endswith("." + d) for d in META_DOMAINS)


def check_graph_url(url: str) -> str:
    """``url`` unchanged when the token may be sent there; else :class:`EndpointError` saying why."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise EndpointError(f"graph URL is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise EndpointError("graph URL must look like https://graph.facebook.com (scheme and host)")
    if parts.username is not None or parts.password is not None:
        raise EndpointError(
            "graph URL must not carry credentials (user:password@); the token goes in the body"
        )
    if parts.query or parts.fragment:
        raise EndpointError("graph URL must not carry a query or fragment")
    if parts.scheme == "http" and not is_loopback(_host(url)):
        raise EndpointError(
            f"graph URL uses plain http to {_host(url)}: the access token would cross the network in clear "
            "text. Use https://, or http:// only to a loopback address (127.0.0.1, ::1, localhost) for the "
            "local sandbox; nothing was sent"
        )
    return url


def _redact_ips(text: str) -> str:
    def one(m: re.Match) -> str:
        candidate = m.group(0).strip(".")
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return m.group(0)
        return REDACTED

    return _IP_CANDIDATE.sub(one, text)


def sanitize_server_text(text: object, secrets: Iterable[str] = ()) -> str:
    """An endpoint's message as we may store and print it: control characters out, secrets and anything
    identifier-like redacted, at most :data:`MAX_SERVER_TEXT` characters."""
    text = _CONTROL.sub(" ", str(text))[: 4 * MAX_SERVER_TEXT]
    text = _KEYED.sub(lambda m: m.group(1) + REDACTED, redact(text, secrets))
    text = _PHONE.sub(REDACTED, _redact_ips(text))
    text = " ".join(text.split())
    return text if len(text) <= MAX_SERVER_TEXT else text[: MAX_SERVER_TEXT - 1] + "…"


def sanitize_trace_id(value: object, secrets: Iterable[str] = ()) -> str | None:
    """Meta's ``fbtrace_id`` is a short token of letters, digits, ``_`` and ``-``; anything else (or a
    secret, a hash) is dropped."""
    if value is None:
        return None
    value = str(value)
    if not _TRACE.fullmatch(value) or redact(value, secrets) != value:
        return None
    return value
