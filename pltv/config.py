"""Configuration: one optional ``pltv.toml``; CLI flags override it.

Only the CLI reads environment variables (``MLFLOW_TRACKING_URI``, ``META_ACCESS_TOKEN``,
``META_APP_SECRET``); library code receives everything through these frozen objects.

Example ``pltv.toml``::

    [source]
    path = "data/sample"
    currency = "USD"

    [source.columns.users]          # source column -> canonical column
    signup_ts = "signup_at"

    [train]
    send_days = [0, 1, 3, 7]
    horizon_days = 365

    [mlflow]
    tracking_uri = "sqlite:///mlruns/mlflow.db"
    model_name = "pltv_d{send_day}"

    [capi]
    pixel_id = "1234567890"
    graph_url = "https://graph.facebook.com"
    api_version = "v26.0"
    ledger = "pltv_ledger.duckdb"

    [experiment]                    # the acquisition experiment `pltv report` reads out (optional)
    arm_column = "acq_arm"          # users column naming the arm that acquired the user
    treatment = "pltv"              # its value for the pLTV campaign
    control = "bau"                 # its value for business as usual

Relative paths written in the file (``[source] path``, a ``sqlite:///`` ``[mlflow] tracking_uri``,
``[capi] ledger``, and so the dry-run outbox beside the ledger) are resolved against the file's folder,
so ``pltv inspect --config mydata/pltv.toml`` reads the same data from any working directory. Defaults
that the file does not set, and CLI flags, stay relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pltv.errors import ConfigError

CONFIG_FILENAME = "pltv.toml"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_SOURCE = "data/sample"
SQLITE_PREFIX = "sqlite:///"


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """Where the revenue history lives and how its columns are named."""

    path: str = DEFAULT_SOURCE
    currency: str = "USD"
    # table -> {source column name: canonical column name}
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    # extra categorical user columns used as model features (beyond country/platform/channel)
    extra_categoricals: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    send_days: tuple[int, ...] = (0, 1, 3, 7)
    horizon_days: int = 365


@dataclass(frozen=True, kw_only=True)
class MlflowConfig:
    tracking_uri: str = DEFAULT_TRACKING_URI
    # ``{send_day}`` is replaced by the send day: one registered model per send day.
    model_name: str = "pltv_d{send_day}"
    experiment: str = "pltv"


@dataclass(frozen=True, kw_only=True)
class CapiConfig:
    pixel_id: str | None = None
    graph_url: str = "https://graph.facebook.com"
    api_version: str = "v26.0"
    ledger: str = "pltv_ledger.duckdb"
    default_region: str = "US"


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """Where the experiment's arms are: a ``users`` column and its two values (unset: no experiment)."""

    arm_column: str | None = None
    treatment: str = "treatment"
    control: str = "control"
    maturity_days: int = 30


