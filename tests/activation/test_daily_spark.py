"""The daily job with ``--engine spark`` against ``--engine duckdb``: the same export, the same run dates, the
same events in the real sandbox over a loopback socket (event ids, values to 1e-9, skips and counts).

One local Spark session for the module (local[2]); the session's send-day-1 world (``daily_world``: an
18k-user Parquet export, a real MLflow store, a custom_value spec) is read only.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import pytest

from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from activation.errors import SourceDistrusted
from activation.sandbox import Sandbox
from pltv.sources import open_source

TOKEN = "EAAB-test-token-should-never-leak"
DAY_BEFORE, RUN_DATE = date(2026, 10, 30), date(2026, 10, 31)
NOW_BEFORE = datetime(2026, 10, 30, 1, 0, tzinfo=UTC)
NOW = datetime(2026, 10, 31, 1, 0, tzinfo=UTC)


def _options(world, ledger, *, engine="duckdb", sandbox=None, **changes) -> DailyOptions:
    client = None
    if sandbox is not None:
        client = ClientConfig(pixel_id="1234567890", access_token=TOKEN, graph_url=sandbox.url,
                              backoff_base_s=0.01, backoff_cap_s=0.05)  # fmt: skip
    return DailyOptions(
        run_date=changes.pop("run_date", RUN_DATE), spec_path=world["spec"],
        source=changes.pop("source", world["source"]), tracking_uri=world["uri"], ledger_path=ledger,
        client=client, engine=engine, **changes,
    )  # fmt: skip


def _ledger_states(path) -> dict[str, str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(con.execute("SELECT event_id, state FROM capi_events").fetchall())


def _same_events(duck: dict[str, dict], sparky: dict[str, dict]) -> None:
    assert set(duck) == set(sparky)
    for event_id, event in duck.items():
        other = sparky[event_id]
        assert abs(event["custom_data"]["value"] - other["custom_data"]["value"]) <= 1e-9, event_id
        strip = lambda e: {**e, "custom_data": {k: v for k, v in e["custom_data"].items() if k != "value"}}  # noqa: E731
        assert strip(event) == strip(other), event_id  # event time, user_data hashes, action source ...


def test_spark_engine_sends_the_events_duckdb_sends_and_keeps_the_ledger_rules(daily_world, spark, tmp_path):
    """Day D-1 sent by DuckDB; day D (its users plus the catch-up the ledger still owes) by each engine
    from a copy of that ledger: the same events arrive, with the same skips and counts, and the ledgers
    end equal."""
    before = tmp_path / "before.duckdb"
    with Sandbox(now=NOW_BEFORE) as sb:
        first = run_daily(_options(daily_world, before, sandbox=sb, run_date=DAY_BEFORE), now=NOW_BEFORE)
    assert first.sent > 20
    received, reports = {}, {}
    for engine in ("duckdb", "spark"):
        ledger = tmp_path / f"{engine}.duckdb"
        shutil.copy(before, ledger)
        with Sandbox(now=NOW) as sb:
            reports[engine] = run_daily(_options(daily_world, ledger, engine=engine, sandbox=sb), now=NOW)
            received[engine] = {e["event_id"]: e for e in sb.events()}
    duck, sparky = reports["duckdb"], reports["spark"]
    assert duck.sent > 5 and duck.failed == 0
    for field in ("eligible", "catch_up", "deferred", "planned", "sent", "already_done", "served_before",
                  "skipped", "identity_dropped", "data_end"):  # fmt: skip
        assert getattr(sparky, field) == getattr(duck, field), field
    assert duck.value_quantiles == pytest.approx(sparky.value_quantiles, abs=1e-9)
    assert duck.psi == pytest.approx(sparky.psi, abs=1e-9)
    _same_events(received["duckdb"], received["spark"])
    duck_states, spark_states = (_ledger_states(tmp_path / f"{e}.duckdb") for e in ("duckdb", "spark"))
    assert duck_states == spark_states
    assert "features+score" in sparky.stage_seconds and "features" not in sparky.stage_seconds


def test_spark_reads_the_counts_the_distrust_checks_need(daily_world, spark, tmp_path):
    """The Spark engine's counts and last timestamp equal the DuckDB source's; a run date the export
    does not cover is refused as with DuckDB, before any ledger exists; an export whose every transaction
    is dropped (user_id float in one table, integer in the other) is distrusted, with the cause."""
    from activation.due import SparkDue
    from activation.preflight import source_doubts

    with open_source(daily_world["source"]) as src:
        quality = src.quality
    with SparkDue(daily_world["source"], spark=spark) as due:
        counts = due.quality
    for field in ("users", "transactions_raw", "transactions", "events"):
        assert getattr(counts, field) == getattr(quality, field), field
    assert counts.data_end == quality.data_end.replace(tzinfo=None)
    late = date(2026, 11, 20)  # the export ends on 2026-10-31
    ledger = tmp_path / "ledger.duckdb"
    with pytest.raises(SourceDistrusted, match="day\\(s\\) before the run date 2026-11-20"):
        run_daily(_options(daily_world, ledger, engine="spark", dry_run=True, run_date=late),
                  now=datetime(2026, 11, 20, 1, tzinfo=UTC))  # fmt: skip
    assert not ledger.exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    signup = datetime(2026, 10, 1)
    pd.DataFrame({"user_id": [1, 2, 3], "signup_at": [signup] * 3}).to_parquet(broken / "users.parquet")
    pd.DataFrame(
        {"user_id": [1.0, 2.0], "occurred_at": [signup, signup], "revenue": [9.99, 4.99]}
    ).to_parquet(broken / "transactions.parquet")
    with SparkDue(str(broken), spark=spark) as due:
        doubts = source_doubts(due.quality, as_of=datetime(2026, 10, 2))
    assert len(doubts) == 1
    assert "every one of the 2 transactions was dropped (unknown user_id 2)" in doubts[0]
    assert "double in table 'transactions' but bigint in table 'users'" in doubts[0]


def test_engine_spark_on_a_duckdb_file_is_a_clear_error_and_leaves_the_ledger_untouched(
    daily_world, tmp_path, monkeypatch
):
    """Spark reads Parquet exports and catalog tables: a DuckDB file is exit 2 with what to use instead,
    before the ledger is opened; --spark-master without --engine spark is refused as well."""
    from typer.testing import CliRunner

    from pltv.cli import app

    src = daily_world["root"] / "src"
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE users AS SELECT * FROM '{src / 'users.parquet'}'")
        con.execute(f"CREATE TABLE transactions AS SELECT * FROM '{src / 'transactions'}/*.parquet'")
    ledger = tmp_path / "ledger.duckdb"
    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", daily_world["uri"])
    base = ["score-and-send", "--date", f"{RUN_DATE}", "--spec", str(daily_world["spec"]), "--pixel-id", "1",
            "--ledger", str(ledger), "--now", NOW.strftime("%Y-%m-%dT%H:%M:%S"), "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(app, [*base, "--source", str(db), "--engine", "spark"])
    assert result.exit_code == 2, result.output
    assert "Parquet export folder" in result.stderr and "--engine duckdb" in result.stderr
    assert "Traceback" not in result.output
    assert not ledger.exists()
    result = CliRunner().invoke(app, [*base, "--source", str(src), "--spark-master", "local[1]"])
    assert result.exit_code == 2 and "--spark-master needs --engine spark" in result.stderr
    result = CliRunner().invoke(app, [*base, "--source", str(src), "--engine", "polars"])
    assert result.exit_code == 2 and "--engine must be duckdb or spark" in result.stderr
    assert not ledger.exists()
