"""Open a source, enforce the data contract, expose canonical DuckDB tables.

A source is a DuckDB database file holding ``users``, ``transactions`` and optional ``events`` tables, or a
folder (a warehouse export) holding, per table, one file (``users.parquet``, ``users.csv``) or one folder of
part files (``transactions/part-0001.parquet``...). :func:`open_source` returns a :class:`Source` whose
DuckDB connection has (``users`` a table; ``transactions`` and ``events`` views of the kept rows of
one flagged pass each, ``tx_flagged`` / ``events_flagged``):

- ``users``: ``user_id`` VARCHAR (unique), ``signup_at`` TIMESTAMP (UTC), then every other source column
  (attributes, identifiers, delivery columns) as found, ``consent``/``ldu`` as BOOLEAN when present;
- ``transactions``: ``user_id``, ``occurred_at`` TIMESTAMP, ``revenue`` DOUBLE, ``transaction_id`` —
  cleaned: duplicate transaction ids, rows for unknown users, rows before signup and null revenue are
  dropped and counted in :attr:`Source.quality`;
- ``events``: ``user_id``, ``occurred_at``, ``event_name`` — cleaned like transactions (rows for unknown
  users, before signup or without a name are dropped and counted); empty when the source has no events.

No row can be later than the moment the source is opened (UTC now, plus :data:`CLOCK_SKEW`): a transaction
or event dated in the future is dropped and counted, and a user whose ``signup_at`` is in the future is an
error (like every other bad user row), so one stray row cannot move ``data_end`` and the default ``as_of``.

Errors name the table, column and an example row key, never a value that may be personal data.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pltv.config import SourceConfig
from pltv.contract import ATTRIBUTES, DELIVERY, IDENTIFIERS  # noqa: F401 (re-exported: the contract's groups)
from pltv.errors import SourceError
from pltv.source_checks import (
    BOOLEANS,
    CLOCK_SKEW,
    DUCKDB,
    KEPT,
    MAX_REVENUE,  # noqa: F401 (re-exported: the contract's limit)
    REQUIRED,  # noqa: F401 (re-exported)
    TIMESTAMPS,
    check_mapping,
    check_required,
    dropped_key,
    flagged_sql,
    run_checks,
    typed_timestamps,
)
from pltv.source_files import attach_raw, csv_error, describe_columns, quote_ident, working_connection


@dataclass(frozen=True)
class QualityReport:
    """What the source holds and what was dropped on the way in (counts only, no values)."""

    users: int
    transactions_raw: int
    transactions: int
    events: int
    signup_min: object
    signup_max: object
    data_end: object  # latest timestamp seen in any table (rows dated in the future are not counted)
    payer_share: float
    refund_rows: int
    refund_share: float
    net_revenue: float
    currency: str
    dropped: Mapping[str, int] = field(default_factory=dict)
    identifier_coverage: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # likely causes of what was dropped (column names and types, no values)

    def render(self) -> str:
        lines = [
            f"users                {self.users:>12,}",
            f"transactions         {self.transactions:>12,}  (raw rows {self.transactions_raw:,})",
            f"events               {self.events:>12,}",
            f"signups              {self.signup_min} .. {self.signup_max}",
            f"data ends            {self.data_end}",
            f"payer share          {self.payer_share:>12.1%}",
            f"refund rows          {self.refund_rows:>12,}  ({self.refund_share:.1%} of transactions)",
            f"net revenue          {self.net_revenue:>12,.2f} {self.currency}",
            "rows dropped:",
        ]
        lines += [f"  {reason:<44} {count:>8,}" for reason, count in self.dropped.items()] or ["  none"]
        if self.identifier_coverage:
            lines.append("identifier coverage (share of users with a value):")
            lines += [f"  {key:<20} {share:>7.1%}" for key, share in self.identifier_coverage.items()]
        if self.notes:
            lines.append("notes:")
            lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class Source:
    """An opened, validated source; use as a context manager or call :meth:`close`."""

    con: duckdb.DuckDBPyConnection
    path: Path
    currency: str
    quality: QualityReport
    has_events: bool
    user_columns: tuple[str, ...]
    _owns_connection: bool = True
    _spill: Path | None = None  # the owned connection's temp folder, removed on close

    def close(self) -> None:
        if self._owns_connection:
            self.con.close()
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mapped_view(con: duckdb.DuckDBPyConnection, table: str, mapping: Mapping[str, str]) -> dict[str, str]:
    """``mapped_<table>``: the raw view with source column names mapped to canonical ones."""
    check_mapping(table, describe_columns(con, f"raw_{table}"), mapping)
    renames = [
        f"{quote_ident(src_name)} AS {quote_ident(canonical)}" for src_name, canonical in mapping.items()
    ]
    rename = f" RENAME ({', '.join(renames)})" if renames else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW mapped_{table} AS SELECT *{rename} FROM raw_{table}")
    columns = describe_columns(con, f"mapped_{table}")
    check_required(table, columns)
    return columns


def _check(con, table: str, columns: dict[str, str], cutoff: datetime, currency: str = "USD") -> None:
    """Run ``table``'s contract checks (:mod:`pltv.source_checks`, one aggregate pass)."""
    run_checks(DUCKDB, lambda sql: con.execute(sql).fetchall(), table, f"mapped_{table}", columns,
               cutoff=cutoff, currency=currency)  # fmt: skip


