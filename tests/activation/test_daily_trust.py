"""The daily job distrusts what it should: a second run on the same ledger, a broken source, a run date Meta
would refuse, a new empty ledger while events are due; status reads the ledger while a run holds it (a real
sample, a real MLflow store, the real sandbox over a loopback socket)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from activation.daily_report import exit_code
from activation.errors import DailyRunError, LedgerError, RunInProgress, SourceDistrusted
from activation.runlock import run_lock
from activation.sandbox import Sandbox
from activation.status import render_status
from pltv.config import SourceConfig

TOKEN = "EAAB-daily-trust-token"
RUN_DATE = date(2026, 10, 31)
NOW = datetime(2026, 10, 31, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(daily_world):
    """The session's sample, send-day-1 model and custom_value spec, shared with test_daily (read only)."""
    return daily_world


def _options(world, tmp_path, url=None, **changes) -> DailyOptions:
    client = None if url is None else ClientConfig(pixel_id="123", access_token=TOKEN, graph_url=url)
    base = dict(
        run_date=RUN_DATE, spec_path=world["spec"], source=world["source"], tracking_uri=world["uri"],
        ledger_path=tmp_path / "ledger.duckdb", client=client, dry_run=url is None,
    )  # fmt: skip
    return DailyOptions(**(base | changes))


def test_a_second_concurrent_run_is_refused_at_once_before_loading_anything(world, tmp_path):
    """Another run holds the ledger: this one stops within a second (it took 6-17 s of loading before)."""
    with run_lock(tmp_path / "ledger.duckdb", run_date=RUN_DATE):
        started = time.monotonic()
        with pytest.raises(RunInProgress, match=r"another `pltv score-and-send` holds the ledger .*pid \d+"):
            run_daily(_options(world, tmp_path), now=NOW)
        assert time.monotonic() - started < 1.0
    run_daily(_options(world, tmp_path), now=NOW)  # released: the next run goes


_HOLD = """
import sys, time, duckdb
from activation.runlock import run_lock
with run_lock(sys.argv[1], run_date="2026-10-31"):
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
"""


def test_status_reads_the_ledger_while_a_run_holds_it(world, tmp_path):
    """A scheduler's health check beside the job: status shows the run's snapshot and says a run is writing."""
    with Sandbox(now=NOW) as sb:
        report = run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)
    assert report.sent > 0
    ledger = tmp_path / "ledger.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(ledger)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        text = render_status(ledger)
        assert "is writing the ledger" in text and f"{report.sent:>8,}" in text
        cli = subprocess.run([sys.executable, "-m", "pltv.cli", "status", "--ledger", str(ledger)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert cli.returncode == 0 and "is writing the ledger" in cli.stdout, cli.stderr
    finally:
        proc.kill()
        proc.wait()
    assert "is writing" not in render_status(ledger)


def test_a_damaged_ledger_file_is_named_as_damaged_not_as_locked(tmp_path):
    """Garbage (a checksum error) is 'not a DuckDB ledger file, or damaged', never 'is a run writing it?'."""
    path = tmp_path / "ledger.duckdb"
    path.write_bytes(os.urandom(4096) + b"block lock" * 100)
    with pytest.raises(LedgerError, match="not a DuckDB ledger file, or it is damaged") as err:
        render_status(path)
    assert "writing" not in str(err.value)


def test_a_new_empty_ledger_with_events_due_from_earlier_days_says_so_loudly(world, tmp_path, caplog):
    """A cron job started in another folder opens a new ledger: the report and a WARNING log say so."""
    caplog.set_level(logging.WARNING, logger="activation")
    with Sandbox(now=NOW) as sb:
        report = run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)
        again = run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)
    assert report.new_ledger and report.catch_up > 0
    assert "WARNING          new, empty ledger" in report.render() and "--ledger" in report.render()
    assert "activation.new_ledger_with_catch_up" in caplog.text
    assert not again.new_ledger


def _copy_source(world, tmp_path, users=None, transactions=None):
    src = world["root"] / "src"
    out = tmp_path / "src"
    out.mkdir()
    (out / "events").symlink_to(src / "events")
    (users if users is not None else pd.read_parquet(src / "users.parquet")).to_parquet(out / "users.parquet")
    if transactions is None:
        (out / "transactions").symlink_to(src / "transactions")
    else:
        transactions.to_parquet(out / "transactions.parquet")
    return SourceConfig(path=str(out))


def test_a_source_whose_transactions_are_all_dropped_is_refused(world, tmp_path):
    """Every transaction an unknown user (user ids exported differently): exit 2 with the reason, nothing sent
    (it sent 112 events with p90 9.77 instead of 217)."""
    tx = pd.read_parquet(world["root"] / "src" / "transactions")
    tx["user_id"] = "x" + tx["user_id"].astype(str)
    source = _copy_source(world, tmp_path, transactions=tx)
    with pytest.raises(
        SourceDistrusted, match=r"every one of the [\d,]+ transactions was dropped \(.*unknown user_id"
    ):
        run_daily(_options(world, tmp_path, source=source), now=NOW)
    assert not (tmp_path / "ledger.duckdb").exists()


