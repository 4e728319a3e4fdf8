"""Events: pure builders of CAPI server events for the three delivery modes, and Meta's rules as checks.

- :class:`EventSettings` — one event design (mode, name, currency, send day…), frozen; a later
  ``EventSpec`` produces it.
- :func:`build_event` / :func:`build_events` — a scored user (and their prepared ``user_data``) in, a
  :class:`PlannedEvent` (payload ready to send) or a :class:`SkippedEvent` (with a reason) out.
- :func:`presend_skips` — the skip reasons that need no ``user_data`` (consent, value, time window, URL,
  user agent…), column-wise: hash identifiers only for the users it leaves sendable.
- :func:`validate_event` — everything Meta documents that would reject a whole batch, as a pure check
  returning a Graph-style :class:`Rejection`; shared by the builder (so bad events never leave) and the
  sandbox (so it answers like Meta).
- :func:`estimate_match_quality` — key coverage and an EMQ-*style* estimate (not Meta's score).

``now`` is always a parameter (unix seconds or an aware datetime); nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from activation.errors import EventSettingsError
from activation.identity import HASHED_KEYS, USER_DATA_KEYS, hash_identifiers, is_sha256

Mode = Literal["append_value", "custom_value", "threshold"]
MODES: tuple[str, ...] = ("append_value", "custom_value", "threshold")
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
APPEND_VALUE = "AppendValue"
DAY = 86_400
MAX_EVENTS_PER_REQUEST = 1000

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

_MUST_HASH = frozenset(HASHED_KEYS) - {"external_id"}  # Meta recommends hashing external_id, not requires
_MAX_COMBINATION = max(len(c) for c in INSUFFICIENT_COMBINATIONS)
_is_hex64 = re.compile(r"[0-9a-f]{64}").fullmatch  # is_sha256 for a str, without the call overhead
_CUSTOM_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,50}$")


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


def event_id_for(spec_id: str, user_id: Any) -> str:
    """Deterministic, PII-free event id: a truncated SHA-256 of (spec_id, user_id)."""
    digest = hashlib.sha256(f"{spec_id}\x1f{user_id}".encode()).hexdigest()
    return f"pltv-{digest[:24]}"


@dataclass(frozen=True, kw_only=True)
class EventSettings:
    """How one event spec turns a scored user into a CAPI event."""

    mode: Mode
    spec_id: str
    send_day: int
    event_name: str | None = None  # AppendValue for append_value; default pLTV_D{send_day}
    currency: str = "USD"
    action_source: str = "website"
    threshold: float | None = None  # threshold mode: fire only when predicted_ltv >= threshold
    event_source_url: str | None = None  # used when the user has none
    include_predicted_ltv: bool = True
    max_age_days: float = 7.0  # Meta rejects the whole batch past this
    append_window_days: float = 7.0  # AppendValue must follow the conversion within this
    # an event this close to either limit when built is skipped: retries and a long run must not carry it
    # past the limit before its POST, where it would take its whole batch down
    send_margin_s: int = 3600

    @property
    def sendable_age_s(self) -> int:
        """The oldest an event may be when built: Meta's age limit less the send margin."""
        return int(self.max_age_days * DAY) - self.send_margin_s

    @property
    def append_window_s(self) -> int:
        """How long after the conversion's send time an AppendValue may be built (window less margin)."""
        return int(self.append_window_days * DAY) - self.send_margin_s

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EventSettingsError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not is_currency(self.currency):
            raise EventSettingsError(
                f"currency must be an ISO 4217 code such as 'USD', got {self.currency!r}"
            )
        object.__setattr__(self, "currency", self.currency.upper())
        if self.action_source not in ACTION_SOURCES:
            raise EventSettingsError(f"action_source must be one of {sorted(ACTION_SOURCES)}")
        if self.action_source == "app":
            raise EventSettingsError(
                "action_source 'app' needs app_data (advertiser_tracking_enabled, extinfo), which the data "
                "contract does not carry; send app users' events as 'website' or another server source"
            )
        if self.send_day < 0:
            raise EventSettingsError(f"send_day must be >= 0, got {self.send_day}")
        if self.mode == "threshold" and (self.threshold is None or not math.isfinite(self.threshold)):
            raise EventSettingsError("threshold mode needs a finite threshold")
        if self.mode == "append_value":
            if self.event_name not in (None, APPEND_VALUE):
                raise EventSettingsError(
                    f"append_value sends event_name 'AppendValue', got {self.event_name!r}"
                )
            if self.action_source != "website":
                raise EventSettingsError("AppendValue is web-only: action_source must be 'website'")
            object.__setattr__(self, "event_name", APPEND_VALUE)
        elif self.event_name is None:
            object.__setattr__(self, "event_name", f"pLTV_D{self.send_day}")
        if not _CUSTOM_NAME_RE.match(self.event_name or ""):
            raise EventSettingsError("event_name must be 1-50 letters, digits, '_' or '-'")


