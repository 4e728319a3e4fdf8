"""Before the daily job sends anything: does the source look like the business, or like a broken export?

A daily job that trusts a broken source sends wrong values and exits 0: every transaction dropped as an
unknown user (an int ``user_id`` in one table, a string in the other) scores everyone as a non-payer; an
empty ``users`` table sends nothing and says "0 eligible"; an export that stopped days ago defers or
under-values everyone. :func:`source_doubts` names each such reason, with what to check; the daily job
refuses to start on any (exit 2) and nothing is sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pltv.sources import QualityReport

if TYPE_CHECKING:
    from pltv.spark import SparkCounts

#: the export's last row may lag the run date by this much (a nightly export landing after midnight)
MAX_EXPORT_LAG = timedelta(days=2)


def source_doubts(quality: QualityReport | SparkCounts, *, as_of: datetime) -> list[str]:
    """Reasons not to send from this source for a run whose data is complete before ``as_of`` (naive UTC).
    ``quality`` is the DuckDB source's report or the Spark engine's counts (the same fields).

    Empty when the source looks sound. Counts and dates only, never a value from the rows."""
    doubts = []
    if quality.users == 0:
        doubts.append("table 'users' has no rows: check the export (or the path in [source])")
    if quality.transactions_raw == 0:
        doubts.append("table 'transactions' has no rows: check the export (or the path in [source])")
    elif quality.transactions == 0:
        dropped = ", ".join(
            f"{reason.removeprefix('transactions: ')} {n:,}"
            for reason, n in quality.dropped.items()
            if reason.startswith("transactions: ")
        )
        hint = f" {quality.notes[0]}" if quality.notes else ""
        doubts.append(
            f"every one of the {quality.transactions_raw:,} transactions was dropped ({dropped}): the model "
            f"would score every user as a non-payer; run `pltv inspect` on the source.{hint}"
        )
    end = quality.data_end
    if end is not None:
        end = end.replace(tzinfo=None) if getattr(end, "tzinfo", None) else end
        if end < as_of - MAX_EXPORT_LAG:
            doubts.append(
                f"the source ends at {end:%Y-%m-%d %H:%M} UTC, {(as_of - end).days} day(s) before the run date "
                f"{as_of:%Y-%m-%d}: its users' windows are not in the data. Refresh the export, or run a date "
                f"the export covers (up to {(end + timedelta(days=1)):%Y-%m-%d}); to replay history against "
                "the sandbox, add --now with that date"
            )
    return doubts
