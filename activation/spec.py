"""EventSpec: the versioned JSON document that says which event the daily job sends, and how.

It pins the model version it was designed for; ``spec_id`` is a content hash (everything but
``created_at``), so the same design inputs give the same id, and every event id derives from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from activation.errors import SpecError
from activation.settings import MODES, EventSettings
from activation.valuemap import ValueMapping

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class EventSpec:
    mode: str
    event_name: str
    send_day: int
    currency: str
    value_mapping: ValueMapping
    model_name: str
    model_version: str
    horizon_days: int
    action_source: str = "website"
    threshold: float | None = None  # threshold mode: fire when predicted_ltv >= threshold
    top_share: float | None = None  # threshold mode: the holdout share above the threshold
    expected: Mapping[str, float] = field(default_factory=dict)
    # the holdout's distribution of sent values: interior bin edges and the share per bin (for PSI)
    value_reference: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpecError(f"spec mode must be one of {MODES}, got {self.mode!r}")
        self.event_settings()  # validates name, currency, threshold, action source

    def content(self) -> dict[str, Any]:
        """Everything that defines the spec (not ``created_at``), JSON-ready."""
        return {
            "schema_version": self.schema_version,
            "mode": self.mode,
            "event_name": self.event_name,
            "send_day": self.send_day,
            "currency": self.currency,
            "action_source": self.action_source,
            "value_mapping": self.value_mapping.to_dict(),
            "threshold": self.threshold,
            "top_share": self.top_share,
            "model": {"name": self.model_name, "version": str(self.model_version)},
            "horizon_days": self.horizon_days,
            "expected": {k: round(float(v), 6) for k, v in sorted(self.expected.items())},
            "value_reference": {
                k: [round(float(x), 6) for x in v] for k, v in sorted(self.value_reference.items())
            },
        }

    @cached_property  # the spec is frozen: hash its content once
    def spec_id(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return "spec-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"spec_id": self.spec_id, **self.content(), "created_at": self.created_at}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def event_settings(self) -> EventSettings:
        """What :mod:`activation.events` needs to build this spec's events."""
        return EventSettings(
            mode=self.mode,  # type: ignore[arg-type]
            spec_id=self.spec_id,
            send_day=self.send_day,
            event_name=self.event_name,
            currency=self.currency,
            action_source=self.action_source,
            threshold=self.threshold,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec is a JSON object, got a JSON {type(data).__name__}; run `pltv design`")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SpecError(f"spec schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        try:
            spec = cls(
                mode=data["mode"],
                event_name=data["event_name"],
                send_day=int(data["send_day"]),
                currency=data["currency"],
                action_source=data.get("action_source", "website"),
                value_mapping=ValueMapping.from_dict(data["value_mapping"]),
                threshold=data.get("threshold"),
                top_share=data.get("top_share"),
                model_name=data["model"]["name"],
                model_version=str(data["model"]["version"]),
                horizon_days=int(data["horizon_days"]),
                expected=dict(data.get("expected", {})),
                value_reference={k: tuple(v) for k, v in data.get("value_reference", {}).items()},
                created_at=data.get("created_at", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"spec is missing or has an invalid field: {exc}") from None
        if "spec_id" not in data:
            raise SpecError(
                "spec has no spec_id (its content hash), so it cannot be checked; run `pltv design`"
            )
        if data["spec_id"] != spec.spec_id:
            raise SpecError(
                f"spec_id {data['spec_id']} does not match the spec's content ({spec.spec_id}): "
                "the file was edited after design; run `pltv design` again"
            )
        return spec


def save_spec(spec: EventSpec, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(spec.to_json())
    tmp.replace(path)  # never a half-written spec
    return path


def load_spec(path: str | Path) -> EventSpec:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; run `pltv design --out {path}` first") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid JSON (line {exc.lineno})") from None
    return EventSpec.from_dict(data)


def version_tags(tracking_uri: str, name: str, version: str) -> dict[str, str]:
    """Tags ``pltv train`` put on a registered version (``send_day``, ``horizon_days``, ``as_of``)."""
    from mlflow import MlflowClient

    return dict(MlflowClient(tracking_uri).get_model_version(name, str(version)).tags)


def check_spec_model(spec: EventSpec, tracking_uri: str) -> None:
    """Fail clearly when the registry's pinned version does not fit the spec (missing, other send day)."""
    from pltv import tracking

    tracking.configure(tracking_uri, existing=True)
    try:
        params = version_tags(tracking_uri, spec.model_name, spec.model_version)
    except Exception as exc:
        raise SpecError(
            f"the spec pins {spec.model_name} version {spec.model_version}, which the registry at "
            f"{tracking_uri} cannot provide ({type(exc).__name__}: {exc})"
        ) from exc
    if int(params.get("send_day", spec.send_day)) != spec.send_day:
        raise SpecError(
            f"the spec's send day {spec.send_day} does not match model {spec.model_name} v{spec.model_version}, "
            f"trained for send day {params['send_day']}"
        )
    if int(params.get("horizon_days", spec.horizon_days)) != spec.horizon_days:
        raise SpecError(
            f"the spec's horizon {spec.horizon_days} days does not match the model's {params['horizon_days']}"
        )