@dataclass(frozen=True)
class PlannedEvent:
    """An event ready to send; ``payload`` is the CAPI server event (holds hashed identifiers)."""

    event_id: str
    event_name: str
    event_time: int
    value: float
    payload: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class SkippedEvent:
    """An event not sent, and why (a short reason code)."""

    event_id: str
    event_name: str
    event_time: int
    value: float
    reason: str


@dataclass(frozen=True)
class Rejection:
    """How Meta would reject a batch holding this event (Graph error fields)."""

    code: int
    subcode: int
    message: str
    reason: str


@dataclass(frozen=True)
class EventPlan:
    """The outcome of building one day's events."""

    events: list[PlannedEvent]
    skipped: list[SkippedEvent]
    match_quality: MatchQualityEstimate

    def skip_reasons(self) -> dict[str, int]:
        """Counts of skipped events per reason."""
        out: dict[str, int] = {}
        for s in self.skipped:
            out[s.reason] = out.get(s.reason, 0) + 1
        return out


# --------------------------------------------------------------------------------------------------------
# Meta's rules
# --------------------------------------------------------------------------------------------------------


def _reject(subcode: int, reason: str, message: str) -> Rejection:
    return Rejection(code=100, subcode=subcode, message=f"(#100) {message}", reason=reason)


def _is_number(v: Any) -> bool:
    if type(v) is float:  # the common case first
        return math.isfinite(v)
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_mapping(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)


def _user_data_rejection(key: str, value: Any) -> Rejection | None:
    """The rule for one ``user_data`` value: a non-empty string (or list of them), SHA-256 where Meta
    requires hashing. Part of :func:`validate_event`; the column builder applies it per unique value."""
    if type(value) is str and value:  # the common case, checked without building a list
        if key in _MUST_HASH and not _is_hex64(value):
            return _reject(SUBCODE_BAD_HASH, "unhashed_user_data", f"user_data.{key} must be SHA-256 hashed")
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        return _reject(SUBCODE_INVALID_FIELD, "bad_user_data", f"user_data.{key} must be a non-empty string")
    if key in _MUST_HASH and not all(is_sha256(v) for v in values):
        return _reject(SUBCODE_BAD_HASH, "unhashed_user_data", f"user_data.{key} must be SHA-256 hashed")
    return None


