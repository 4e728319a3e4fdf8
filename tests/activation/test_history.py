"""Run history in the ledger file and the warnings `pltv status` gives from it, each triggered here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from activation.history import read_runs, record_run, render_history, run_warnings

COVERAGE = {"em": 0.9, "ph": 0.6, "external_id": 0.97}


def _record(day: int, **changes) -> dict:
    base = {
        "run_id": f"run-{day:02d}", "run_date": date(2026, 10, 1) + timedelta(days=day), "dry_run": False,
        "spec_id": "spec-1", "model_version": "3", "eligible": 40, "planned": 38, "sent": 38, "skipped": 2,
        "skipped_by_reason": {"no_consent": 2}, "value_p10": 2.0, "value_p50": 8.0, "value_p90": 60.0,
        "value_max": 300.0, "psi": 0.05, "coverage": COVERAGE, "emq_estimate": 6.1,
        "invalid_identifiers": {"ph": 1}, "expected_weekly": 260.0,
    }  # fmt: skip
    return {**base, **changes}


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "ledger.duckdb")) as c:
        yield c


def _fill(con, last: dict | None = None, days: int = 8) -> None:
    for d in range(days - 1):
        record_run(con, _record(d))
    record_run(con, _record(days - 1, **(last or {})))


def test_a_healthy_week_gives_no_warning_and_round_trips(con):
    """Eight healthy runs: the 7-day volume sums the live runs; nothing to warn about."""
    _fill(con)
    runs = read_runs(con)
    assert len(runs) == 8 and runs["volume_7d"].iloc[-1] == 7 * 38
    assert runs["coverage"].iloc[0] == COVERAGE and runs["skipped_by_reason"].iloc[0] == {"no_consent": 2}
    assert run_warnings(runs) == []
    assert "WARNING" not in render_history(runs)


def test_weekly_volume_under_metas_thresholds_warns_with_the_number(con):
    """Under 100 a week for the dataset, and under 50 per ad set, each warn with the count."""
    for d in range(7):
        record_run(con, _record(d, sent=10))
    warnings = run_warnings(read_runs(con), ad_sets=2)
    assert any(
        "70 events sent in the 7 days" in w and "100/week" in w and "expected 260" in w for w in warnings
    )
    assert any("35 events per ad set" in w for w in warnings)


def test_psi_above_0_2_warns(con):
    """The latest run's PSI above 0.2 is a drift warning with its value."""
    _fill(con, {"psi": 0.31})
    assert any("PSI 0.310" in w for w in run_warnings(read_runs(con)))


def test_a_key_coverage_drop_of_more_than_10_points_warns(con):
    """A key 15 points under its trailing mean warns; a 5-point dip does not."""
    _fill(con, {"coverage": {**COVERAGE, "em": 0.75, "ph": 0.55}})
    warnings = run_warnings(read_runs(con))
    assert any(w.startswith("coverage: em on 75% of 38 events") and "15% under" in w for w in warnings)
    assert not any("coverage: ph" in w for w in warnings)


def test_a_coverage_dip_on_a_handful_of_events_is_not_a_warning(con):
    """15 points under the mean on 5 events is within chance (2 standard errors are ~27 points)."""
    _fill(con, {"planned": 5, "sent": 5, "coverage": {**COVERAGE, "em": 0.75}})
    assert not any(w.startswith("coverage") for w in run_warnings(read_runs(con)))


def test_failures_unconfirmed_and_expired_events_warn(con):
    """Any failed, unconfirmed or expired event in the latest run is named with its count."""
    _fill(con, {"failed": 3, "unconfirmed": 2, "expired": 1})
    warnings = run_warnings(read_runs(con))
    for text in ("3 event(s) failed", "2 event(s) unconfirmed", "1 event(s) expired"):
        assert any(text in w for w in warnings)


def test_dry_runs_are_recorded_marked_and_left_out_of_volume_and_warnings(con):
    """A dry run's row is kept and marked, adds nothing to the 7-day volume and triggers nothing."""
    _fill(con)
    record_run(con, _record(8, run_id="run-dry", dry_run=True, sent=0, failed=5, psi=0.9))
    runs = read_runs(con)
    assert bool(runs["dry_run"].iloc[-1]) and run_warnings(runs) == []
    assert "(dry run)" in render_history(runs)


