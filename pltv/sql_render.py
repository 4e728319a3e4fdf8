"""The feature SQL for a warehouse or Spark: ``pltv/sql/*.sql`` (DuckDB dialect) rendered with sqlglot.

There is one SQL (the DuckDB files in ``pltv/sql/``, written in the subset sqlglot transpiles correctly) and
one place where a dialect needs more than sqlglot gives it (:data:`OVERRIDES`): adding days to a timestamp
(``ts + to_days(n)``) and microseconds since the epoch (``epoch_us(ts)``), whose DuckDB spellings sqlglot
30.x passes through unchanged (functions the targets lack), and the timestamp type BigQuery needs (sqlglot
maps DuckDB ``TIMESTAMP`` to ``DATETIME``, which does not compare with ``TIMESTAMP`` columns).

Parameters stay bound, in each dialect's own style (:data:`PARAM_STYLE`): ``$name`` in DuckDB, ``:name`` in
Spark / Databricks (``spark.sql(sql, args=...)``, Databricks SQL parameters), ``@name`` in BigQuery (query
parameters), ``:name`` in Snowflake (bind variables). :func:`render_features` returns the SQL with a header
that lists every parameter with its value, so a scheduled query only has to bind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlglot
from sqlglot import exp

from pltv.features import (
    CATEGORICALS,
    MAX_EVENT_NAMES,
    check_window,
    feature_params,
    feature_query,
    feature_sql_hash,
    load_sql,
    to_utc_naive,
    used_params,
)

DIALECTS = ("duckdb", "spark", "databricks", "bigquery", "snowflake")
PARAM_STYLE = {
    "duckdb": "$name; con.execute(sql, {name: value})",
    "spark": ":name; spark.sql(sql, args={name: value}); session time zone UTC",
    "databricks": ":name; Databricks SQL named parameters or spark.sql(sql, args={...}); session time zone UTC",
    "bigquery": "@name; bq query --use_legacy_sql=false --parameter=name:TYPE:value",
    "snowflake": ":name; bind variables of the connector or a Snowflake Scripting block; TIMEZONE = 'UTC'",
}
# DuckDB functions the targets lack, written out per dialect: the only hand-made part of a rendering.
OVERRIDES = {
    "add_days": {
        "spark": lambda ts, n: exp.Anonymous(this="TIMESTAMPADD", expressions=[exp.var("DAY"), n, ts]),
        "bigquery": lambda ts, n: exp.Anonymous(
            this="TIMESTAMP_ADD", expressions=[ts, exp.Interval(this=n, unit=exp.var("DAY"))]
        ),
        "snowflake": lambda ts, n: exp.Anonymous(this="DATEADD", expressions=[exp.var("DAY"), n, ts]),
    },
    "epoch_us": {
        "spark": lambda ts: exp.Anonymous(this="UNIX_MICROS", expressions=[ts]),
        "bigquery": lambda ts: exp.Anonymous(this="UNIX_MICROS", expressions=[ts]),
        "snowflake": lambda ts: exp.Anonymous(
            this="DATE_PART", expressions=[exp.var("EPOCH_MICROSECOND"), ts]
        ),
    },
}
# what must never survive a rendering for another dialect (DuckDB-only spellings sqlglot passes through)
DUCKDB_ONLY = ("TO_DAYS", "EPOCH_US", "EPOCH(", "ISODOW", "ERROR(", "EXCLUDE", "ANY_VALUE", "LIST(", "$")
_FAMILY = {"spark": "spark", "databricks": "spark", "bigquery": "bigquery", "snowflake": "snowflake"}


def _check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    return dialect


def _rewrite(node: exp.Expression, family: str) -> exp.Expression:
    if isinstance(node, exp.Add) and isinstance(node.expression, exp.ToDays):
        return OVERRIDES["add_days"][family](node.this, node.expression.this)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "epoch_us":
        return OVERRIDES["epoch_us"][family](node.expressions[0])
    if family == "snowflake" and isinstance(node, exp.Identifier) and node.quoted:
        # the templated names are checked plain identifiers; quoted, Snowflake would match them case-sensitively
        return exp.to_identifier(node.name, quoted=False)
    naive = (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ)
    if family in ("bigquery", "spark") and isinstance(node, exp.DataType) and node.this in naive:
        return exp.DataType.build("TIMESTAMPTZ")  # an instant: BigQuery/Spark TIMESTAMP, not DATETIME/NTZ
    return node


def transpile(sql: str, dialect: str) -> str:
    """``sql`` (DuckDB dialect, one statement) in ``dialect``, with :data:`OVERRIDES` applied."""
    _check_dialect(dialect)
    tree = sqlglot.parse_one(sql, read="duckdb")
    if dialect == "duckdb":
        return tree.sql(dialect="duckdb", pretty=True, comments=False)
    family = _FAMILY[dialect]
    tree = tree.transform(lambda node: _rewrite(node, family), copy=True)
    return tree.sql(dialect=dialect, pretty=True, comments=False)


def _literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return f"'{value:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _type(name: str) -> str:
    if name in ("as_of", "send_from", "send_to"):
        return "TIMESTAMP"
    return "INTEGER" if name in ("send_day", "horizon_days", "limit") else "STRING"


@dataclass(frozen=True)
class RenderedSql:
    """A query for one dialect, its parameter values (names without the marker) and a printable form."""

    dialect: str
    sql: str
    params: dict
    source: str

    def text(self, title: str) -> str:
        """The SQL with a header comment naming the dialect, the binding style and every value."""
        lines = [
            f"-- {title}",
            f"-- rendered by `pltv sql` from pltv/sql/{self.source} (feature SQL hash {feature_sql_hash()})",
            f"-- dialect: {self.dialect}; parameters: {PARAM_STYLE[self.dialect]}",
        ]
        lines += [f"--   {name} {_type(name)} = {_literal(value)}" for name, value in self.params.items()]
        return "\n".join(lines) + "\n" + self.sql + "\n"


def render(sql: str, params: dict, dialect: str, *, source: str) -> RenderedSql:
    """Render a DuckDB query with its parameters for ``dialect`` (only the parameters it uses)."""
    used = used_params(sql, params)
    return RenderedSql(dialect=dialect, sql=transpile(sql, dialect), params=used, source=source)


def render_features(
    dialect: str,
    *,
    send_day: int,
    as_of,
    horizon_days: int = 365,
    population: str = "matured",
    send_from=None,
    send_to=None,
    event_names: Sequence[str] = (),
    categoricals: Sequence[str] = CATEGORICALS,
) -> RenderedSql:
    """The feature and label query (``features.sql``) for ``dialect``, with its parameter values.

    The users table is assumed to hold every column in ``categoricals`` (the DuckDB path checks; a warehouse
    table is not visible from here).
    """
    check_window(send_day=send_day, horizon_days=horizon_days, population=population, send_from=send_from,
                 send_to=send_to)  # fmt: skip
    sql = feature_query(n_events=len(event_names), categoricals=categoricals)
    params = feature_params(
        send_day=send_day, horizon_days=horizon_days, as_of=as_of, population=population,
        send_from=send_from, send_to=send_to, event_names=event_names,
    )  # fmt: skip
    return render(sql, params, dialect, source="features.sql")


def render_event_names(dialect: str, *, as_of, limit: int = MAX_EVENT_NAMES) -> RenderedSql:
    """The event-name discovery query (``event_names.sql``) for ``dialect``."""
    sql = load_sql("event_names.sql")
    return render(sql, {"as_of": to_utc_naive(as_of), "limit": int(limit)}, dialect, source="event_names.sql")
