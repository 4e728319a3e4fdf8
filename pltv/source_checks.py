"""The data contract's table checks, defined once and run by both engines (DuckDB and Spark SQL).

:mod:`pltv.sources` (DuckDB) and :class:`pltv.spark.SparkEngine` call :func:`run_checks` on each table,
already mapped to the canonical column names. A :class:`Check` is a predicate that is true on a bad row,
written in the SQL both engines accept (``TRY_CAST``, ``count_if``, ``CASE``, comparisons: no ``isfinite``,
no ``::``), and its message; the few expressions that differ (parsing a timestamp, quoting, the regex
function) come from the engine's :class:`Dialect`. One aggregate SELECT per table evaluates every row check
(a count and the smallest row key each), skipping those a column's type already satisfies (a TIMESTAMP
column parses); duplicate ``user_id`` values need a second, grouped pass over ``users``. The first failing
check, in the order of :data:`CHECKS`, raises :class:`DataQualityError` naming the table, the column, a
count and the first row key, never a value that may be personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pltv.errors import DataQualityError, SchemaError

REQUIRED = {
    "users": ("user_id", "signup_at"),
    "transactions": ("user_id", "occurred_at", "revenue"),
    "events": ("user_id", "occurred_at", "event_name"),
}
CLOCK_SKEW = timedelta(hours=1)  # rows up to this far after the current UTC time are still believed
MAX_REVENUE = 1e12  # largest believable |revenue| of one transaction, in any currency's units
TIMESTAMPS = {"users": ("signup_at", "conversion_sent_at"), "transactions": ("occurred_at",),
              "events": ("occurred_at",)}  # fmt: skip
BOOLEANS = ("consent", "ldu")  # users columns typed BOOLEAN

Run = Callable[[str], list[tuple]]  # executes one SELECT, returns every row


@dataclass(frozen=True)
class Dialect:
    """What the two engines spell differently; everything else in the checks is shared SQL."""

    quote: Callable[[str], str]  # an identifier
    literal: Callable[[str], str]  # a string literal
    # (quoted column, engine's type name) -> TIMESTAMP, NULL where a value does not parse
    _timestamp: Callable[[str, str], str]
    regex: str  # function (text, pattern) -> true on a match anywhere in text
    kind: Callable[[str], str]  # engine's type name -> "timestamp", "number", "boolean" or "other"

    def timestamp(self, column: str, type_name: str) -> str:
        """The column as a naive UTC TIMESTAMP; NULL where a non-null value does not parse."""
        return self._timestamp(self.quote(column), type_name)


def _duckdb_timestamp(col: str, type_name: str) -> str:
    if type_name.startswith("TIMESTAMP") or type_name == "DATE":
        return f"CAST({col} AS TIMESTAMP)"  # WITH TIME ZONE: converted in the session TimeZone, UTC
    return f"CAST(TRY_CAST({col} AS TIMESTAMPTZ) AS TIMESTAMP)"


def _spark_timestamp(col: str, type_name: str) -> str:
    if type_name in ("timestamp", "timestamp_ntz", "date"):
        return f"CAST({col} AS TIMESTAMP)"
    if type_name == "string" or type_name.startswith(("varchar", "char")):
        return f"TRY_CAST({col} AS TIMESTAMP)"  # an offset or zone is converted to UTC (the session zone)
    # a number is not a timestamp (Spark would read epoch seconds, DuckDB refuses it)
    return "CAST(NULL AS TIMESTAMP)"


def _duckdb_kind(type_name: str) -> str:
    if type_name.startswith("TIMESTAMP") or type_name == "DATE":
        return "timestamp"
    if type_name in _DUCKDB_NUMBERS or type_name.startswith("DECIMAL"):
        return "number"
    return "boolean" if type_name == "BOOLEAN" else "other"


def _spark_kind(type_name: str) -> str:
    if type_name in ("timestamp", "timestamp_ntz", "date"):
        return "timestamp"
    if type_name in _SPARK_NUMBERS or type_name.startswith("decimal"):
        return "number"
    return "boolean" if type_name == "boolean" else "other"


_DUCKDB_NUMBERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                   "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE"}  # fmt: skip
_SPARK_NUMBERS = {"tinyint", "smallint", "int", "bigint", "float", "double"}

DUCKDB = Dialect(
    quote=lambda name: '"' + name.replace('"', '""') + '"',
    literal=lambda text: "'" + text.replace("'", "''") + "'",
    _timestamp=_duckdb_timestamp,
    regex="regexp_matches",
    kind=_duckdb_kind,
)
SPARK = Dialect(
    quote=lambda name: "`" + name.replace("`", "``") + "`",
    literal=lambda text: "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'",
    _timestamp=_spark_timestamp,
    regex="regexp_like",
    kind=_spark_kind,
)


@dataclass(frozen=True)
class Context:
    """What a check's SQL and message may refer to, besides the count and the first key."""

    dialect: Dialect
    run: Run
    relation: str  # the mapped table (a view) the checks read
    key: str  # the row key named in messages: transaction_id when transactions have one, else user_id
    cutoff: datetime  # now (UTC, naive) plus CLOCK_SKEW: later rows cannot be real yet
    currency: str  # the configured currency, upper case