def test_an_empty_users_table_is_refused(world, tmp_path):
    """'0 eligible', exit 0 was the answer; now: refused, naming the table."""
    users = pd.read_parquet(world["root"] / "src" / "users.parquet").iloc[:0]
    source = _copy_source(world, tmp_path, users=users)
    with pytest.raises(SourceDistrusted, match="table 'users' has no rows"):
        run_daily(_options(world, tmp_path, source=source), now=NOW)


def test_a_run_date_past_the_exports_end_names_the_end_and_the_replay_flag(world, tmp_path):
    """The README's `--date 2026-11-27` on the sample: refused with the export's end date and --now."""
    late = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    with pytest.raises(SourceDistrusted, match=r"source ends at 2026-10-31 .*up to 2026-11-01.*--now"):
        run_daily(_options(world, tmp_path, run_date=date(2026, 11, 27)), now=late)


@pytest.mark.parametrize("run_date", [date(1, 1, 1), date(2026, 10, 1), date(2026, 11, 5)])
def test_a_run_date_meta_would_refuse_is_a_one_line_error(world, tmp_path, run_date):
    """--date 0001-01-01 was an OverflowError traceback (exit 1): now a DailyRunError saying what to do."""
    with pytest.raises(DailyRunError, match="run date"):
        run_daily(_options(world, tmp_path, run_date=run_date), now=NOW)


def test_cli_run_date_in_year_one_exits_2_with_one_line(world, tmp_path):
    """`pltv score-and-send --date 0001-01-01` exits 2 with one line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "pltv.cli", "score-and-send", "--date", "0001-01-01", "--spec", str(world["spec"]),
         "--source", str(world["root"] / "src"), "--dry-run", "--ledger", str(tmp_path / "l.duckdb")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "MLFLOW_TRACKING_URI": world["uri"]},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "run date 0001-01-01" in proc.stderr


def test_a_dry_run_leaves_the_ledger_as_it_found_it(world, tmp_path):
    """A dry run reads the ledger (settling, superseding and expiring nothing) and changes no row."""
    import duckdb

    with Sandbox(now=NOW) as sb:
        run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)

    def rows():
        with duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True) as con:
            return con.execute("SELECT * FROM capi_events ORDER BY event_id").fetchall()

    before = rows()
    later = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # 50 h on: a live run would settle and expire
    run_daily(_options(world, tmp_path, run_date=date(2026, 11, 1)), now=later)
    assert rows() == before


_FULL_DISK = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
from activation.ledger import Ledger
original = Ledger.record_outcomes
def full_from_now_on(self, outcomes):
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
    return original(self, outcomes)
Ledger.record_outcomes = full_from_now_on
from pltv.cli import main
sys.argv = ["pltv", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_a_disk_filling_mid_delivery_is_exit_4_and_the_next_run_completes_it(world, tmp_path):
    """The batch reached Meta but its outcome cannot be written: one line, exit 4, the ledger consistent;
    the next run completes it and the sandbox counts every event once."""
    ledger = tmp_path / "ledger.duckdb"
    with Sandbox(now=NOW) as sb:
        args = ["score-and-send", "--date", str(RUN_DATE), "--source", str(world["root"] / "src"), "--spec",
                str(world["spec"]), "--pixel-id", "123", "--graph-url", sb.url, "--ledger", str(ledger),
                "--now", NOW.isoformat()]  # fmt: skip
        env = {**os.environ, "META_ACCESS_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": world["uri"]}
        proc = subprocess.run([sys.executable, "-c", _FULL_DISK, *args], capture_output=True, text=True,
                              env=env, timeout=180)  # fmt: skip
        assert proc.returncode == 4, proc.stderr
        assert "Traceback" not in proc.stderr and "the next run completes them" in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "the ledger could not be written" in errors[0]
        received = sum(sb.counted().values())
        assert received > 0  # the batch did reach the sandbox
        # the next run (in this process: the CLI's exit 4 path is what the first run covered)
        again = run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)
        assert exit_code(again) == 0 and again.sent > 0
        assert max(sb.counted().values()) == 1 and sum(sb.counted().values()) == received
    import duckdb

    with duckdb.connect(str(ledger), read_only=True) as con:
        states = dict(con.execute("SELECT state, count(*) FROM capi_events GROUP BY 1").fetchall())
    assert "pending" not in states and states["sent"] == received


def test_a_ledger_serves_one_pixel(world, tmp_path):
    """A live run for another pixel on the same ledger is refused: its users would be taken as already sent."""
    with Sandbox(now=NOW) as sb:
        first = run_daily(_options(world, tmp_path, sb.url, dry_run=False), now=NOW)
        other = ClientConfig(pixel_id="456", access_token=TOKEN, graph_url=sb.url)
        with pytest.raises(
            LedgerError, match="records deliveries to pixel 123, not 456: one ledger per pixel"
        ):
            run_daily(_options(world, tmp_path, sb.url, dry_run=False, client=other), now=NOW)
    assert first.sent > 0
