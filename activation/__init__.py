"""Activation: event design, identity hashing, CAPI payloads and client, delivery ledger, daily job, sandbox.

``activation`` may import ``pltv``; ``pltv`` never imports ``activation``.

Delivery pipeline (what the daily job calls)::

    settings = EventSettings(mode="custom_value", spec_id=..., send_day=3)
    plan = plan_events(users, settings, now=now, id_columns=MATCH_COLUMNS)  # presend rules, hash, build
    with Ledger(path) as ledger, CapiClient(ClientConfig(pixel_id=..., access_token=...)) as client:
        report = deliver(plan.events, plan.skipped, client=client, ledger=ledger, run=RunInfo(...))
"""

from activation.client import CapiClient, ClientConfig, appsecret_proof, classify, is_retryable
from activation.delivery import DeliveryReport, deliver
from activation.errors import (
    AccessDenied,
    ActivationError,
    BatchRefused,
    ClientConfigError,
    DailyRunError,
    DeliveryError,
    EndpointRefused,
    EventSettingsError,
    InvalidIdentifier,
    LedgerError,
    RunStopped,
    SandboxConfigError,
    SandboxError,
    SpecError,
)
from activation.events import PRESEND_RULES, build_events, plan_events, presend_skips
from activation.identity import IdentityReport, hash_identifiers
from activation.ledger import Ledger, LedgerSummary, RunInfo
from activation.meta import Rejection, validate_event
from activation.normalization import normalize
from activation.quality import MatchQualityEstimate, estimate_match_quality
from activation.redaction import RedactionFilter, log_event, redact
from activation.sandbox import Sandbox
from activation.sandbox_state import FaultConfig
from activation.settings import EventSettings, event_id_for
from activation.types import EventOutcome, EventPlan, PlannedEvent, SkippedEvent

__all__ = [
    "AccessDenied",
    "BatchRefused",
    "ClientConfigError",
    "DailyRunError",
    "EndpointRefused",
    "RunStopped",
    "SpecError",
    "ActivationError",
    "CapiClient",
    "ClientConfig",
    "DeliveryError",
    "DeliveryReport",
    "EventOutcome",
    "EventPlan",
    "EventSettings",
    "EventSettingsError",
    "FaultConfig",
    "IdentityReport",
    "InvalidIdentifier",
    "Ledger",
    "LedgerError",
    "LedgerSummary",
    "MatchQualityEstimate",
    "PRESEND_RULES",
    "PlannedEvent",
    "RedactionFilter",
    "Rejection",
    "RunInfo",
    "Sandbox",
    "SandboxConfigError",
    "SandboxError",
    "SkippedEvent",
    "appsecret_proof",
    "build_events",
    "classify",
    "deliver",
    "estimate_match_quality",
    "event_id_for",
    "hash_identifiers",
    "is_retryable",
    "log_event",
    "normalize",
    "plan_events",
    "presend_skips",
    "redact",
    "validate_event",
]
