"""Meta's facts about the Conversions API, in one place: limits, names, error codes, and the batch check.

Everything here is what Meta documents (``../shared/capi/REFERENCE.md``, ``PLTV_GUIDE.md``), not a
choice of this toolkit; the builder, the client, the designer and the sandbox import it from here.

- limits: :data:`MAX_AGE_DAYS` (older events reject the whole batch), :data:`APPEND_WINDOW_DAYS`
  (AppendValue must follow its conversion within it), :data:`ATTRIBUTION_WINDOW_DAYS`,
  :data:`MAX_EVENTS_PER_REQUEST`;
- names: :data:`APPEND_VALUE`, :data:`STANDARD_EVENTS`, :func:`is_custom_event_name` (the one rule for a
  custom event's name), :data:`ACTION_SOURCES`, the ``user_data`` keys (:data:`HASHED_KEYS`, …);
- Graph error codes and their classes (:data:`RETRYABLE_CODES`, :data:`FATAL_CODES`, …) and the
  subcodes of code 100;
- :func:`validate_event` — everything Meta documents that would reject a whole batch, as a pure check
  returning a Graph-style :class:`Rejection`; shared by the builder (bad events never leave) and the
  sandbox (it answers like Meta).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import pycountry

DAY = 86_400
MAX_AGE_DAYS = 7.0  # an event_time older than this rejects the whole batch (subcode 2804003)
APPEND_WINDOW_DAYS = 7.0  # AppendValue must arrive within this of the conversion event's send time
ATTRIBUTION_WINDOW_DAYS = 7  # Meta's default attribution setting: 7-day click
ATTRIBUTION_SETTINGS = (1, 7)  # the click windows a campaign may use: 1-day click, 7-day click
MAX_EVENTS_PER_REQUEST = 1000
FUTURE_TOLERANCE_S = 60  # how far after the receiver's clock an event_time may be
DEDUP_WINDOW_S = 48 * 3600  # Meta deduplicates (event_name, event_id) within 48 h of the first receipt
MAX_EVENT_NAME_CHARS = 50  # the longest event name the Pixel and CAPI accept
# Bounds Meta does not document (UNCONFIRMED), kept by this toolkit so one bad row cannot reach Meta:
MAX_VALUE = 1e12  # custom_data.value / predicted_ltv: "a monetary amount", in any currency's units
MAX_URL_CHARS = 2048  # event_source_url: the de-facto URL limit of browsers and servers
MAX_USER_AGENT_CHARS = 1024  # client_user_agent: real ones are a few hundred characters

APPEND_VALUE = "AppendValue"
#: Meta's standard event names: a custom event must not reuse one.
STANDARD_EVENTS = frozenset(
    {
        "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact",
        "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout", "Lead", "PageView", "Purchase",
        "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe", "ViewContent", APPEND_VALUE,
    }
)  # fmt: skip
#: A custom event name Meta's custom conversions and ``custom_event_str`` accept everywhere: a letter,
#: then up to 39 letters, digits or ``_`` (the stricter of the rules in circulation: Pixel names may be
#: up to 50 characters, but ``-`` and names over 40 break custom conversions and Events Manager rules).
_CUSTOM_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)

#: ``user_data`` keys Meta wants SHA-256 hashed (``external_id``: recommended, not required).
HASHED_KEYS: tuple[str, ...] = (
    "em",
    "ph",
    "fn",
    "ln",
    "ge",
    "db",
    "ct",
    "st",
    "zp",
    "country",
    "external_id",
)
#: ``user_data`` keys sent as they are (never hashed).
PLAIN_KEYS: tuple[str, ...] = ("client_ip_address", "client_user_agent", "fbc", "fbp", "madid", "anon_id")
USER_DATA_KEYS: tuple[str, ...] = HASHED_KEYS + PLAIN_KEYS

# Graph error codes and what they mean for a request
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 341, 368, 613, *range(80000, 80015)})  # transient, throttling
FATAL_CODES = frozenset({3, 10, 102, 104, 190, *range(200, 300)})  # the token or its permissions
SPLIT_CODES = frozenset({100})  # the batch's contents were refused: bisect to find the events
# the request itself was refused: 803 "some of the aliases you requested do not exist" (pixel id or path),
# 2500 "unknown path components" / parse error (a Graph URL that already holds a version, say)
REQUEST_CODES = frozenset({803, 2500})
TOKEN_SUBCODE_OF_100 = 33  # 100/33: the object does not exist or the token lacks permission on it

# Graph error subcodes for code 100 (2804003 and 2804050 are captured from the real API, the others are
# this toolkit's own labels for checks Meta documents without a published subcode).
SUBCODE_TOO_OLD = 2804003
SUBCODE_INSUFFICIENT_INFO = 2804050
SUBCODE_MISSING_FIELD = 2804019
SUBCODE_INVALID_FIELD = 2804016
SUBCODE_FUTURE = 2804004
SUBCODE_BAD_HASH = 2804017

#: User-data sets that Meta rejects when an event carries only one of them (or a subset) [BP].
INSUFFICIENT_COMBINATIONS: tuple[frozenset[str], ...] = (
    frozenset({"ct", "country", "st", "zp", "ge", "client_user_agent"}),
    frozenset({"db", "client_user_agent"}),
    frozenset({"fn", "ge"}),
    frozenset({"ln", "ge"}),
)

MUST_HASH = frozenset(HASHED_KEYS) - {"external_id"}  # Meta recommends hashing external_id, not requires
_MAX_COMBINATION = max(len(c) for c in INSUFFICIENT_COMBINATIONS)
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_is_hex64 = _SHA256_RE.fullmatch  # is_sha256 for a str, without the call overhead


def is_custom_event_name(name: object) -> bool:
    """True for a name a custom event may carry: :data:`_CUSTOM_EVENT_NAME`, and not a standard event's."""
    return isinstance(name, str) and bool(_CUSTOM_EVENT_NAME.fullmatch(name)) and name not in STANDARD_EVENTS


