"""Per-row reference builders: the oracle the column-wise package path is compared with.

Nothing in the package calls these: :func:`build_event` is one user at a time, written as plainly as
Meta's rules read, and :func:`user_data_for` hashes one user's identifiers. Tests prove that
:func:`activation.events.build_events` and :func:`activation.identity.hash_identifiers` give exactly
their answers, and use :func:`build_one` to state single-user rules through the package path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from activation.errors import InvalidIdentifier
from activation.events import build_events
from activation.identity import COLUMN_KEYS
from activation.meta import MAX_VALUE, USER_DATA_KEYS, is_event_source_url, unix_seconds, validate_event
from activation.normalization import hash_normalized, normalize
from activation.settings import EventSettings, event_id_for
from activation.types import PlannedEvent, SkippedEvent


def with_send_at(users: pd.DataFrame, settings: EventSettings) -> pd.DataFrame:
    """``users`` with the selection's ``send_at`` (``signup_at + send_day`` days), as the daily job selects.

    A naive or UTC datetime64 column keeps its dtype; any other column is computed per value with the
    reference's own arithmetic (an aware datetime plus days is wall-clock arithmetic, across DST too).
    """
    col = users["signup_at"]
    days = timedelta(days=settings.send_day)
    if pd.api.types.is_datetime64_dtype(col.dtype) or (
        isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.tz) in ("UTC", "Etc/UTC")
    ):
        send_at = col + pd.Timedelta(days)
    else:
        send_at = pd.Series([None if _get({"v": v}, "v") is None else _ts(v) + days for v in col.tolist()],
                            index=users.index, dtype=object)  # fmt: skip
    return users.assign(send_at=send_at)


def build_one(
    user: Mapping[str, Any], user_data: Mapping[str, str], settings: EventSettings, *, now: float | datetime
) -> PlannedEvent | SkippedEvent:
    """One user through the package's column-wise path (a one-row frame), for single-user rules."""
    users = with_send_at(pd.DataFrame([dict(user)]), settings)
    ud = pd.DataFrame([dict(user_data)], index=users.index, dtype=object)
    plan = build_events(users, ud, settings, now=now)
    return (plan.events or plan.skipped)[0]


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
    if value > MAX_VALUE:
        return "implausible_value"
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
    url = _get(user, "event_source_url")
    if url and not is_event_source_url(url):
        return "invalid_event_source_url"
    if settings.action_source == "website":
        if not (_get(user, "event_source_url") or settings.event_source_url):
            return "missing_event_source_url"
        if _blank(_get(user, "client_user_agent")):
            return "missing_client_user_agent"
    return None


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


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def user_data_for(
    identifiers: Mapping[str, Any], *, default_region: str | None = "US"
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """One user's ``user_data`` dict (hashed where Meta requires) and the (key, reason) pairs dropped.

    ``identifiers`` uses data-contract column names or ``user_data`` key names; missing values are
    ignored, already-prepared output of :func:`hash_identifiers` (64-hex / plain values) passes through.
    """
    raw: dict[str, Any] = {}
    for col, v in identifiers.items():
        key = COLUMN_KEYS.get(col, col if col in USER_DATA_KEYS else None)
        if key is not None and not _is_missing(v) and str(v).strip():
            raw.setdefault(key, v)
    data: dict[str, str] = {}
    drops: list[tuple[str, str]] = []
    country: str | None = None
    if "country" in raw:
        try:
            country = normalize("country", raw["country"])
        except InvalidIdentifier as exc:
            drops.append(("country", exc.reason))
            del raw["country"]
    for key in USER_DATA_KEYS:
        if key not in raw:
            continue
        try:
            norm = (
                country
                if key == "country"
                else normalize(key, raw[key], country=country, default_region=default_region)
            )
        except InvalidIdentifier as exc:
            drops.append((key, exc.reason))
            continue
        data[key] = hash_normalized(key, norm)  # type: ignore[arg-type]
    return data, drops


def user_data_records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Rows of :func:`hash_identifiers` output as ``user_data`` dicts without the missing keys."""
    cols = list(frame.columns)
    values = frame.to_numpy(dtype=object)
    return [{c: v for c, v in zip(cols, row, strict=True) if v is not None and v == v} for row in values]
