"""``pltv status``: what the ledger says happened, per send date and per run, and what is still owed."""

from __future__ import annotations

from pathlib import Path

import duckdb

from activation.errors import LedgerError
from activation.ledger import TABLE, Ledger


def render_status(path: str | Path, *, days: int = 7) -> str:
    """Text report of the ``days`` most recent send dates of the ledger at ``path`` (opened read-only)."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        why = "is a run writing it?" if "lock" in str(exc).lower() else "it is not a DuckDB ledger file"
        raise LedgerError(f"cannot open the ledger {path} ({type(exc).__name__}); {why}") from exc
    try:
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name = ?", [TABLE]
        ).fetchall()
        if not tables:  # a ledger file no run has written to yet
            return "(the ledger is empty)"
        ledger = Ledger(con)
        rows = ledger.runs(days=days)
        backlog = ledger.backlog()
        lines = [
            f"{'send date':<11} {'run':<22} {'spec':<22} {'sent':>8} {'skipped':>8} {'failed':>7} "
            f"{'expired':>8} {'pending':>8}"
        ]
        for r in rows:
            lines.append(
                f"{r.send_date!s:<11} {r.run_id:<22} {r.spec_id:<22} {r.sent:>8,} {r.skipped:>8,} {r.failed:>7,} "
                f"{r.expired:>8,} {r.pending:>8,}"
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
            f"catch-up backlog: {backlog[0]:,} pending (an interrupted run; the next run re-sends them), "
            f"{backlog[1]:,} failed after retries (retried by the next run)"
            + (
                f"; {backlog[2]:,} expired (too old for Meta before a run could send them)"
                if backlog[2]
                else ""
            )
        )
        return "\n".join(lines)
    finally:
        con.close()
