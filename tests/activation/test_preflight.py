"""The daily job distrusts a broken source: empty tables, every transaction dropped, an export days behind."""

from __future__ import annotations

from datetime import datetime

from activation.preflight import source_doubts
from pltv.sources import QualityReport

AS_OF = datetime(2026, 11, 1)


def _quality(**changes) -> QualityReport:
    base = dict(
        users=1000, transactions_raw=500, transactions=480, events=0, signup_min=datetime(2025, 1, 1),
        signup_max=datetime(2026, 10, 31), data_end=datetime(2026, 10, 31, 23, 0), payer_share=0.2,
        refund_rows=3, refund_share=0.01, net_revenue=1e4, currency="USD",
        dropped={"transactions: unknown user_id": 20},
    )  # fmt: skip
    return QualityReport(**(base | changes))


def test_a_sound_source_has_no_doubts():
    """A source ending just before the run date, with most transactions kept, is trusted."""
    assert source_doubts(_quality(), as_of=AS_OF) == []


def test_every_transaction_dropped_is_a_doubt_naming_the_reason_and_the_hint():
    """All transactions unknown users (int vs string user_id): refused with the drop reason and the type hint."""
    q = _quality(
        transactions=0, dropped={"transactions: unknown user_id": 500},
        notes=("every transaction was dropped as 'unknown user_id', and column user_id is BIGINT ...",),
    )  # fmt: skip
    (doubt,) = source_doubts(q, as_of=AS_OF)
    assert "every one of the 500 transactions was dropped (unknown user_id 500)" in doubt
    assert "BIGINT" in doubt and "pltv inspect" in doubt


def test_empty_tables_are_doubts():
    """No users, or no transactions at all: refused."""
    doubts = source_doubts(_quality(users=0, transactions_raw=0, transactions=0), as_of=AS_OF)
    assert any("'users' has no rows" in d for d in doubts) and any(
        "'transactions' has no rows" in d for d in doubts
    )


def test_an_export_days_behind_the_run_date_names_its_end_and_the_replay_flag():
    """Run date 2026-11-27 on an export that ends 2026-10-31: the end date and --now are named."""
    (doubt,) = source_doubts(_quality(), as_of=datetime(2026, 11, 27))
    assert "ends at 2026-10-31 23:00 UTC, 26 day(s) before the run date 2026-11-27" in doubt
    assert "up to 2026-11-01" in doubt and "--now" in doubt
    assert source_doubts(_quality(), as_of=datetime(2026, 11, 2)) == []  # a day's lag is normal
