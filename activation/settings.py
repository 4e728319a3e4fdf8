"""Event settings: how one event spec turns a scored user into a CAPI event (mode, name, currency, day…).

:class:`EventSettings` is frozen and checked against Meta's rules (:mod:`activation.meta`) when built;
an :class:`~activation.spec.EventSpec` holds one. :func:`event_id_for` is the deterministic, PII-free id.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

from activation.errors import EventSettingsError
from activation.meta import (
    ACTION_SOURCES,
    APPEND_VALUE,
    APPEND_WINDOW_DAYS,
    DAY,
    MAX_AGE_DAYS,
    is_currency,
    is_custom_event_name,
)

Mode = Literal["append_value", "custom_value", "threshold"]
MODES: tuple[str, ...] = ("append_value", "custom_value", "threshold")


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
    max_age_days: float = MAX_AGE_DAYS  # Meta rejects the whole batch past this
    append_window_days: float = APPEND_WINDOW_DAYS  # AppendValue must follow the conversion within this
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
        if self.event_name != APPEND_VALUE and not is_custom_event_name(self.event_name):
            raise EventSettingsError(
                "event_name must be a custom name: a letter, then up to 39 letters, digits or '_', and not "
                "one of Meta's standard event names"
            )
