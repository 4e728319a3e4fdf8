"""``pltv status``: what the ledger says happened, per send date and per run, what is still owed, and the
run history's trend with its warnings (:mod:`activation.history`).

While a run holds the ledger (DuckDB lets no other process open it), status reads the snapshot that run
wrote at its start (``<ledger>.snapshot``) and says so: a scheduler's health check works beside the job.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from activation.errors import LedgerError
from activation.history import read_runs, render_history
from activation.ledger import TABLE, Ledger
from activation.runlock import holder, is_locked, snapshot_path


def open_for_reading(path: Path) -> tuple[duckdb.DuckDBPyConnection, str]:
    """A read-only connection to the ledger, or to the running job's snapshot; and a header line (what the
    snapshot is, or empty). Also what `pltv report` reads through."""
    try:
        return duckdb.connect(str(path), read_only=True), ""
    except duckdb.Error as exc:
        held = is_locked(path) or "conflicting lock" in str(exc).lower()
        if not held:
            raise LedgerError(
                f"cannot open the ledger {path} ({type(exc).__name__}): it is not a DuckDB ledger file, or it "
                "is damaged; point --ledger (or [capi] ledger) at the ledger"
            ) from None
    run = holder(path)
    what = f"a run (pid {run.get('pid', '?')}, run date {run.get('run_date', '?')}, started {run.get('started', '?')})"
    snap = snapshot_path(path)
    try:
        con = duckdb.connect(str(snap), read_only=True)
    except duckdb.Error:
        raise LedgerError(
            f"{what} is writing the ledger {path} and left no snapshot to read yet; try again in a minute"
        ) from None
    return (
        con,
        f"{what} is writing the ledger: this is the ledger as that run found it, before it sent anything",
    )


def render_status(path: str | Path, *, days: int = 7) -> str:
    """Text report of the ``days`` most recent send dates of the ledger at ``path`` (opened read-only)."""
    con, header = open_for_reading(Path(path))
    try:
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name = ?", [TABLE]
        ).fetchall()
        if not tables:  # a ledger file no run has written to yet
            return "\n".join(filter(None, [header, "(the ledger is empty)"]))
        ledger = Ledger(con)
        rows = ledger.runs(days=days)
        pending, retryable, expired, unconfirmed = ledger.backlog()
        lines = [header] if header else []
        lines.append(
            f"{'send date':<11} {'run':<22} {'spec':<22} {'sent':>8} {'skipped':>8} {'failed':>7} "
            f"{'expired':>8} {'pending':>8}" + (f" {'unconfirmed':>11}" if unconfirmed else "")
        )
        for r in rows:
            lines.append(
                f"{r.send_date!s:<11} {r.run_id:<22} {r.spec_id:<22} {r.sent:>8,} {r.skipped:>8,} {r.failed:>7,} "
                f"{r.expired:>8,} {r.pending:>8,}" + (f" {r.unconfirmed:>11,}" if unconfirmed else "")
            )
        if not rows:
            lines.append("(the ledger is empty)")
        total = ledger.summary()
        if total.skip_reasons:
            lines.append(
                "skipped by reason: " + ", ".join(f"{r}={n:,}" for r, n in total.skip_reasons.items())
            )
        for e in total.last_errors:
            lines.append(
                f"last error: code {e['error_code']}/{e['error_subcode']} on {e['events']:,} event(s), "
                f"fbtrace_id {e['fbtrace_id']}: {e['error_message']}"
            )
        lines.append(
            f"catch-up backlog: {pending:,} pending (an interrupted run; the next run re-sends them), "
            f"{retryable:,} failed after retries (retried by the next run)"
            + (f"; {expired:,} expired (too old for Meta before a run could send them)" if expired else "")
        )
        if unconfirmed:
            lines.append(
                f"unconfirmed: {unconfirmed:,} event(s) may have reached Meta without an answer, and Meta's 48 h "
                "dedup window has closed: never re-sent (a second copy would count their value twice)"
            )
        lines.append("")
        lines.append(render_history(read_runs(con), days=days))
        return "\n".join(lines)
    finally:
        con.close()