@dataclass(frozen=True, kw_only=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    capi: CapiConfig = field(default_factory=CapiConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied to one section; ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


_SECTIONS = {"source": SourceConfig, "train": TrainConfig, "mlflow": MlflowConfig, "capi": CapiConfig,
             "experiment": ExperimentConfig}  # fmt: skip


def _build_section(name: str, raw: Mapping[str, Any]) -> Any:
    cls = _SECTIONS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"pltv.toml [{name}]: unknown key(s) {unknown}; expected some of {sorted(known)}")
    values = dict(raw)
    if name == "source" and "columns" in values:
        columns = values["columns"]
        if not isinstance(columns, Mapping) or not all(isinstance(v, Mapping) for v in columns.values()):
            raise ConfigError(
                "pltv.toml [source.columns]: expected one table per sub-table, e.g. "
                '[source.columns.users] signup_ts = "signup_at"'
            )
        values["columns"] = _frozen_mapping({t: _frozen_mapping(m) for t, m in columns.items()})
    for key in ("send_days", "extra_categoricals"):
        if key in values:
            if not isinstance(values[key], list):
                raise ConfigError(
                    f"pltv.toml [{name}] {key}: expected a list, got {type(values[key]).__name__}"
                )
            values[key] = tuple(values[key])
    _check_types(name, values)
    return cls(**values)


MAX_HORIZON_DAYS = 3650


def _check_types(section: str, values: Mapping[str, Any]) -> None:
    """Numbers are whole numbers in range (1e400 reads as inf, 1.5 and true are not days); text is text."""

    def whole(key: str, value: Any, low: int, high: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"pltv.toml [{section}] {key}: expected whole numbers in {low}..{high}, got {value!r}"
            )

    for key, value in values.items():
        if key == "send_days":
            for day in value:
                whole(key, day, 0, MAX_HORIZON_DAYS)
        elif key == "horizon_days":
            whole(key, value, 1, MAX_HORIZON_DAYS)
        elif key == "extra_categoricals":
            if not all(isinstance(v, str) for v in value):
                raise ConfigError(f"pltv.toml [{section}] {key}: expected a list of column names")
        elif key != "columns" and not isinstance(value, str):
            raise ConfigError(
                f'pltv.toml [{section}] {key}: expected a quoted string, got {type(value).__name__} (write {key} = "...")'
            )


def load_config(path: str | Path | None = None, *, cwd: Path | None = None) -> Config:
    """Read ``path`` (or ``pltv.toml`` in ``cwd`` when present); missing file -> defaults."""
    if path is None:
        candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
        if not candidate.exists():
            return Config()
        path = candidate
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; expected some of {sorted(_SECTIONS)}")
    config = Config(**{name: _build_section(name, raw[name]) for name in _SECTIONS if name in raw})
    return _resolve_paths(config, raw, path.resolve().parent)


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # catalog:, s3://, dbfs:/, abfss://: not a local path


def _against(base: Path, value: str) -> str:
    """``value`` as an absolute path: itself when absolute (``~`` expanded) or a URI or ``catalog:<schema>``
    (a Spark source), else under ``base``."""
    if _SCHEME.match(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _resolve_paths(config: Config, raw: Mapping[str, Any], base: Path) -> Config:
    """The paths the file sets, made absolute against its folder ``base`` (see the module docstring)."""
    if "path" in raw.get("source", {}):
        config = config.replace("source", path=_against(base, config.source.path))
    uri = config.mlflow.tracking_uri
    if "tracking_uri" in raw.get("mlflow", {}) and uri.startswith(SQLITE_PREFIX):
        db = uri[len(SQLITE_PREFIX) :]
        if db and db != ":memory:":
            config = config.replace("mlflow", tracking_uri=SQLITE_PREFIX + _against(base, db))
    if "ledger" in raw.get("capi", {}):
        config = config.replace("capi", ledger=_against(base, config.capi.ledger))
    return config


def anchor_paths(config: Config, base: Path) -> Config:
    """``config`` with every relative path (source, ``sqlite:///`` store, ledger) made absolute under ``base``.

    For callers whose working directory is not the project's (a notebook runs in ``notebooks/``)."""
    config = config.replace("source", path=_against(base, config.source.path))
    uri = config.mlflow.tracking_uri
    db = uri[len(SQLITE_PREFIX) :] if uri.startswith(SQLITE_PREFIX) else ""
    if db and db != ":memory:":
        config = config.replace("mlflow", tracking_uri=SQLITE_PREFIX + _against(base, db))
    return config.replace("capi", ledger=_against(base, config.capi.ledger))


def resolve_config(
    path: str | Path | None = None, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """What the CLI and the notebooks read: ``path`` (or ``cwd``'s ``pltv.toml``), then the store from
    ``environ['MLFLOW_TRACKING_URI']`` when set. With ``cwd``, a relative ``path`` and the relative defaults
    are anchored to it (a notebook runs in ``notebooks/``, its ``cwd`` is the repository root)."""
    if path is not None and cwd is not None:
        path = Path(_against(cwd, str(path)))
    config = load_config(path, cwd=cwd)
    uri = (environ or {}).get("MLFLOW_TRACKING_URI")
    if uri:
        config = config.replace("mlflow", tracking_uri=uri)
    return anchor_paths(config, cwd) if cwd is not None else config


def parse_send_days(text: str) -> tuple[int, ...]:
    """``"0,1,3,7"`` -> ``(0, 1, 3, 7)``; rejects negatives and garbage with a clear message."""
    try:
        days = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise ConfigError(f"send days must be comma-separated integers, got {text!r}") from exc
    if not days or days[0] < 0:
        raise ConfigError(f"send days must be non-negative integers, got {text!r}")
    return days