def _build_users(con, columns: dict[str, str], cutoff: datetime) -> None:
    _check(con, "users", columns, cutoff)
    typed = ["user_id::VARCHAR AS user_id", *typed_timestamps(DUCKDB, "users", columns)]
    typed += [f"TRY_CAST({column} AS BOOLEAN) AS {column}" for column in BOOLEANS if column in columns]
    replaced = [c for c in ("user_id", *TIMESTAMPS["users"], *BOOLEANS) if c in columns]
    exclude = ", ".join(quote_ident(c) for c in replaced)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE users AS SELECT {', '.join(typed)}, * EXCLUDE ({exclude}) "
        "FROM mapped_users"
    )


def _build_transactions(con, columns: dict[str, str], currency: str, cutoff: datetime) -> dict[str, int]:
    _check(con, "transactions", columns, cutoff, currency)
    return _build_flagged(con, "transactions", columns, cutoff)


def _build_flagged(con, table: str, columns: dict[str, str], cutoff: datetime) -> dict[str, int]:
    """``<table>_flagged`` (one materialized pass: typed, each row's drop reason) and ``<table>``, a view of
    its kept rows; the drop counts. At 93M transactions a typed copy, a flagged copy and a sorted kept copy
    cost 98 s of a 157 s source opening; this pass 30 s."""
    flagged = "tx_flagged" if table == "transactions" else f"{table}_flagged"
    select = flagged_sql(DUCKDB, table, columns, relation=f"mapped_{table}", cutoff=cutoff)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {flagged} AS {select}")
    dropped = con.execute(
        f"SELECT drop_reason, count(*) FROM {flagged} WHERE drop_reason IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    kept = ", ".join(KEPT[table])
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {kept} FROM {flagged} WHERE drop_reason IS NULL"
    )
    return {dropped_key(table, reason): int(n) for reason, n in dropped}


def _build_events(con, columns: dict[str, str] | None, cutoff: datetime) -> dict[str, int]:
    if columns is None:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW events AS SELECT NULL::VARCHAR AS user_id, "
            "NULL::TIMESTAMP AS occurred_at, NULL::VARCHAR AS event_name WHERE false"
        )
        return {}
    _check(con, "events", columns, cutoff)
    return _build_flagged(con, "events", columns, cutoff)


def key_type_notes(
    mapped: Mapping[str, dict[str, str]], dropped: Mapping[str, int], kept: int
) -> tuple[str, ...]:
    """Why every transaction can be an unknown user: user_id columns of different types (compared as text)."""
    user_type, tx_type = mapped["users"]["user_id"], mapped["transactions"]["user_id"]
    if kept or not dropped.get("transactions: unknown user_id") or user_type == tx_type:
        return ()
    return (
        f"every transaction was dropped as 'unknown user_id', and column user_id is {tx_type} in table "
        f"'transactions' but {user_type} in table 'users': both are compared as text, where e.g. a "
        "DOUBLE key reads with a decimal part; export user_id with one type (VARCHAR) in both tables",
    )