def validate_event(
    event: Mapping[str, Any],
    *,
    now: float | datetime,
    max_age_days: float = 7.0,
    future_tolerance_s: int = 60,
) -> Rejection | None:
    """The rejection Meta would answer for a batch holding ``event``, or None when it is acceptable.

    Messages name fields and rules, never values.
    """
    if not _is_mapping(event):
        return _reject(SUBCODE_INVALID_FIELD, "malformed_event", "Each event in data must be a JSON object")
    name = event.get("event_name")
    if not isinstance(name, str) or not name:
        return _reject(SUBCODE_MISSING_FIELD, "missing_event_name", "The parameter event_name is required")
    t = event.get("event_time")
    if not isinstance(t, int) or isinstance(t, bool):
        return _reject(SUBCODE_MISSING_FIELD, "missing_event_time", "event_time is required as unix seconds")
    now_s = unix_seconds(now)
    if t < now_s - int(max_age_days * DAY):
        return _reject(
            SUBCODE_TOO_OLD,
            "too_old",
            "Event Timestamp Too Old: event_time is more than 7 days before send time",
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
        rejection = _user_data_rejection(key, value)
        if rejection is not None:
            return rejection
    if len(keys) <= _MAX_COMBINATION and any(keys <= combo for combo in INSUFFICIENT_COMBINATIONS):
        return _reject(
            SUBCODE_INSUFFICIENT_INFO,
            "insufficient_customer_information",
            "The event has insufficient customer information parameters to match",
        )
    if source == "website":
        if not event.get("event_source_url"):
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
            return _reject(SUBCODE_INVALID_FIELD, f"bad_{num}", f"custom_data.{num} must be a number")
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


# --------------------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------------------


def _get(user: Mapping[str, Any], key: str) -> Any:
    v = user.get(key)
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _ts(v: Any) -> datetime | None:
    if v is None:
        return None
    ts = pd.Timestamp(v)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.to_pydatetime()


def _blank(v: Any) -> bool:
    """A missing or whitespace-only raw value (as :mod:`activation.identity` drops it: missing/empty)."""
    return v is None or not (v.strip() if type(v) is str else str(v).strip())


#: Skip reasons that need no ``user_data``, in the order both builders check them (before any match key).
PRESEND_REASONS: tuple[str, ...] = (
    "no_consent",
    "missing_signup_at",
    "non_positive_value",
    "below_threshold",
    "too_old",
    "in_future",
    "missing_conversion_ids",  # append_value
    "outside_append_window",  # append_value
    "missing_event_source_url",  # website
    "missing_client_user_agent",  # website: the raw column (never hashed)
)


def _presend_reason(
    user: Mapping[str, Any],
    settings: EventSettings,
    now_s: int,
    signup: datetime | None,
    event_time: int,
    value: float,
) -> str | None:
    """:func:`build_event`'s first checks, in :data:`PRESEND_REASONS` order (per row, the reference)."""
    consent = _get(user, "consent")
    if consent is not None and not bool(consent):
        return "no_consent"
    if signup is None:
        return "missing_signup_at"
    if not math.isfinite(value) or value <= 0:
        return "non_positive_value"
    if settings.mode == "threshold" and value < (settings.threshold or 0.0):
        return "below_threshold"
    if event_time < now_s - settings.sendable_age_s:
        return "too_old"
    if event_time > now_s:
        return "in_future"
    if settings.mode == "append_value":
        conv_name = _get(user, "conversion_event_name")
        if not conv_name or not (_get(user, "conversion_event_id") or _get(user, "conversion_order_id")):
            return "missing_conversion_ids"
        sent_at = _ts(_get(user, "conversion_sent_at"))
        if sent_at is None or now_s > unix_seconds(sent_at) + settings.append_window_s:
            return "outside_append_window"
    if settings.action_source == "website":
        if not (_get(user, "event_source_url") or settings.event_source_url):
            return "missing_event_source_url"
        if _blank(_get(user, "client_user_agent")):
            return "missing_client_user_agent"
    return None


def _presend_reasons(
    users: pd.DataFrame,
    settings: EventSettings,
    now_s: int,
    has_time: np.ndarray,
    event_time: np.ndarray,
    value: np.ndarray,
) -> list[str]:
    """:func:`_presend_reason` over columns: per row the first reason that applies, or ``""``."""
    n = len(users)
    finite = np.isfinite(value)
    consent = _column(users, "consent")
    no_consent = (
        np.zeros(n, dtype=bool)
        if consent is None
        else np.fromiter((c is not None and not c for c in consent), dtype=bool, count=n)
    )
    with np.errstate(invalid="ignore"):
        checks: list[tuple[str, np.ndarray]] = [
            ("no_consent", no_consent),
            ("missing_signup_at", ~has_time),
            ("non_positive_value", ~finite | (value <= 0)),
            (
                "below_threshold",
                np.full(n, settings.mode == "threshold") & (value < (settings.threshold or 0.0)),
            ),
            ("too_old", event_time < now_s - settings.sendable_age_s),
            ("in_future", event_time > now_s),
        ]
    if settings.mode == "append_value":
        names, ids, orders = (
            _column(users, c) or [None] * n
            for c in ("conversion_event_name", "conversion_event_id", "conversion_order_id")
        )
        no_ids = (not a or not (b or c) for a, b, c in zip(names, ids, orders, strict=True))
        checks.append(("missing_conversion_ids", np.fromiter(no_ids, dtype=bool, count=n)))
        sent_present, sent_s = _event_times(users, "conversion_sent_at", 0)
        late = now_s > sent_s + settings.append_window_s
        checks.append(("outside_append_window", ~sent_present | late))
    if settings.action_source == "website":
        if not settings.event_source_url:
            urls = _column(users, "event_source_url") or [None] * n
            checks.append(
                ("missing_event_source_url", np.fromiter((not u for u in urls), dtype=bool, count=n))
            )
        agents = _column(users, "client_user_agent") or [None] * n
        blank = np.fromiter((_blank(a) for a in agents), dtype=bool, count=n)
        checks.append(("missing_client_user_agent", blank))
    return np.select([m for _, m in checks], [r for r, _ in checks], default="").tolist()


def presend_skips(users: pd.DataFrame, settings: EventSettings, *, now: float | datetime) -> pd.Series:
    """Per row of ``users``, the skip reason that needs no ``user_data``, or None (the event may be sent).

    Pure and column-wise; the same reasons, in the same order (:data:`PRESEND_REASONS`), as the first
    checks of :func:`build_event` / :func:`build_events`. Identifiers need normalizing and hashing only
    for the rows where it is None: ``hash_identifiers(users[presend_skips(users, s, now=t).isna()])``.
    """
    has_time, event_time = _event_times(users, "signup_at", settings.send_day)
    reasons = _presend_reasons(
        users, settings, unix_seconds(now), has_time, event_time, _floats(users, "predicted_ltv")
    )
    return pd.Series([r or None for r in reasons], index=users.index, dtype=object, name="skip_reason")


def build_event(
    user: Mapping[str, Any], user_data: Mapping[str, str], settings: EventSettings, *, now: float | datetime
) -> PlannedEvent | SkippedEvent:
    """One user's event for ``settings``, or the reason it is skipped.

    ``user`` has ``user_id``, ``signup_at``, ``predicted_ltv`` and the optional delivery columns of the
    data contract (``consent``, ``ldu``, ``event_source_url``, ``conversion_*``); ``user_data`` is the
    prepared (hashed) ``user_data`` dict of :mod:`activation.identity`. The reasons that need no
    ``user_data`` (:data:`PRESEND_REASONS`, in that order) come first, then the match-key checks, then
    :func:`validate_event` on the payload.
    """
    now_s = unix_seconds(now)
    event_name = settings.event_name or ""
    event_id = event_id_for(settings.spec_id, user["user_id"])
    signup = _ts(_get(user, "signup_at"))
    event_time = unix_seconds(signup + timedelta(days=settings.send_day)) if signup else 0
    raw_value = _get(user, "predicted_ltv")
    value = float(raw_value) if raw_value is not None else float("nan")

    def skip(reason: str) -> SkippedEvent:
        return SkippedEvent(event_id, event_name, event_time, value if math.isfinite(value) else 0.0, reason)

    reason = _presend_reason(user, settings, now_s, signup, event_time, value)
    if reason is not None:
        return skip(reason)
    ud = {k: v for k, v in user_data.items() if k in USER_DATA_KEYS and v}
    if not ud:
        return skip("no_match_key")
    custom: dict[str, Any] = {"currency": settings.currency}
    payload: dict[str, Any] = {
        "event_name": event_name,
        "event_time": event_time,
        "event_id": event_id,
        "action_source": settings.action_source,
        "user_data": ud,
        "custom_data": custom,
    }
    url = _get(user, "event_source_url") or settings.event_source_url
    if url:
        payload["event_source_url"] = str(url)
    if settings.mode == "append_value":
        conv_id = _get(user, "conversion_event_id")
        order_id = _get(user, "conversion_order_id")
        original: dict[str, Any] = {"event_name": str(_get(user, "conversion_event_name"))}
        if conv_id:
            original["event_id"] = str(conv_id)
        if order_id:
            original["order_id"] = str(order_id)
        payload["original_event_data"] = original
        custom["predicted_ltv"] = round(value, 2)
    else:
        custom["value"] = round(value, 2)
        if settings.include_predicted_ltv:
            custom["predicted_ltv"] = round(value, 2)
    if _get(user, "ldu"):
        payload["data_processing_options"] = ["LDU"]
        payload["data_processing_options_country"] = 0
        payload["data_processing_options_state"] = 0
    rejection = validate_event(payload, now=now_s, max_age_days=settings.max_age_days, future_tolerance_s=0)
    if rejection is not None:
        return skip(rejection.reason)
    return PlannedEvent(event_id, event_name, event_time, round(value, 2), payload)


def plan_events(
    users: pd.DataFrame,
    settings: EventSettings,
    *,
    now: float | datetime,
    id_columns: Sequence[str],
    default_region: str = "US",
) -> EventPlan:
    """The daily job's path from scored users to events: normalize and hash ``id_columns`` only for the
    users whose event can still be sent (:func:`presend_skips`), then :func:`build_events`."""
    sendable = presend_skips(users, settings, now=now).isna().to_numpy()
    user_data, _ = hash_identifiers(users.loc[sendable, list(id_columns)], default_region=default_region)
    return build_events(users, user_data, settings, now=now)


def build_events(
    users: pd.DataFrame, user_data: pd.DataFrame, settings: EventSettings, *, now: float | datetime
) -> EventPlan:
    """Events for every row of ``users`` (aligned with ``user_data`` on the index), plus skips and EMQ.

    Column-wise: the same rules as :func:`build_event` (a test proves identical payloads and skips),
    with ``event_id``, ``event_time``, values and the skip reasons that need no payload
    (:func:`presend_skips`) computed over whole columns; the payload of each sendable user is then
    checked with :func:`validate_event`. ``user_data`` may hold rows only for the users
    :func:`presend_skips` leaves sendable (it is reindexed on ``users``; a missing row is no user_data).
    """
    n = len(users)
    now_s = unix_seconds(now)
    event_name = settings.event_name or ""
    event_ids = [event_id_for(settings.spec_id, u) for u in users["user_id"].tolist()]
    has_time, event_time = _event_times(users, "signup_at", settings.send_day)
    value = _floats(users, "predicted_ltv")
    skip_value = np.where(np.isfinite(value), value, 0.0).tolist()
    reason = _presend_reasons(users, settings, now_s, has_time, event_time, value)
    candidates = [i for i, r in enumerate(reason) if not r]
    uds, values_ok = _user_data_dicts(user_data.reindex(users.index), candidates, n)
    times = event_time.tolist()
    rounded = [round(v, 2) for v in value.tolist()]
    urls = _column(users, "event_source_url") or [None] * n
    ldu = _column(users, "ldu") or [None] * n
    conversion = (
        [
            _column(users, c) or [None] * n
            for c in ("conversion_event_name", "conversion_event_id", "conversion_order_id")
        ]
        if settings.mode == "append_value"
        else None
    )
    payloads: dict[int, dict[str, Any]] = {}
    # Once every user_data value has passed its rule (checked per unique value), validate_event's
    # verdict depends only on the payload's shape: validate one payload per shape, reuse the verdict.
    verdicts: dict[tuple[Any, ...], Rejection | None] = {}
    for i in candidates:
        ud = uds[i]
        if not ud:
            reason[i] = "no_match_key"
            continue
        custom: dict[str, Any] = {"currency": settings.currency}
        payload: dict[str, Any] = {
            "event_name": event_name,
            "event_time": times[i],
            "event_id": event_ids[i],
            "action_source": settings.action_source,
            "user_data": ud,
            "custom_data": custom,
        }
        url = urls[i] or settings.event_source_url
        if url:
            payload["event_source_url"] = str(url)
        if conversion is not None:
            conv_name, conv_id, order_id = (c[i] for c in conversion)
            original: dict[str, Any] = {"event_name": str(conv_name)}
            if conv_id:
                original["event_id"] = str(conv_id)
            if order_id:
                original["order_id"] = str(order_id)
            payload["original_event_data"] = original
            custom["predicted_ltv"] = rounded[i]
        else:
            custom["value"] = rounded[i]
            if settings.include_predicted_ltv:
                custom["predicted_ltv"] = rounded[i]
        if ldu[i]:
            payload["data_processing_options"] = ["LDU"]
            payload["data_processing_options_country"] = 0
            payload["data_processing_options_state"] = 0
        shape = _shape(payload) if values_ok[i] else None
        if shape is not None and shape in verdicts:
            rejection = verdicts[shape]
        else:
            rejection = validate_event(
                payload, now=now_s, max_age_days=settings.max_age_days, future_tolerance_s=0
            )
            if shape is not None:
                verdicts[shape] = rejection
        if rejection is not None:
            reason[i] = rejection.reason
            continue
        payloads[i] = payload
    events: list[PlannedEvent] = []
    skipped: list[SkippedEvent] = []
    for i, r in enumerate(reason):
        if r:
            skipped.append(SkippedEvent(event_ids[i], event_name, times[i], skip_value[i], r))
        else:
            events.append(PlannedEvent(event_ids[i], event_name, times[i], rounded[i], payloads[i]))
    quality = estimate_match_quality(e.payload["user_data"] for e in events)
    return EventPlan(events=events, skipped=skipped, match_quality=quality)


def _column(frame: pd.DataFrame, name: str) -> list[Any] | None:
    """A column as a list with missing values (``pd.isna``) as None; None when the column is absent."""
    if name not in frame.columns:
        return None
    col = frame[name]
    values = col.tolist()
    for i in np.flatnonzero(col.isna().to_numpy()).tolist():
        values[i] = None
    return values


def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    """``float(v)`` per row (NaN when missing), as :func:`build_event` reads ``predicted_ltv``."""
    col = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan)
    values = _column(frame, name) or []
    return np.array([float(v) if v is not None else math.nan for v in values], dtype=float)