def is_event_source_url(url: object) -> bool:
    """An ``http(s)://host/...`` URL of at most :data:`MAX_URL_CHARS` printable characters (not
    ``javascript:``, ``data:``, a bare path or a 20 KB blob)."""
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_CHARS or not url.isprintable():
        return False
    if any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def is_ip_address(value: object) -> bool:
    """A valid IPv4 or IPv6 address (``999.9.9.9`` is not)."""
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_sha256(value: str) -> bool:
    """True for a 64-character lowercase hex string (an already-hashed match key)."""
    return bool(_SHA256_RE.fullmatch(value))  # fullmatch: "$" would also accept a trailing newline


def unix_seconds(now: float | int | datetime) -> int:
    """Unix seconds of ``now`` (an aware datetime, a naive one taken as UTC, or a number)."""
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return int(now.timestamp())
    return int(now)


@lru_cache(maxsize=1)
def _currency_codes() -> frozenset[str]:
    return frozenset(c.alpha_3.upper() for c in pycountry.currencies)


def is_currency(code: str) -> bool:
    """True for an ISO 4217 alphabetic code (any case)."""
    return isinstance(code, str) and len(code) == 3 and code.upper() in _currency_codes()


@dataclass(frozen=True)
class Rejection:
    """How Meta would reject a batch holding this event (Graph error fields)."""

    code: int
    subcode: int
    message: str
    reason: str


def _reject(subcode: int, reason: str, message: str) -> Rejection:
    return Rejection(code=100, subcode=subcode, message=f"(#100) {message}", reason=reason)


def _is_number(v: Any) -> bool:
    if type(v) is float:  # the common case first
        return math.isfinite(v) and abs(v) <= MAX_VALUE
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_VALUE


def _is_mapping(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)


def user_data_rejection(key: str, value: Any) -> Rejection | None:
    """The rule for one ``user_data`` value: a non-empty string (or list of them), SHA-256 where Meta
    requires hashing. Part of :func:`validate_event`; the column builder applies it per unique value."""
    if type(value) is str and value and key != "client_ip_address":  # the common case, without a list
        if key in MUST_HASH and not _is_hex64(value):
            return _reject(SUBCODE_BAD_HASH, "unhashed_user_data", f"user_data.{key} must be SHA-256 hashed")
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        return _reject(SUBCODE_INVALID_FIELD, "bad_user_data", f"user_data.{key} must be a non-empty string")
    if key in MUST_HASH and not all(is_sha256(v) for v in values):
        return _reject(SUBCODE_BAD_HASH, "unhashed_user_data", f"user_data.{key} must be SHA-256 hashed")
    if key == "client_ip_address" and not all(is_ip_address(v) for v in values):
        return _reject(
            SUBCODE_INVALID_FIELD, "bad_client_ip_address", "user_data.client_ip_address must be a valid IP"
        )
    return None