def _quality(
    con, currency: str, dropped: dict[str, int], user_columns: dict[str, str], notes: tuple[str, ...] = ()
) -> QualityReport:
    users, smin, smax = con.execute("SELECT count(*), min(signup_at), max(signup_at) FROM users").fetchall()[
        0
    ]
    raw_tx = con.execute("SELECT count(*) FROM mapped_transactions").fetchall()[0][0]
    tx, refunds, net, tmax, payers = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE revenue < 0), coalesce(sum(revenue), 0), max(occurred_at),
               (SELECT count(*) FROM (SELECT user_id FROM transactions GROUP BY 1 HAVING sum(revenue) > 0))
        FROM transactions
        """
    ).fetchall()[0]
    n_events, emax = con.execute("SELECT count(*), max(occurred_at) FROM events").fetchall()[0]
    ids = [c for c in IDENTIFIERS if c in user_columns]
    coverage: dict[str, float] = {}
    if ids and users:
        row = con.execute(
            "SELECT " + ", ".join(f"avg(({quote_ident(c)} IS NOT NULL)::INT)" for c in ids) + " FROM users"
        ).fetchall()[0]
        coverage = dict(zip(ids, (float(v) for v in row), strict=True))
    ends = [t for t in (smax, tmax, emax) if t is not None]
    return QualityReport(
        users=int(users),
        transactions_raw=int(raw_tx),
        transactions=int(tx),
        events=int(n_events),
        signup_min=smin,
        signup_max=smax,
        data_end=max(ends) if ends else None,
        payer_share=(payers / users) if users else 0.0,
        refund_rows=int(refunds),
        refund_share=(refunds / tx) if tx else 0.0,
        net_revenue=float(net),
        currency=currency.upper(),
        dropped=dropped,
        identifier_coverage=coverage,
        notes=notes,
    )


def open_source(config: SourceConfig | str | Path, *, con: duckdb.DuckDBPyConnection | None = None) -> Source:
    """Open and validate a source; raise :class:`SourceError`/:class:`SchemaError`/:class:`DataQualityError`.

    ``config`` is a :class:`SourceConfig` or just a path (defaults for the rest). When ``con`` is given the
    tables are created in it (as TEMP objects) and it is left open on :meth:`Source.close`; otherwise the
    source's own connection holds at most a third of memory and spills the rest to a temp folder
    (:func:`pltv.source_files.working_connection`).
    """
    if not isinstance(config, SourceConfig):
        config = SourceConfig(path=str(config))
    path = Path(config.path).expanduser()
    owns, spill = con is None, None
    if con is None:
        con, spill = working_connection()
    cutoff = datetime.now(UTC).replace(tzinfo=None) + CLOCK_SKEW  # later rows cannot be real yet
    csv_files: dict[str, list[Path]] = {}
    try:
        con.execute("SET TimeZone = 'UTC'")
        found = attach_raw(con, path, csv_files)
        missing = [t for t in ("users", "transactions") if t not in found]
        if missing:
            raise SourceError(
                f"source {path} has no table(s) {missing}; expected users, transactions and optionally "
                "events (a DuckDB file with those tables, or a folder with users.parquet / transactions/ ...)"
            )
        mapped = {t: _mapped_view(con, t, config.columns.get(t, {})) for t in found}
        _build_users(con, mapped["users"], cutoff)
        dropped = _build_transactions(con, mapped["transactions"], config.currency, cutoff)
        dropped |= _build_events(con, mapped.get("events"), cutoff)
        kept = con.execute("SELECT count(*) FROM transactions").fetchall()[0][0]
        notes = key_type_notes(mapped, dropped, kept)
        quality = _quality(con, config.currency, dropped, mapped["users"], notes)
        user_columns = tuple(describe_columns(con, "users"))
    except duckdb.Error as exc:
        failure = csv_error(con, csv_files, exc)
        if owns:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        if failure is not None:
            raise failure from None
        # DuckDB's parse errors can quote row contents (personal data): only I/O errors keep their text
        detail = (
            str(exc).splitlines()[0] if isinstance(exc, duckdb.IOException) else "check the files' format"
        )
        raise SourceError(f"cannot read source {path}: {type(exc).__name__} ({detail})") from None
    except Exception:
        if owns:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        raise
    return Source(
        con=con,
        path=path,
        currency=config.currency.upper(),
        quality=quality,
        has_events="events" in found,
        user_columns=user_columns,
        _owns_connection=owns,
        _spill=spill,
    )