def _event_times(frame: pd.DataFrame, name: str, send_day: int) -> tuple[np.ndarray, np.ndarray]:
    """(present, unix seconds of the timestamp + ``send_day`` days) per row, as :func:`build_event`.

    Naive times are UTC. Naive or UTC datetime64 columns are converted as a whole (microseconds, then
    the same true division and truncation as ``int(datetime.timestamp())``); other columns once per
    unique value (other time zones too: an aware datetime + days is wall-clock arithmetic across DST).
    """
    n = len(frame)
    if name not in frame.columns:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    col = frame[name]
    present = col.notna().to_numpy()
    if _is_utc_datetime64(col):
        raw = (col.dt.tz_localize(None) if col.dt.tz is not None else col).to_numpy()
        unit = np.datetime_data(raw.dtype)[0]
        ticks = np.where(present, raw.view(np.int64), 0)
        # to microseconds like Timestamp.to_pydatetime (nanoseconds floored away)
        us = ticks // 1_000 if unit == "ns" else ticks * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
        us = us + send_day * DAY * 1_000_000
        seconds = np.trunc(us / 1e6).astype(np.int64)  # int(total_seconds()): true division, truncation
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        shift = timedelta(days=send_day)
        per_unique = np.array([unix_seconds(_ts(u) + shift) for u in uniques.tolist()] + [0], dtype=np.int64)
        seconds = per_unique[codes]  # the sentinel -1 picks the trailing 0
        present = codes >= 0
    return present, np.where(present, seconds, 0)


