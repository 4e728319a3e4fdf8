"""The shared types of the delivery path: events planned or skipped by the builder, outcomes from the client.

They carry no I/O and no Meta rule; the builder (:mod:`activation.events`), the client, the ledger and the
daily job all speak them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from activation.identity import IdentityReport
    from activation.quality import MatchQualityEstimate


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
class EventPlan:
    """The outcome of building one day's events."""

    events: list[PlannedEvent]
    skipped: list[SkippedEvent]
    match_quality: MatchQualityEstimate
    identity: IdentityReport | None = None  # what hashing kept and dropped (when the plan hashed)

    def skip_reasons(self) -> dict[str, int]:
        """Counts of skipped events per reason."""
        out: dict[str, int] = {}
        for s in self.skipped:
            out[s.reason] = out.get(s.reason, 0) + 1
        return out


@dataclass(frozen=True)
class EventOutcome:
    """What happened to one event."""

    event_id: str
    state: Literal["sent", "failed"]
    attempts: int
    events_received: int | None = None
    fbtrace_id: str | None = None
    error_code: int | None = None
    error_subcode: int | None = None
    error_message: str | None = None
    retryable: bool = False  # failed only because retries ran out (a later run may retry)
    # no definitive answer to some attempt (a timeout, a reset after the body left): it may have been delivered
    maybe_delivered: bool = False
