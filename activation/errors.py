"""One exception tree for the ``activation`` package.

Messages name event ids, batch numbers, keys and Meta's error codes — never an identifier (raw or hashed),
a token or an appsecret_proof.
"""


class ActivationError(Exception):
    """Root of every error raised on purpose by ``activation``."""


class InvalidIdentifier(ActivationError, ValueError):
    """An identifier value is unusable for its ``user_data`` key; the key is dropped for that user.

    Carries the key and a short reason code, never the value.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"unusable {key} value ({reason}); the key is dropped for this user")
        self.key = key
        self.reason = reason


class EventSettingsError(ActivationError, ValueError):
    """Event settings (mode, name, currency, threshold…) break one of Meta's rules."""


class SpecError(EventSettingsError):
    """An EventSpec file is unreadable, of another schema, tampered with, or does not fit its model."""


class ClientConfigError(ActivationError, ValueError):
    """The delivery configuration (client limits, URL, token, pixel id) cannot work; nothing was sent."""


class EndpointError(ClientConfigError):
    """The Graph URL is not one the token may be sent to (plain http off loopback, credentials in it)."""


class DailyRunError(ActivationError, RuntimeError):
    """The daily run could not start (spec, model, source or configuration)."""


class RunInProgress(DailyRunError):
    """Another daily run holds the ledger: this one stops before loading anything (nothing sent)."""


class SourceDistrusted(DailyRunError):
    """The source looks broken (empty tables, every transaction dropped, an export days behind)."""


class DeliveryError(ActivationError, RuntimeError):
    """Sending events to the Conversions API failed in a way that stops the run."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id


class RunStopped(DeliveryError):
    """Meta refused the request itself, not single events: the run stops, nothing more is sent, and the
    events not sent stay owed to the next run. The CLI exits with code 3."""


class AccessDenied(RunStopped, PermissionError):
    """Meta refused the token or its permissions (codes 190, 10, 200-299, 104, 100/33…)."""


class EndpointRefused(RunStopped):
    """The endpoint refused the request: unknown pixel or path (803, 2500), or an answer that is not the
    Graph API's error envelope, or an unknown code."""


class BatchRefused(RunStopped):
    """Every event of a whole batch was refused with the same error: the request or the event design is
    wrong, not single events."""


class LedgerError(ActivationError, RuntimeError):
    """The delivery ledger is unreadable or was asked for an impossible state transition."""


class LedgerWriteError(LedgerError):
    """The ledger could not be written mid-run (disk full, quota): the run stops, the ledger stays
    consistent and the next run completes it. The CLI exits with code 4."""


class SandboxError(ActivationError, OSError):
    """The local CAPI sandbox could not start or be reached."""


class SandboxConfigError(ActivationError, ValueError):
    """A sandbox option is out of range: a fault rate or kind, a ``--now`` clock."""
