"""EventSpec: the versioned JSON document that says which event the daily job sends, and how.

It pins the model version it was designed for; ``spec_id`` is a content hash (everything but
``created_at``), so the same design inputs give the same id, and every event id derives from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from activation.errors import EventSettingsError, SpecError
from activation.meta import MAX_VALUE
from activation.settings import MODES, EventSettings
from activation.valuemap import ValueMapping

SCHEMA_VERSION = 1
MAX_SEND_DAY = (
    28  # an event must reach Meta inside its 7-day click window after the acquisition, give or take
)
MAX_HORIZON_DAYS = 3650
MAX_SPEC_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class EventSpec:
    """One designed event: its :class:`EventSettings` (mode, name, send day, currency, action source,
    threshold), the value mapping and the model it pins, what the design expects and the holdout's values.

    ``settings`` is built with ``spec_id=""`` (the id is this spec's content hash, known only once the spec
    is whole); :meth:`event_settings` gives them bound to :attr:`spec_id`, as the builder needs them.
    """

    settings: EventSettings
    value_mapping: ValueMapping
    model_name: str
    model_version: str
    horizon_days: int
    top_share: float | None = None  # threshold mode: the holdout share above the threshold
    expected: Mapping[str, float] = field(default_factory=dict)
    # the holdout's distribution of sent values: interior bin edges and the share per bin (for PSI)
    value_reference: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # the designer's rules, checked again on every load: a spec whose hash was recomputed after an edit
        # must not send what the designer would never have written (the settings checked Meta's own rules)
        send_day = self.settings.send_day
        if not 0 <= send_day <= MAX_SEND_DAY or not 1 <= self.horizon_days <= MAX_HORIZON_DAYS:
            raise SpecError(
                f"spec send_day {send_day} / horizon_days {self.horizon_days} out of range "
                f"(0..{MAX_SEND_DAY} / 1..{MAX_HORIZON_DAYS}); run `pltv design`"
            )
        numbers = [
            self.value_mapping.floor,
            self.value_mapping.cap,
            *self.value_mapping.values,
            self.settings.threshold,
        ]
        if any(v is not None and not (math.isfinite(v) and 0 <= v <= MAX_VALUE) for v in numbers):
            raise SpecError(
                f"spec value mapping or threshold holds a number outside 0..{MAX_VALUE:g} (the designer floors "
                "values at 1.0 and maps predictions of the holdout); run `pltv design`"
            )
        if any(not math.isfinite(e) for e in self.value_mapping.edges) or list(
            self.value_mapping.edges
        ) != sorted(self.value_mapping.edges):
            raise SpecError("spec value mapping edges must be finite and ascending; run `pltv design`")

    # the settings' fields, read through (held once, in ``settings``)
    mode = property(lambda self: self.settings.mode)
    event_name = property(lambda self: self.settings.event_name)
    send_day = property(lambda self: self.settings.send_day)
    currency = property(lambda self: self.settings.currency)
    action_source = property(lambda self: self.settings.action_source)
    threshold = property(lambda self: self.settings.threshold)

    def content(self) -> dict[str, Any]:
        """Everything that defines the spec (not ``created_at``), JSON-ready. The layout of schema version 1
        (the settings' fields at the top level), so every spec file keeps its ``spec_id``."""
        st = self.settings
        return {
            "schema_version": self.schema_version,
            "mode": st.mode,
            "event_name": st.event_name,
            "send_day": st.send_day,
            "currency": st.currency,
            "action_source": st.action_source,
            "value_mapping": self.value_mapping.to_dict(),
            "threshold": st.threshold,
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
        """The spec's settings bound to its id: what :mod:`activation.events` builds the events with."""
        return replace(self.settings, spec_id=self.spec_id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"a spec is a JSON object, got a JSON {type(data).__name__}; run `pltv design`")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SpecError(f"spec schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        if data.get("mode") not in MODES:
            raise SpecError(f"spec mode must be one of {MODES}, got {data.get('mode')!r}")
        try:
            settings = EventSettings(
                mode=data["mode"],
                spec_id="",
                event_name=data["event_name"],
                send_day=_whole(data["send_day"], "send_day"),
                currency=data["currency"],
                action_source=data.get("action_source", "website"),
                threshold=data.get("threshold"),
            )
        except EventSettingsError as exc:  # name, currency, threshold, source
            raise SpecError(f"spec breaks a designer rule: {exc}; run `pltv design`") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"spec is missing or has an invalid field: {type(exc).__name__} {exc}") from None
        try:
            spec = cls(
                settings=settings,
                value_mapping=ValueMapping.from_dict(data["value_mapping"]),
                top_share=data.get("top_share"),
                model_name=data["model"]["name"],
                model_version=str(data["model"]["version"]),
                horizon_days=_whole(data["horizon_days"], "horizon_days"),
                expected=dict(data.get("expected", {})),
                value_reference={k: tuple(v) for k, v in data.get("value_reference", {}).items()},
                created_at=data.get("created_at", ""),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise SpecError(f"spec is missing or has an invalid field: {type(exc).__name__} {exc}") from None
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


def _whole(value: Any, name: str) -> int:
    """A JSON whole number (``1e400`` reads as inf, ``3.5`` and ``true`` are not days)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value


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
        raw = path.read_bytes()[: MAX_SPEC_BYTES + 1]
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; run `pltv design --out {path}` first") from None
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            f"spec file {path} is over {MAX_SPEC_BYTES // 2**20} MB: not a spec from `pltv design`"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"spec file {path} is not UTF-8 text: not a spec from `pltv design`") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        raise SpecError(f"spec file {path} is nested too deeply: not a spec from `pltv design`") from None
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
    if int(params.get("send_day", spec.settings.send_day)) != spec.settings.send_day:
        raise SpecError(
            f"the spec's send day {spec.settings.send_day} does not match model {spec.model_name} v{spec.model_version}, "
            f"trained for send day {params['send_day']}"
        )
    if int(params.get("horizon_days", spec.horizon_days)) != spec.horizon_days:
        raise SpecError(
            f"the spec's horizon {spec.horizon_days} days does not match the model's {params['horizon_days']}"
        )
