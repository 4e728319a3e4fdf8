"""Point-in-time features and labels: one SQL query (``pltv/sql/features.sql``) for training and scoring.

For a send day ``d`` a user's features read only rows with
``signup_at <= occurred_at < min(signup_at + d days, as_of)``; the labels (``actual_ltv``, ``actual_future``)
are filled only for users matured at ``as_of`` (``signup_at + horizon_days days <= as_of``).

Populations:

- ``"matured"``: training and evaluation (labels present);
- ``"send_window"``: the daily job, users whose send moment ``signup_at + d days`` lies in
  ``[send_from, send_to)`` (use ``as_of = send_to``; a catch-up window simply starts earlier);
- ``"reached"``: every user whose send moment is at or before ``as_of`` (batch scoring, ``pltv score``);
- ``"all"``: every user signed up before ``as_of`` (notebooks).

Event counts: the names are discovered at training time (:func:`discover_event_names`), stored in the model,
and passed back to :func:`build_features` when scoring so that the same columns exist (a name absent from the
data counts 0; the models also align columns themselves).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from importlib import resources

import duckdb
import numpy as np
import pandas as pd

from pltv.errors import ConfigError, SchemaError

CATEGORICALS = ("country", "platform", "channel")
NUMERIC_FEATURES = (
    "signup_weekday",
    "signup_hour",
    "early_gross_revenue",
    "early_refunds",
    "early_net_revenue",
    "early_purchases",
    "early_refund_count",
    "early_payer",
    "early_max_purchase",
    "hours_to_first_purchase",
    "early_active_days",
    "hours_since_last_activity",
    "early_events",
)
EVENT_PREFIX = "event__"
LABELS = ("actual_ltv", "actual_future")
KEYS = ("user_id", "signup_at", "send_at")
POPULATIONS = ("matured", "reached", "send_window", "all")
MAX_EVENT_NAMES = 30
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_sql(name: str) -> str:
    """Text of ``pltv/sql/<name>``."""
    return resources.files("pltv").joinpath("sql", name).read_text(encoding="utf-8")


def feature_sql_hash() -> str:
    """Short SHA-256 of the feature SQL, logged with every model so a changed query is visible."""
    text = load_sql("features.sql") + load_sql("event_names.sql")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def to_utc_naive(moment: datetime | date | str | pd.Timestamp) -> datetime:
    """A UTC instant as a naive ``datetime`` (the sources' TIMESTAMP convention); dates mean 00:00 UTC."""
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def default_as_of(data_end: datetime | date | str | pd.Timestamp) -> datetime:
    """The day after the last timestamp seen, at midnight UTC: data is complete before it."""
    end = to_utc_naive(data_end)
    return datetime(end.year, end.month, end.day) + timedelta(days=1)


def as_of_or_default(as_of, data_end) -> datetime | None:
    """``as_of`` as naive UTC when given, else :func:`default_as_of` of ``data_end``; ``None`` when neither."""
    if as_of is not None:
        return to_utc_naive(as_of)
    return default_as_of(data_end) if data_end is not None else None


def event_column(name: str) -> str:
    """Column name for the count of one event name (``event__add_to_cart``)."""
    return EVENT_PREFIX + (re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower() or "unnamed")


def event_columns(event_names: Sequence[str]) -> list[str]:
    """Distinct column names for ``event_names``, in order (a numeric suffix resolves collisions)."""
    seen: dict[str, int] = {}
    out = []
    for name in event_names:
        col = event_column(name)
        if col in seen:
            seen[col] += 1
            col = f"{col}_{seen[col]}"
        seen.setdefault(col, 0)
        out.append(col)
    return out


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """The categorical feature columns of a features frame (the defaults plus any configured extras)."""
    return [c for c in frame.attrs.get("categoricals", CATEGORICALS) if c in frame.columns]


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model input columns present in a features frame: numerics, categoricals, event counts."""
    cols = [c for c in NUMERIC_FEATURES if c in frame.columns]
    cols += categorical_columns(frame)
    cols += [c for c in frame.columns if c.startswith(EVENT_PREFIX)]
    return cols


def discover_event_names(
    con: duckdb.DuckDBPyConnection, *, as_of, limit: int = MAX_EVENT_NAMES, send_day: int | None = None
) -> list[str]:
    """Event names seen before ``as_of``, most frequent first (at most ``limit``); ``send_day`` is unused."""
    rows = con.execute(
        load_sql("event_names.sql"), {"as_of": to_utc_naive(as_of), "limit": int(limit)}
    ).fetchall()
    return [row[0] for row in rows]


def used_params(sql: str, params: dict) -> dict:
    """The parameters the query's body refers to (DuckDB refuses unused named parameters)."""
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", body)}


def event_params(event_names: Sequence[str]) -> dict[str, str]:
    """``{event_1: name_1, ...}``: one scalar parameter per counted event name (portable, unlike lists)."""
    return {f"event_{i}": name for i, name in enumerate(event_names, start=1)}


def _attribute_select(present: set[str] | None, attributes: Sequence[str]) -> tuple[str, str]:
    """The population's attribute expressions and the final SELECT's attribute columns (allow-listed)."""
    parts, names = [], []
    for name in attributes:
        if not _IDENT.match(name):
            raise ConfigError(f"categorical feature column {name!r} is not a plain identifier")
        if present is None or name in present:
            parts.append(f'CAST(u."{name}" AS VARCHAR) AS "{name}"')
        else:
            parts.append(f'CAST(NULL AS VARCHAR) AS "{name}"')
        names.append(f's."{name}",\n        ')
    return (",\n        ".join(parts) if parts else "NULL AS _no_attributes"), "".join(names)


def feature_query(
    *, n_events: int, categoricals: Sequence[str] = CATEGORICALS, present: set[str] | None = None
) -> str:
    """``features.sql`` with its allow-listed templates filled (DuckDB dialect; see :mod:`pltv.sql_render`).

    ``present``: the users table's columns (a categorical it lacks becomes NULL); ``None`` assumes all exist.
    """
    attributes, attribute_columns = _attribute_select(present, categoricals)
    counts = "".join(
        f"count(CASE WHEN event_name = $event_{i} THEN 1 END) AS event_{i},\n        "
        for i in range(1, n_events + 1)
    )
    columns = "".join(f"ef.event_{i},\n        " for i in range(1, n_events + 1))
    return (
        load_sql("features.sql")
        .replace("{attributes}", attributes)
        .replace("{attribute_columns}", attribute_columns)
        .replace("{event_counts}", counts)
        .replace("{event_columns}", columns)
    )


def check_window(*, send_day: int, horizon_days: int, population: str, send_from=None, send_to=None) -> None:
    """Refuse a window the SQL cannot mean (before any engine runs it)."""
    if send_day < 0 or horizon_days <= send_day:
        raise ConfigError(
            f"need 0 <= send_day < horizon_days, got send_day={send_day}, horizon_days={horizon_days}"
        )
    if population not in POPULATIONS:
        raise ConfigError(f"population must be one of {POPULATIONS}, got {population!r}")
    if population == "send_window" and (send_from is None or send_to is None):
        raise ConfigError("population='send_window' needs send_from and send_to")


def feature_params(
    *, send_day: int, horizon_days: int, as_of, population: str, send_from=None, send_to=None,
    event_names: Sequence[str] = (),
) -> dict:  # fmt: skip
    """The bound parameters of :func:`feature_query` (timestamps as naive UTC datetimes)."""
    return {
        "send_day": int(send_day),
        "horizon_days": int(horizon_days),
        "as_of": to_utc_naive(as_of) if as_of is not None else None,  # None: `pltv sql` leaves it to bind
        "population": population,
        "send_from": to_utc_naive(send_from) if send_from is not None else None,
        "send_to": to_utc_naive(send_to) if send_to is not None else None,
        **event_params(event_names),
    }


def finish_frame(
    frame: pd.DataFrame, *, event_names: Sequence[str], categoricals: Sequence[str], send_day: int, as_of
) -> pd.DataFrame:
    """An engine's raw result as the features frame every consumer reads (names, dtypes, attrs)."""
    if "_no_attributes" in frame.columns:
        frame = frame.drop(columns="_no_attributes")
    event_names = list(event_names)
    renames = dict(
        zip([f"event_{i}" for i in range(1, len(event_names) + 1)], event_columns(event_names), strict=True)
    )
    frame = frame.rename(columns=renames)
    for col in renames.values():
        frame[col] = frame[col].fillna(0).astype(np.float64)
    for col in categoricals:
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    for col in NUMERIC_FEATURES:
        frame[col] = frame[col].astype(np.float64)
    for col in LABELS:
        frame[col] = frame[col].astype(np.float64)
    frame["user_id"] = frame["user_id"].astype(str)
    frame.attrs["event_names"] = event_names
    frame.attrs["send_day"] = int(send_day)
    frame.attrs["categoricals"] = list(categoricals)
    frame.attrs["as_of"] = f"{to_utc_naive(as_of):%Y-%m-%d}"  # attrs travel into Parquet metadata: JSON only
    return frame


def build_features(
    con: duckdb.DuckDBPyConnection,
    *,
    send_day: int,
    as_of,
    horizon_days: int = 365,
    population: str = "matured",
    send_from=None,
    send_to=None,
    event_names: Sequence[str] | None = None,
    categoricals: Sequence[str] = CATEGORICALS,
) -> pd.DataFrame:
    """Features (and labels for matured users) for one send day, one row per user, ordered by signup.

    ``con`` holds the canonical ``users``/``transactions``/``events`` tables (see :mod:`pltv.sources`).
    Columns: ``user_id``, ``signup_at``, ``send_at``, the categoricals (strings), :data:`NUMERIC_FEATURES`,
    one ``event__<name>`` count per event name, ``actual_ltv`` and ``actual_future`` (NaN unless matured).
    ``event_names=None`` discovers them from the data (training); scoring passes the model's list.
    """
    check_window(
        send_day=send_day, horizon_days=horizon_days, population=population, send_from=send_from,
        send_to=send_to,
    )  # fmt: skip
    as_of = to_utc_naive(as_of)
    if event_names is None:
        event_names = discover_event_names(con, as_of=as_of)
    event_names = list(event_names)
    params = feature_params(
        send_day=send_day, horizon_days=horizon_days, as_of=as_of, population=population,
        send_from=send_from, send_to=send_to, event_names=event_names,
    )  # fmt: skip
    try:
        present = {row[0] for row in con.execute("DESCRIBE users").fetchall()}
        sql = feature_query(n_events=len(event_names), categoricals=categoricals, present=present)
        frame = con.execute(sql, used_params(sql, params)).df()
    except duckdb.CatalogException as exc:
        raise SchemaError(
            f"features need users, transactions and events tables: {str(exc).splitlines()[0]}"
        ) from exc
    return finish_frame(
        frame, event_names=event_names, categoricals=categoricals, send_day=send_day, as_of=as_of
    )