def _is_utc_datetime64(col: pd.Series) -> bool:
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return str(col.dtype.tz) in ("UTC", "Etc/UTC")
    return pd.api.types.is_datetime64_dtype(col.dtype)


def _shape(payload: Mapping[str, Any]) -> tuple[Any, ...]:
    """What :func:`validate_event` reads from a built payload besides values proven valid before."""
    original = payload.get("original_event_data")
    return (
        tuple(payload["user_data"]),
        bool(payload.get("event_source_url")),
        "data_processing_options" in payload,
        None if original is None else bool(original.get("event_name")),
        None if original is None else bool(original.get("event_id") or original.get("order_id")),
    )


def _values_pass(key: str, values: list[Any]) -> np.ndarray:
    """Per value, True when it is excluded (falsy) or passes :func:`_user_data_rejection`.

    Strings are checked over the whole column with Arrow (the same rule: SHA-256 hex for keys Meta
    requires hashed, RE2 ``^…$`` matching the whole text); anything else value by value.
    """
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return np.array([not v or _user_data_rejection(key, v) is None for v in values], dtype=bool)
    if key not in _MUST_HASH:
        return np.ones(len(values), dtype=bool)
    good = pc.or_(pc.equal(arr, ""), pc.match_substring_regex(arr, r"^[0-9a-f]{64}$"))
    return good.to_numpy(zero_copy_only=False).astype(bool)