@dataclass(frozen=True)
class Check:
    """One rule of the contract: ``bad`` (a row predicate) or ``query`` (a SELECT of count, first key).

    SQL templates see ``{col}`` (the quoted column), ``{ts}`` (it parsed as a timestamp), ``{num}`` (it cast to
    DOUBLE), ``{key}``, ``{relation}``, ``{cutoff}``, ``{currency}`` and ``{max_revenue}`` (literals). The
    message sees ``count``, ``key``, ``example``, ``cutoff``, ``currency``, ``skew_hours``, ``max_revenue`` and
    what ``details`` (run only when the check fails) returns.
    """

    table: str
    column: str  # the check applies when the table has this column
    message: str
    bad: str | None = None
    query: str | None = None
    details: Callable[[Context], dict[str, object]] | None = None
    typed: str | None = None  # a column of this kind (Dialect.kind) cannot fail the check: it is skipped


_PARSE_TIMESTAMP = (
    "table '{table}', column '{column}': {count:,} value(s) are not parseable timestamps (first {key} = "
    "{example}); use ISO 8601, e.g. 2026-01-31T12:00:00Z or 2026-01-31 13:00:00+01:00 (an offset or zone is "
    "converted to UTC; a timestamp without one is taken as UTC)"
)


def _timestamp_checks(table: str) -> list[Check]:
    return [
        Check(
            table,
            column,
            _PARSE_TIMESTAMP.replace("{table}", table).replace("{column}", column),
            bad="{col} IS NOT NULL AND {ts} IS NULL",
            typed="timestamp",
        )
        for column in TIMESTAMPS[table]
    ]


def _decimal_commas(ctx: Context) -> dict[str, object]:
    """The hint for spreadsheet exports: how many unparseable revenues look like ``12,50``."""
    ((commas,),) = ctx.run(
        f"SELECT count(*) FROM {ctx.relation} WHERE TRY_CAST(revenue AS DOUBLE) IS NULL "
        f"AND {ctx.dialect.regex}(trim(CAST(revenue AS STRING)), '^-?[0-9.]*[0-9],[0-9]+$')"
    )
    hint = (
        f"; {commas:,} of them look like decimal commas (12,50): export numbers with a decimal point "
        "(a semicolon-separated CSV from a spreadsheet often uses the comma as decimal separator)"
        if commas
        else ""
    )
    return {"hint": hint}


def _currencies(ctx: Context) -> dict[str, object]:
    rows = ctx.run(
        f"SELECT DISTINCT upper(trim(CAST(currency AS STRING))) AS code FROM {ctx.relation} "
        "WHERE currency IS NOT NULL ORDER BY 1"
    )
    return {"found": [row[0] for row in rows]}


