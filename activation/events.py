"""Events: the one path from scored users to CAPI server events, column-wise, for the three delivery modes.

- :data:`PRESEND_RULES` — the skip reasons that need no ``user_data`` (consent, value, time window, URL,
  user agent…) as one ordered table of ``(reason, predicate)``; :func:`presend_skips` applies it, so
  identifiers are hashed only for the users it leaves sendable. The daily job, the designer's volume
  count and the payload check all go through it.
- :func:`build_events` — scored users (and their prepared ``user_data``) in, an :class:`EventPlan` of
  :class:`PlannedEvent` (payload ready to send) and :class:`SkippedEvent` (with a reason) out; every
  payload passes :func:`activation.meta.validate_event` before it may leave.
- :func:`plan_events` — the daily job's call: presend rules, then hashing (:mod:`activation.identity`)
  for the sendable users only, then :func:`build_events`.

The event time is the selection's send moment, column ``send_at`` (``signup_at + send_day`` days,
computed once where the users are selected); ``now`` is always a parameter (unix seconds or an aware
datetime); nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from activation.identity import hash_identifiers
from activation.meta import (
    MAX_VALUE,
    MUST_HASH,
    USER_DATA_KEYS,
    Rejection,
    is_event_source_url,
    unix_seconds,
    user_data_rejection,
    validate_event,
)
from activation.quality import estimate_match_quality
from activation.settings import EventSettings, event_id_for
from activation.types import EventPlan, PlannedEvent, SkippedEvent


@dataclass(frozen=True)
class _Rows:
    """What the pre-send predicates read, each column computed once per frame."""

    users: pd.DataFrame
    settings: EventSettings
    now_s: int
    has_time: np.ndarray  # the send moment is known
    event_time: np.ndarray  # unix seconds of the send moment
    value: np.ndarray  # predicted_ltv as floats (NaN when missing)

    @property
    def n(self) -> int:
        return len(self.users)

    def none(self) -> np.ndarray:
        return np.zeros(self.n, dtype=bool)

    def values(self, name: str) -> list[Any]:
        return _column(self.users, name) or [None] * self.n


def _no_consent(r: _Rows) -> np.ndarray:
    consent = _column(r.users, "consent")
    if consent is None:
        return r.none()
    return np.fromiter((c is not None and not c for c in consent), dtype=bool, count=r.n)


def _non_positive(r: _Rows) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(r.value) | (r.value <= 0)


def _below_threshold(r: _Rows) -> np.ndarray:
    if r.settings.mode != "threshold":
        return r.none()
    with np.errstate(invalid="ignore"):
        return r.value < (r.settings.threshold or 0.0)


def _missing_conversion_ids(r: _Rows) -> np.ndarray:
    if r.settings.mode != "append_value":
        return r.none()
    names, ids, orders = (
        r.values(c) for c in ("conversion_event_name", "conversion_event_id", "conversion_order_id")
    )
    no_ids = (not a or not (b or c) for a, b, c in zip(names, ids, orders, strict=True))
    return np.fromiter(no_ids, dtype=bool, count=r.n)


def _outside_append_window(r: _Rows) -> np.ndarray:
    if r.settings.mode != "append_value":
        return r.none()
    sent_present, sent_s = _event_times(r.users, "conversion_sent_at")
    return ~sent_present | (r.now_s > sent_s + r.settings.append_window_s)


def _invalid_url(r: _Rows) -> np.ndarray:
    return np.fromiter(
        (bool(u) and not is_event_source_url(u) for u in r.values("event_source_url")), dtype=bool, count=r.n
    )


def _missing_url(r: _Rows) -> np.ndarray:
    if r.settings.action_source != "website" or r.settings.event_source_url:
        return r.none()
    return np.fromiter((not u for u in r.values("event_source_url")), dtype=bool, count=r.n)


def _missing_user_agent(r: _Rows) -> np.ndarray:
    if r.settings.action_source != "website":
        return r.none()
    return np.fromiter((_blank(a) for a in r.values("client_user_agent")), dtype=bool, count=r.n)


#: The skip reasons that need no ``user_data``, in the order they are checked (the first that applies
#: is the reason), each with its predicate over the rows. Match keys and the payload come after.
PRESEND_RULES: tuple[tuple[str, Callable[[_Rows], np.ndarray]], ...] = (
    ("no_consent", _no_consent),
    ("missing_signup_at", lambda r: ~r.has_time),
    ("non_positive_value", _non_positive),
    ("implausible_value", lambda r: np.abs(np.nan_to_num(r.value)) > MAX_VALUE),
    ("below_threshold", _below_threshold),
    ("too_old", lambda r: r.event_time < r.now_s - r.settings.sendable_age_s),
    ("in_future", lambda r: r.event_time > r.now_s),
    ("missing_conversion_ids", _missing_conversion_ids),  # append_value
    ("outside_append_window", _outside_append_window),  # append_value
    ("invalid_event_source_url", _invalid_url),  # javascript:, data:, 18 KB: never sent
    ("missing_event_source_url", _missing_url),  # website
    ("missing_client_user_agent", _missing_user_agent),  # website: the raw column (never hashed)
)
PRESEND_REASONS: tuple[str, ...] = tuple(reason for reason, _ in PRESEND_RULES)


def _rows(users: pd.DataFrame, settings: EventSettings, now: float | datetime) -> _Rows:
    has_time, event_time = _event_times(users, "send_at")
    return _Rows(users, settings, unix_seconds(now), has_time, event_time, _floats(users, "predicted_ltv"))


def _presend_reasons(rows: _Rows) -> list[str]:
    """Per row the first reason of :data:`PRESEND_RULES` that applies, or ``""``."""
    return np.select([rule(rows) for _, rule in PRESEND_RULES], list(PRESEND_REASONS), default="").tolist()


def presend_skips(users: pd.DataFrame, settings: EventSettings, *, now: float | datetime) -> pd.Series:
    """Per row of ``users``, the skip reason that needs no ``user_data``, or None (the event may be sent).

    Pure and column-wise (:data:`PRESEND_RULES`). Identifiers need normalizing and hashing only for the
    rows where it is None: ``hash_identifiers(users[presend_skips(users, s, now=t).isna()])``.
    """
    reasons = _presend_reasons(_rows(users, settings, now))
    return pd.Series([r or None for r in reasons], index=users.index, dtype=object, name="skip_reason")


def plan_events(
    users: pd.DataFrame,
    settings: EventSettings,
    *,
    now: float | datetime,
    id_columns: Sequence[str],
    default_region: str = "US",
) -> EventPlan:
    """The path from scored users to events: normalize and hash ``id_columns`` only for the users whose
    event can still be sent (:func:`presend_skips`), then :func:`build_events`. The plan carries the
    :class:`~activation.identity.IdentityReport` of the hashing."""
    rows = _rows(users, settings, now)
    reasons = _presend_reasons(rows)
    sendable = np.array([not r for r in reasons], dtype=bool)
    user_data, identity = hash_identifiers(
        users.loc[sendable, list(id_columns)], default_region=default_region
    )
    return _build(rows, reasons, user_data, identity=identity)


def build_events(
    users: pd.DataFrame, user_data: pd.DataFrame, settings: EventSettings, *, now: float | datetime
) -> EventPlan:
    """Events for every row of ``users`` (aligned with ``user_data`` on the index), plus skips and EMQ.

    ``users`` holds ``user_id``, ``send_at`` (the send moment: the event time), ``predicted_ltv`` and the
    data contract's delivery columns. The pre-send rules (:data:`PRESEND_RULES`) come first, then the
    match keys, then :func:`~activation.meta.validate_event` on each payload. ``user_data`` may hold
    rows only for the users the pre-send rules leave sendable (it is reindexed on ``users``; a missing
    row is no user_data).
    """
    rows = _rows(users, settings, now)
    return _build(rows, _presend_reasons(rows), user_data)


def _build(rows: _Rows, reason: list[str], user_data: pd.DataFrame, *, identity: Any = None) -> EventPlan:
    users, settings, now_s, n = rows.users, rows.settings, rows.now_s, rows.n
    event_name = settings.event_name or ""
    event_ids = [event_id_for(settings.spec_id, u) for u in users["user_id"].tolist()]
    value = rows.value
    skip_value = np.where(np.isfinite(value), value, 0.0).tolist()
    candidates = [i for i, r in enumerate(reason) if not r]
    uds, values_ok = _user_data_dicts(user_data.reindex(users.index), candidates, n)
    times = rows.event_time.tolist()
    rounded = [round(v, 2) for v in value.tolist()]
    urls = rows.values("event_source_url")
    ldu = rows.values("ldu")
    conversion = (
        [rows.values(c) for c in ("conversion_event_name", "conversion_event_id", "conversion_order_id")]
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
    return EventPlan(events=events, skipped=skipped, match_quality=quality, identity=identity)


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
    """``float(v)`` per row (NaN when missing)."""
    col = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan)
    values = _column(frame, name) or []
    return np.array([float(v) if v is not None else math.nan for v in values], dtype=float)


def _event_times(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(present, unix seconds) per row of the timestamp column ``name``; naive times are UTC.

    Naive or UTC datetime64 columns are converted as a whole (microseconds, then the same true division
    and truncation as ``int(datetime.timestamp())``); other columns once per unique value.
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
        seconds = np.trunc(us / 1e6).astype(np.int64)  # int(total_seconds()): true division, truncation
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        per_unique = np.array([unix_seconds(_ts(u)) for u in uniques.tolist()] + [0], dtype=np.int64)
        seconds = per_unique[codes]  # the sentinel -1 picks the trailing 0
        present = codes >= 0
    return present, np.where(present, seconds, 0)


def _ts(v: Any) -> datetime:
    ts = pd.Timestamp(v)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.to_pydatetime()


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
    """Per value, True when it is excluded (falsy) or passes :func:`user_data_rejection`.

    Strings are checked over the whole column with Arrow (the same rule: SHA-256 hex for keys Meta
    requires hashed, RE2 ``^…$`` matching the whole text); anything else value by value.
    """
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return np.array([not v or user_data_rejection(key, v) is None for v in values], dtype=bool)
    if key not in MUST_HASH:
        return np.ones(len(values), dtype=bool)
    good = pc.or_(pc.equal(arr, ""), pc.match_substring_regex(arr, r"^[0-9a-f]{64}$"))
    return good.to_numpy(zero_copy_only=False).astype(bool)


def _user_data_dicts(
    frame: pd.DataFrame, rows: Sequence[int], n: int
) -> tuple[list[dict[str, Any]], list[bool]]:
    """Per row, the ``user_data`` keys with a value (the others are left out), ``rows`` only;
    and per row whether every value passes :func:`user_data_rejection` (checked per unique value)."""
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


def _blank(v: Any) -> bool:
    """A missing or whitespace-only raw value (as :mod:`activation.identity` drops it: missing/empty)."""
    return v is None or not (v.strip() if type(v) is str else str(v).strip())