def test_a_daily_report_becomes_a_history_row(con):
    """The daily job's report maps onto the row: counts, skip reasons, quantiles, coverage, EMQ estimate."""
    from collections import Counter

    from activation.daily_report import DailyReport
    from activation.events import estimate_match_quality
    from activation.history import record_from_report

    report = DailyReport(run_id="run-x", run_date=date(2026, 10, 31), spec_id="spec-1", model="pltv_d1/4",
                         eligible=10, planned=8, sent=8, skipped=Counter(no_consent=2), psi=0.1,
                         value_quantiles={"p10": 1.0, "p50": 5.0, "p90": 30.0, "max": 90.0},
                         match_quality=estimate_match_quality([{"em": "h", "ph": "h"}, {"em": "h"}]))  # fmt: skip
    row = record_run(con, record_from_report(report, expected_weekly=70.0))
    assert row["model_version"] == "4" and row["skipped"] == 2 and row["volume_7d"] == 8
    back = read_runs(con).iloc[0]
    assert back["coverage"]["em"] == 1.0 and back["coverage"]["ph"] == 0.5 and back["value_p50"] == 5.0
    assert back["skipped_by_reason"] == {"no_consent": 2} and back["expected_weekly"] == 70.0


def test_the_trend_shows_the_latest_run_dates_and_warns_from_the_whole_history(con):
    """The table lists the requested days; the warnings still use the trailing runs before them."""
    _fill(con, {"coverage": {**COVERAGE, "em": 0.5}})
    text = render_history(read_runs(con), days=2)
    assert text.count("run-0") == 2 and "run-07" in text and "run-06" in text
    assert "WARNING coverage: em on 50%" in text


def test_a_run_meta_stopped_warns_with_the_reason(con):
    """A run stopped by Meta (token, pixel, a refused batch) is recorded with why, and warned about."""
    from activation.history import record_from_report

    class AccessDenied(Exception):
        code = 190

    _fill(con)
    report = type("R", (), {})()
    report.__dict__.update(run_id="run-stop", run_date=date(2026, 10, 9), dry_run=False, spec_id="spec-1",
                           model="pltv_d1/3", eligible=5, planned=5, sent=0, skipped={}, failed=0, expired=0,
                           deferred=0, value_quantiles={}, psi=None, match_quality=None)  # fmt: skip
    record_run(con, record_from_report(report, stopped=AccessDenied()))
    warnings = run_warnings(read_runs(con))
    assert any("run-stop was stopped by Meta (AccessDenied code 190)" in w for w in warnings)


# ---- the daily job writes the history; `pltv status` shows the trend and warns ---------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A small sample, a `k x early revenue` model fitted on its matured past, and a custom_value spec."""
    from activation.settings import EventSettings
    from activation.spec import EventSpec
    from activation.valuemap import ValueMapping
    from pltv.features import build_features, feature_columns
    from pltv.models import EarlyRevenueMultiple
    from pltv.registry import LtvPythonModel
    from pltv.sample import generate_sample
    from pltv.sources import open_source

    root = tmp_path_factory.mktemp("history")
    generate_sample(root / "src", n_users=6_000, seed=2)
    with open_source(root / "src") as src:
        train = build_features(src.con, send_day=1, as_of="2026-06-01", horizon_days=90)
    model = LtvPythonModel(
        EarlyRevenueMultiple().fit(train, train["actual_ltv"]), send_day=1, horizon_days=90,
        event_names=train.attrs["event_names"], feature_names=feature_columns(train),
    )  # fmt: skip
    spec = EventSpec(settings=EventSettings(mode="custom_value", spec_id="", event_name="pLTV_D1", send_day=1),
                     value_mapping=ValueMapping("calibrated"), model_name="pltv_d1", model_version="1",
                     horizon_days=90, expected={"weekly_volume": 80.0})  # fmt: skip
    (root / "spec.json").write_text(spec.to_json())
    return root, model