def validate_event(
    event: Mapping[str, Any],
    *,
    now: float | datetime,
    max_age_days: float = MAX_AGE_DAYS,
    future_tolerance_s: int = FUTURE_TOLERANCE_S,
) -> Rejection | None:
    """The rejection Meta would answer for a batch holding ``event``, or None when it is acceptable.

    Messages name fields and rules, never values.
    """
    if not _is_mapping(event):
        return _reject(SUBCODE_INVALID_FIELD, "malformed_event", "Each event in data must be a JSON object")
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        return _reject(SUBCODE_MISSING_FIELD, "missing_event_name", "The parameter event_name is required")
    if len(name) > MAX_EVENT_NAME_CHARS or not name.isprintable():
        return _reject(
            SUBCODE_INVALID_FIELD,
            "bad_event_name",
            f"event_name must be at most {MAX_EVENT_NAME_CHARS} printable characters",
        )
    t = event.get("event_time")
    if not isinstance(t, int) or isinstance(t, bool):
        return _reject(SUBCODE_MISSING_FIELD, "missing_event_time", "event_time is required as unix seconds")
    now_s = unix_seconds(now)
    if t < now_s - int(max_age_days * DAY):
        return _reject(
            SUBCODE_TOO_OLD,
            "too_old",
            f"Event Timestamp Too Old: event_time is more than {MAX_AGE_DAYS:g} days before send time",
        )
    if t > now_s + future_tolerance_s:
        return _reject(
            SUBCODE_FUTURE, "in_future", "Event Timestamp In Future: event_time is after send time"
        )
    source = event.get("action_source")
    if source not in ACTION_SOURCES:
        return _reject(
            SUBCODE_MISSING_FIELD, "missing_action_source", "action_source is required and must be valid"
        )
    user_data = event.get("user_data")
    if not _is_mapping(user_data) or not user_data:
        return _reject(
            SUBCODE_MISSING_FIELD, "no_user_data", "user_data with at least one parameter is required"
        )
    keys = set(user_data)
    for key, value in user_data.items():
        rejection = user_data_rejection(key, value)
        if rejection is not None:
            return rejection
    if len(keys) <= _MAX_COMBINATION and any(keys <= combo for combo in INSUFFICIENT_COMBINATIONS):
        return _reject(
            SUBCODE_INSUFFICIENT_INFO,
            "insufficient_customer_information",
            "The event has insufficient customer information parameters to match",
        )
    url = event.get("event_source_url")
    if url is not None and not is_event_source_url(url):
        return _reject(
            SUBCODE_INVALID_FIELD,
            "bad_event_source_url",
            f"event_source_url must be an http(s) URL of at most {MAX_URL_CHARS} characters",
        )
    if source == "website":
        if not url:
            return _reject(
                SUBCODE_MISSING_FIELD, "missing_event_source_url", "website events need event_source_url"
            )
        if "client_user_agent" not in keys:
            return _reject(
                SUBCODE_MISSING_FIELD, "missing_client_user_agent", "website events need client_user_agent"
            )
    if source == "app" and not _is_mapping(event.get("app_data")):
        return _reject(
            SUBCODE_MISSING_FIELD,
            "missing_app_data",
            "app events need app_data (advertiser_tracking_enabled, extinfo)",
        )
    custom = event.get("custom_data") or {}
    if not _is_mapping(custom):
        return _reject(SUBCODE_INVALID_FIELD, "bad_custom_data", "custom_data must be an object")
    for num in ("value", "predicted_ltv"):
        if num in custom and not _is_number(custom[num]):
            return _reject(
                SUBCODE_INVALID_FIELD,
                f"bad_{num}",
                f"custom_data.{num} must be a number within +-{MAX_VALUE:g}",
            )
    if name == "Purchase" and "value" not in custom:
        # REFERENCE §4: value is "required for purchase events", currency "required for Purchase"
        return _reject(SUBCODE_MISSING_FIELD, "missing_value", "Purchase events need custom_data.value")
    if "currency" in custom and not is_currency(custom["currency"]):
        return _reject(SUBCODE_INVALID_FIELD, "bad_currency", "custom_data.currency must be an ISO 4217 code")
    if "value" in custom and "currency" not in custom:
        return _reject(
            SUBCODE_MISSING_FIELD, "missing_currency", "custom_data.currency is required with value"
        )
    if name == APPEND_VALUE:
        original = event.get("original_event_data")
        if not _is_mapping(original) or not original.get("event_name"):
            return _reject(
                SUBCODE_MISSING_FIELD,
                "missing_original_event",
                "AppendValue needs original_event_data.event_name",
            )
        if not (original.get("event_id") or original.get("order_id")):
            return _reject(
                SUBCODE_MISSING_FIELD,
                "missing_original_event",
                "AppendValue needs original event_id or order_id",
            )
        if not _is_number(custom.get("predicted_ltv")):
            return _reject(SUBCODE_MISSING_FIELD, "missing_predicted_ltv", "AppendValue needs predicted_ltv")
        if source != "website":
            return _reject(SUBCODE_INVALID_FIELD, "append_value_not_web", "AppendValue is for website events")
    dpo = event.get("data_processing_options")
    if dpo is not None:
        if not isinstance(dpo, list) or any(o != "LDU" for o in dpo):
            return _reject(SUBCODE_INVALID_FIELD, "bad_dpo", "data_processing_options must be [] or ['LDU']")
        if dpo and not all(
            isinstance(event.get(f"data_processing_options_{k}"), int) for k in ("country", "state")
        ):
            return _reject(
                SUBCODE_MISSING_FIELD, "bad_dpo", "LDU needs data_processing_options_country and _state"
            )
    return None