def _user_data_dicts(
    frame: pd.DataFrame, rows: Sequence[int], n: int
) -> tuple[list[dict[str, Any]], list[bool]]:
    """Per row, the ``user_data`` keys with a value (as :func:`build_event` filters them), rows only;
    and per row whether every value passes :func:`_user_data_rejection` (checked per unique value)."""
    uds: list[dict[str, Any]] = [{} for _ in range(n)]
    ok = np.ones(n, dtype=bool)
    wanted = np.zeros(n, dtype=bool)
    wanted[np.asarray(rows, dtype=np.int64)] = True
    for key in frame.columns:
        if key not in USER_DATA_KEYS:
            continue
        col = frame[key]
        values = col.tolist()
        take = np.flatnonzero(wanted & col.notna().to_numpy())
        ok[take[~_values_pass(key, [values[i] for i in take.tolist()])]] = False
        for i in take.tolist():
            v = values[i]
            if v:
                uds[i][key] = v
    return uds, ok.tolist()


# --------------------------------------------------------------------------------------------------------
# match quality (an estimate, not Meta's EMQ)
# --------------------------------------------------------------------------------------------------------

#: Relative importance per key. Meta publishes no formula: these follow Meta's named high-quality keys
#: (em, client_ip_address, fn/ln, ph [BP]) and its per-key ACR uplift figures (email 58.96% vs IP 20.65%
#: [DQ]; fbc +100%, em +29%, fbp +13%, external_id +13%, ph +12% in Events Manager guidance).
MATCH_KEY_WEIGHTS: Mapping[str, float] = {
    "em": 3.0,
    "fbc": 2.0,
    "ph": 1.5,
    "client_ip_address": 1.0,
    "external_id": 0.8,
    "fbp": 0.8,
    "client_user_agent": 0.5,
    "fn": 0.4,
    "ln": 0.4,
    "madid": 0.4,
    "anon_id": 0.2,
    "db": 0.2,
    "zp": 0.2,
    "ct": 0.15,
    "st": 0.1,
    "country": 0.1,
    "ge": 0.05,
}