def _run(small_world, ledger, day, sandbox=None, **changes):
    from datetime import UTC, datetime

    from activation.client import ClientConfig
    from activation.daily import DailyOptions, run_daily
    from pltv.config import SourceConfig

    root, model = small_world
    now = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
    client = None
    if sandbox is not None:
        sandbox.set_now(now)
        client = ClientConfig(pixel_id="1234567890", access_token="sandbox-token", graph_url=sandbox.url,
                              backoff_base_s=0.01, backoff_cap_s=0.02, max_attempts=2)  # fmt: skip
    options = DailyOptions(run_date=day, spec_path=root / "spec.json", source=SourceConfig(path=str(root / "src")),
                           tracking_uri="sqlite:///unused.db", ledger_path=ledger, client=client,
                           **changes)  # fmt: skip
    return run_daily(options, now=now, model=model)


def test_every_run_records_a_history_row_and_status_shows_the_trend_and_warnings(small_world, tmp_path):
    """Eight replayed days and a dry run: one row each (the dry run marked); status warns on low volume
    and on the failures of a day the sandbox answered 500 to everything."""
    from activation.sandbox import Sandbox
    from activation.status import render_status

    ledger = tmp_path / "ledger.duckdb"
    days = [date(2026, 9, 1) + timedelta(days=i) for i in range(8)]
    with Sandbox(now=datetime(2026, 9, 1, 1, tzinfo=UTC)) as sb:
        reports = [_run(small_world, ledger, d, sb) for d in days[:-1]]
        sb.set_faults(rate=1.0, seed=1, kinds=("http_500",))
        failing = _run(small_world, ledger, days[-1], sb)
    dry = _run(small_world, ledger, days[-1], dry_run=True, outbox_dir=tmp_path / "outbox")
    with duckdb.connect(str(ledger), read_only=True) as c:
        runs = read_runs(c)
    assert list(runs["run_id"]) == [r.run_id for r in [*reports, failing, dry]]
    assert bool(runs["dry_run"].iloc[-1]) and not runs["dry_run"].iloc[:-1].any()
    live = runs.iloc[:-1]
    assert live["sent"].tolist() == [r.sent for r in [*reports, failing]] and failing.failed > 0
    assert live["volume_7d"].iloc[-1] == sum(r.sent for r in reports[-6:]) + failing.sent
    assert live["coverage"].iloc[0]["em"] > 0.5 and live["expected_weekly"].iloc[0] == 80.0
    text = render_status(ledger, days=3)
    assert "(dry run)" in text and f"WARNING delivery: {failing.failed:,} event(s) failed" in text
    assert f"WARNING volume: {int(live['volume_7d'].iloc[-1]):,} events sent in the 7 days" in text


def test_a_run_stopped_by_a_refused_token_is_recorded_with_why(small_world, tmp_path):
    """Meta refusing the token stops the run (exit 3); its history row says so, and status warns."""
    from activation.errors import AccessDenied
    from activation.sandbox import Sandbox
    from activation.status import render_status

    ledger = tmp_path / "ledger.duckdb"
    sandbox = Sandbox(now=datetime(2026, 9, 1, 1, tzinfo=UTC), access_token="the-only-good-token")
    with sandbox as sb, pytest.raises(AccessDenied):
        _run(small_world, ledger, date(2026, 9, 1), sb)
    with duckdb.connect(str(ledger), read_only=True) as c:
        row = read_runs(c).iloc[-1]
    assert row["stopped"].startswith("AccessDenied") and row["sent"] == 0
    assert "was stopped by Meta (AccessDenied" in render_status(ledger)


def test_a_rerun_of_a_date_counts_the_first_runs_sends_in_the_weekly_volume(con):
    """The 7-day volume of a re-run includes what the date's first run sent (the re-run sends only what is owed)."""
    _fill(con)
    record_run(con, _record(7, run_id="run-07-again", sent=0))
    runs = read_runs(con)
    assert runs["volume_7d"].iloc[-1] == runs["volume_7d"].iloc[-2] == 7 * 38