CHECKS: tuple[Check, ...] = (
    Check("users", "user_id", "table 'users', column 'user_id': {count:,} row(s) have no user_id",
          bad="{col} IS NULL"),
    *_timestamp_checks("users"),
    Check("users", "signup_at",
          "table 'users', column 'signup_at': {count:,} row(s) have no signup time (first user_id = {example})",
          bad="{col} IS NULL"),
    # refused like every other bad user row: dropping the user would silently drop their revenue too
    Check("users", "signup_at",
          "table 'users', column 'signup_at': {count:,} signup time(s) are in the future (after "
          "{cutoff:%Y-%m-%d %H:%M} UTC, now plus {skew_hours:g} h clock skew; first user_id = {example}); fix "
          "the exporting clock, or replace placeholder dates such as 9999-12-31 by the real signup time",
          bad="{ts} > {cutoff}"),
    Check("users", "user_id",
          "table 'users', column 'user_id': {count:,} user_id value(s) appear more than once "
          "(first user_id = {example}); users must hold one row per user",
          query="SELECT count(*), min(k) FROM (SELECT CAST({col} AS STRING) AS k FROM {relation} GROUP BY 1 "
                "HAVING count(*) > 1) AS duplicates"),
    *(
        Check("users", column,
              f"table 'users', column '{column}': {{count:,}} value(s) are not booleans "
              "(first user_id = {example}); use true/false",
              bad="{col} IS NOT NULL AND TRY_CAST({col} AS BOOLEAN) IS NULL", typed="boolean")
        for column in BOOLEANS
    ),
    *_timestamp_checks("transactions"),
    Check("transactions", "revenue",
          "table 'transactions', column 'revenue': {count:,} value(s) are not numbers (first {key} = {example})"
          "{hint}",
          bad="{col} IS NOT NULL AND {num} IS NULL", details=_decimal_commas, typed="number"),
    # nan/inf (or 1e400 read as inf) would pass as a number and break training and every sum after it;
    # NOT (abs(x) <= max) is true for nan and +-inf in both engines (nan sorts above every number)
    Check("transactions", "revenue",
          "table 'transactions', column 'revenue': {count:,} value(s) are not finite amounts (nan, inf or "
          "beyond +-{max_revenue:g}; first {key} = {example}); export missing revenue as empty (null) and "
          "amounts in the currency's units",
          bad="{num} IS NOT NULL AND NOT (abs({num}) <= {max_revenue})"),
    Check("transactions", "currency",
          "table 'transactions', column 'currency': found {found}, expected only {currency}; convert revenue "
          "to one currency or set [source] currency in pltv.toml",
          bad="{col} IS NOT NULL AND upper(trim(CAST({col} AS STRING))) <> {currency}", details=_currencies),
    *_timestamp_checks("events"),
)  # fmt: skip


def check_mapping(table: str, columns: Collection[str], mapping: Mapping[str, str]) -> None:
    """``[source.columns.<table>]`` (source name -> canonical name) fits the table's ``columns``."""
    for src_name, canonical in mapping.items():
        if src_name not in columns:
            raise SchemaError(
                f"column mapping for table '{table}': source column '{src_name}' not found "
                f"(columns: {', '.join(sorted(columns))})"
            )
        if canonical in columns and canonical != src_name:
            raise SchemaError(
                f"column mapping for table '{table}': '{src_name}' -> '{canonical}' collides with an "
                f"existing column '{canonical}'"
            )


def check_required(table: str, columns: Collection[str]) -> None:
    """The mapped table has the contract's required columns."""
    missing = [c for c in REQUIRED[table] if c not in columns]
    if missing:
        raise SchemaError(
            f"table '{table}' is missing required column(s) {missing} (found: {', '.join(sorted(columns))}); "
            f"if they exist under other names, map them in pltv.toml [source.columns.{table}]"
        )


def typed_timestamps(dialect: Dialect, table: str, columns: Mapping[str, str]) -> list[str]:
    """The select list typing ``table``'s timestamp columns (those it has), as the checks parse them."""
    return [
        f"{dialect.timestamp(c, columns[c])} AS {dialect.quote(c)}" for c in TIMESTAMPS[table] if c in columns
    ]


def row_key(table: str, columns: Mapping[str, str]) -> str:
    return "transaction_id" if table == "transactions" and "transaction_id" in columns else "user_id"


def run_checks(
    dialect: Dialect,
    run: Run,
    table: str,
    relation: str,
    columns: Mapping[str, str],
    *,
    cutoff: datetime,
    currency: str,
) -> None:
    """Raise the first failing check of ``table`` (columns: canonical name -> the engine's type name)."""
    key = row_key(table, columns)
    ctx = Context(dialect, run, relation, key, cutoff, currency.upper())
    kinds = {column: dialect.kind(type_name) for column, type_name in columns.items()}
    checks = [c for c in CHECKS if c.table == table and c.column in columns and kinds[c.column] != c.typed]

    def sql(template: str, column: str) -> str:
        q = dialect.quote(column)
        return template.format(
            col=q, ts=dialect.timestamp(column, columns[column]), num=f"TRY_CAST({q} AS DOUBLE)",
            key=dialect.quote(key), relation=relation, cutoff=f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S.%f}'",
            currency=dialect.literal(ctx.currency), max_revenue=f"CAST({MAX_REVENUE:.0f} AS DOUBLE)",
        )  # fmt: skip

    rows = [c for c in checks if c.bad is not None]
    found: dict[int, tuple[int, str | None]] = {}
    if rows:
        items = []
        for check in rows:
            bad = sql(check.bad, check.column)
            items += [
                f"count_if({bad})",
                f"min(CASE WHEN {bad} THEN CAST({dialect.quote(key)} AS STRING) END)",
            ]
        ((*values,),) = run(f"SELECT {', '.join(items)} FROM {relation}")
        found = {id(c): (int(values[2 * i] or 0), values[2 * i + 1]) for i, c in enumerate(rows)}
    for check in checks:
        if check.query is not None:
            ((count, example),) = run(sql(check.query, check.column))
            count = int(count or 0)
        else:
            count, example = found[id(check)]
        if count:
            extra = check.details(ctx) if check.details is not None else {}
            raise DataQualityError(
                check.message.format(
                    count=count,
                    key=key,
                    example=example,
                    cutoff=cutoff,
                    currency=ctx.currency,
                    skew_hours=CLOCK_SKEW.total_seconds() / 3600,
                    max_revenue=MAX_REVENUE,
                    **extra,
                )  # fmt: skip
            )


