"""The ledger's table: its DDL, the migrations of older ledger files, and the check that a file's table is ours.

One row per event id; no identifier (raw or hashed) and no ``user_id``. ``maybe_delivered_at`` (added after
the first release) is when the event first may have reached Meta; older files gain it on their first write.
"""

from __future__ import annotations

import duckdb

from activation.errors import LedgerError

TABLE = "capi_events"
INFO = "capi_ledger_info"  # key/value facts about the ledger itself: the pixel it delivers to
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id        VARCHAR PRIMARY KEY,
    run_id          VARCHAR NOT NULL,
    spec_id         VARCHAR NOT NULL,
    model_version   VARCHAR,
    send_date       DATE NOT NULL,
    event_name      VARCHAR NOT NULL,
    event_time      BIGINT NOT NULL,
    value           DOUBLE,
    state           VARCHAR NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    reason          VARCHAR,
    attempts        INTEGER NOT NULL DEFAULT 0,
    events_received INTEGER,
    error_code      INTEGER,
    error_subcode   INTEGER,
    error_message   VARCHAR,
    fbtrace_id      VARCHAR,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    maybe_delivered_at TIMESTAMP
)
"""
#: column -> the DDL that adds it to a ledger written before it existed
MIGRATIONS = {
    "maybe_delivered_at": f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS maybe_delivered_at TIMESTAMP"
}
REQUIRED = ("event_id", "run_id", "spec_id", "send_date", "event_name", "event_time", "value", "state", "reason",
            "attempts", "error_code", "error_subcode", "error_message", "fbtrace_id", "created_at", "updated_at")  # fmt: skip


def prepare_table(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the table in an empty file, refuse a ``capi_events`` table that is not ours (naming what it
    lacks), migrate an older one when writable. Returns whether the connection may write."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()",
        [TABLE],
    ).fetchall()[0][0]
    writable = con.execute("SELECT current_setting('access_mode')").fetchall()[0][0] != "read_only"
    if not exists:  # a read-only connection (``pltv status``) works on an existing ledger
        con.execute(SCHEMA)
    columns = {
        name
        for (name,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND database_name = current_database()",
            [TABLE],
        ).fetchall()
    }
    missing = sorted(set(REQUIRED) - columns)
    if missing:
        raise LedgerError(
            f"table {TABLE} in this file is not a pltv delivery ledger (missing columns {missing}); "
            "point --ledger (or [capi] ledger) at the ledger file, or at a new path"
        )
    for column, ddl in MIGRATIONS.items():
        if column not in columns and writable:
            con.execute(ddl)
    if writable:
        con.execute(f"CREATE TABLE IF NOT EXISTS {INFO} (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
    return writable


def bind_pixel(con: duckdb.DuckDBPyConnection, pixel_id: str, path: object) -> None:
    """A ledger serves one pixel (Meta deduplicates per pixel; an event sent to one is not sent to
    another): the first live run records its pixel, a run for another pixel is refused."""
    con.execute(f"INSERT INTO {INFO} VALUES ('pixel_id', ?) ON CONFLICT (key) DO NOTHING", [pixel_id])
    bound = con.execute(f"SELECT value FROM {INFO} WHERE key = 'pixel_id'").fetchall()[0][0]
    if bound != pixel_id:
        raise LedgerError(
            f"the ledger {path} records deliveries to pixel {bound}, not {pixel_id}: one ledger per pixel "
            "(an event sent to one pixel is not sent to another). Pass --ledger with this pixel's ledger"
        )
