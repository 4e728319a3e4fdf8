"""Activation: event design, identity hashing, CAPI payloads and client, delivery ledger, daily job, sandbox.

``activation`` may import ``pltv``; ``pltv`` never imports ``activation``.

Delivery pipeline (what the daily job calls)::

    user_data, identity_report = hash_identifiers(users, default_region="US")
    plan = build_events(users, user_data, EventSettings(mode="custom_value", spec_id=..., send_day=3), now=as_of)
    with Ledger(path) as ledger, CapiClient(ClientConfig(pixel_id=..., access_token=...)) as client:
        report = deliver(plan.events, plan.skipped, client=client, ledger=ledger, run=RunInfo(...))
"""

from activation.client import CapiClient, ClientConfig, EventOutcome, appsecret_proof, classify, is_retryable
from activation.delivery import DeliveryReport, deliver
from activation.errors import (
    AccessDenied,
    ActivationError,
    DeliveryError,
    EventSettingsError,
    InvalidIdentifier,
    LedgerError,
    SandboxError,
)
from activation.events import (
    EventPlan,
    EventSettings,
    MatchQualityEstimate,
    PlannedEvent,
    SkippedEvent,
    build_event,
    build_events,
    estimate_match_quality,
    event_id_for,
    validate_event,
)
from activation.identity import IdentityReport, hash_identifiers, normalize, user_data_for
from activation.ledger import Ledger, LedgerSummary, RunInfo
from activation.redaction import RedactionFilter, log_event, redact
from activation.sandbox import FaultConfig, Sandbox

__all__ = [
    "AccessDenied",
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
    "PlannedEvent",
    "RedactionFilter",
    "RunInfo",
    "Sandbox",
    "SandboxError",
    "SkippedEvent",
    "appsecret_proof",
    "build_event",
    "build_events",
    "classify",
    "deliver",
    "estimate_match_quality",
    "event_id_for",
    "hash_identifiers",
    "is_retryable",
    "log_event",
    "normalize",
    "redact",
    "user_data_for",
    "validate_event",
]