#: The row cleaning, once for both engines: why a row is dropped (and counted), in order, the first reason
#: that holds naming the row. ``t`` is the typed row, ``u`` its user (NULL for an unknown ``user_id``);
#: ``{cutoff}`` is now plus :data:`CLOCK_SKEW`. A duplicated ``transaction_id`` keeps one copy: the
#: earliest, then the smallest revenue, then ``user_id`` (copies equal on all three are the same row).
KEPT = {"transactions": ("user_id", "occurred_at", "revenue", "transaction_id"),
        "events": ("user_id", "occurred_at", "event_name")}  # fmt: skip
DUPLICATE = (
    "duplicate transaction_id",
    "t.transaction_id IS NOT NULL AND row_number() OVER (PARTITION BY t.transaction_id "
    "ORDER BY t.occurred_at ASC NULLS LAST, t.revenue ASC NULLS LAST, t.user_id) > 1",
)
DROPS = {
    "transactions": (
        ("unknown user_id", "u.user_id IS NULL"),
        ("null occurred_at", "t.occurred_at IS NULL"),
        ("occurred_at in the future", "t.occurred_at > {cutoff}"),
        ("null revenue", "t.revenue IS NULL"),
        ("before signup_at", "t.occurred_at < u.signup_at"),
    ),
    "events": (
        ("unknown user_id", "u.user_id IS NULL"),
        ("null occurred_at", "t.occurred_at IS NULL"),
        ("occurred_at in the future", "t.occurred_at > {cutoff}"),
        ("null event_name", "t.event_name IS NULL"),
        ("before signup_at", "t.occurred_at < u.signup_at"),
    ),
}


def flagged_sql(
    dialect: Dialect, table: str, columns: Mapping[str, str], *, relation: str, cutoff: datetime
) -> str:
    """A SELECT of ``relation``'s rows as the contract types them (the :data:`KEPT` columns) plus
    ``drop_reason`` (NULL for a kept row), joined to the canonical ``users``. Without a ``transaction_id`` column there is nothing to
    de-duplicate, and no window to pay for."""
    ts = typed_timestamps(dialect, table, columns)[0]
    if table == "transactions":
        tx_id = (
            f"CAST({dialect.quote('transaction_id')} AS STRING)"
            if "transaction_id" in columns
            else "CAST(NULL AS STRING)"
        )
        values = f"TRY_CAST(revenue AS DOUBLE) AS revenue, {tx_id} AS transaction_id"
        rules = ((DUPLICATE,) if "transaction_id" in columns else ()) + DROPS[table]
    else:
        values = "CAST(event_name AS STRING) AS event_name"
        rules = DROPS[table]
    literal = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S.%f}'"
    whens = " ".join(
        f"WHEN {predicate.format(cutoff=literal)} THEN '{reason}'" for reason, predicate in rules
    )
    return (
        f"SELECT t.*, CASE {whens} END AS drop_reason "
        f"FROM (SELECT CAST(user_id AS STRING) AS user_id, {ts}, {values} FROM {relation}) AS t "
        "LEFT JOIN users AS u ON u.user_id = t.user_id"
    )


def dropped_key(table: str, reason: str) -> str:
    """How :attr:`pltv.sources.QualityReport.dropped` names a count: a dropped event is only ignored."""
    return f"transactions: {reason}" if table == "transactions" else f"events: {reason} (ignored)"
