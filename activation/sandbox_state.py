"""What the sandbox is set to and what it remembers: seeded fault injection (:class:`FaultConfig`), the
replay clock (:func:`parse_now`, also the daily job's ``--now``) and the accepted events, counts and
errors (:class:`SandboxState`, every access under its lock). :mod:`activation.sandbox` serves HTTP.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activation.errors import SandboxConfigError

FAULT_KINDS = ("latency", "http_500", "throttle", "drop", "drop_after")
THROTTLE_CODES = (4, 17, 613, 80004)


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """Seeded fault injection: each request fails with probability ``rate``, kind drawn from ``kinds``."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    latency_s: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise SandboxConfigError(f"fault rate must be within [0, 1], got {self.rate}")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise SandboxConfigError(
                f"fault kinds must be among {FAULT_KINDS}, got {sorted(unknown) or 'none'}"
            )


# a replay clock is a moment Meta could have received events: Graph API CAPI did not exist before 2015
_EARLIEST_NOW = datetime(2015, 1, 1, tzinfo=UTC)
_LATEST_NOW = datetime(2100, 1, 1, tzinfo=UTC)


def parse_now(value: str | float | datetime) -> float:
    """Unix seconds from an ISO datetime (naive = UTC), a datetime or a number; a :class:`SandboxConfigError`
    (a ``ValueError``) for anything else and for moments outside 2015..2100 (``inf``, ``1e20``, year 1)."""
    seconds: float
    if isinstance(value, bool):
        raise SandboxConfigError(f"--now must be an ISO datetime or unix seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        if isinstance(value, str):
            try:
                seconds = float(value)
            except ValueError:
                try:
                    value = datetime.fromisoformat(value.strip())
                except ValueError:
                    raise SandboxConfigError(
                        f"--now must be an ISO datetime (2026-10-30T01:00:00Z) or unix seconds, got {value!r}"
                    ) from None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            try:
                seconds = value.timestamp()
            except (OverflowError, OSError, ValueError):
                seconds = float("nan")
    if not _EARLIEST_NOW.timestamp() <= seconds < _LATEST_NOW.timestamp():  # nan and inf fail too
        raise SandboxConfigError(
            f"--now must be a moment between {_EARLIEST_NOW:%Y-%m-%d} and {_LATEST_NOW:%Y-%m-%d} UTC, got {value!r}"
        )
    return seconds


class SandboxState:
    """Everything the sandbox remembers; every access holds ``lock``."""

    def __init__(
        self,
        faults: FaultConfig,
        clock: Callable[[], float],
        access_token: str | None,
        app_secret: str | None,
    ) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.access_token = access_token
        self.app_secret = app_secret
        self.set_faults(faults)
        self.reset()

    def set_faults(self, faults: FaultConfig) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def reset(self) -> None:
        self.accepted: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.without_id: list[dict[str, Any]] = []
        # (event_name, event_id) -> times counted: a receipt after the 48 h dedup window counts again
        self.counted: dict[tuple[str, str], int] = {}
        self.stats = {"requests": 0, "accepted": 0, "duplicates": 0, "rejected_batches": 0, "faults": 0}
        self.fault_counts: dict[str, int] = {}
        self.last_errors: list[dict[str, Any]] = []
        self.trace = 0

    def next_trace(self) -> str:
        self.trace += 1
        return f"Sbx{self.trace:010d}"