@dataclass(frozen=True)
class MatchQualityEstimate:
    """Coverage per key and an EMQ-style 0-10 score. An ESTIMATE, not Meta's Event Match Quality."""

    events: int
    coverage: Mapping[str, float]
    estimated_score: float
    label: str = "estimated EMQ (heuristic from key coverage; Meta's real EMQ is in Events Manager)"

    def render(self) -> str:
        """One line per covered key, then the estimate with its label."""
        keys = ", ".join(f"{k}={v:.0%}" for k, v in self.coverage.items() if v > 0)
        return f"{self.label}: {self.estimated_score:.1f}/10 over {self.events:,} events; coverage: {keys}"


def estimate_match_quality(user_datas: Iterable[Mapping[str, Any]]) -> MatchQualityEstimate:
    """Key coverage over events and a weighted 0-10 estimate (10 = every weighted key on every event)."""
    counts = dict.fromkeys(USER_DATA_KEYS, 0)
    n = 0
    for ud in user_datas:
        n += 1
        for k in ud:
            if k in counts:
                counts[k] += 1
    coverage = {k: (c / n if n else 0.0) for k, c in counts.items()}
    total = sum(MATCH_KEY_WEIGHTS.values())
    score = 10.0 * sum(MATCH_KEY_WEIGHTS.get(k, 0.0) * c for k, c in coverage.items()) / total
    return MatchQualityEstimate(events=n, coverage=coverage, estimated_score=round(score, 2))


def chunk(items: Sequence[Any], size: int = MAX_EVENTS_PER_REQUEST) -> list[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items; together they partition ``items`` in order."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return [items[i : i + size] for i in range(0, len(items), size)]
