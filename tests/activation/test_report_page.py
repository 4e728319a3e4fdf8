"""`pltv report`: the page from a real small pipeline run, rendered in Debian's chromium through Playwright.

The world: the committed sample, one model trained into a tmp MLflow store, the designer's spec, three
daily runs to the project's sandbox over a loopback socket (the last one against a sandbox that answers
every request with HTTP 500, so the page has failures to show), into a real DuckDB ledger.
"""

from __future__ import annotations

import re
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from activation import event_id_for, hash_identifiers, health
from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from activation.design import DesignOptions
from activation.design_io import design_from_registry
from activation.report_page import SECTIONS
from activation.sandbox import FaultConfig, Sandbox
from activation.spec import load_spec
from pltv.cli import app
from pltv.config import Config, MlflowConfig, SourceConfig, TrainConfig
from pltv.contract import MATCH_COLUMNS
from pltv.train import train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
TOKEN = "EAAB-report-token-never-on-the-page"
RUN_DATES = (date(2026, 10, 29), date(2026, 10, 30), date(2026, 10, 31))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Sample -> train (send day 1) -> design -> three daily runs (the last one failing) -> `pltv report`."""
    root = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    train(SAMPLE, send_days=(1,), tracking_uri=uri)
    config = Config(source=SourceConfig(path=str(SAMPLE)), train=TrainConfig(send_days=(1,)),
                    mlflow=MlflowConfig(tracking_uri=uri))  # fmt: skip
    result, spec_path = design_from_registry(config, DesignOptions(), out=root / "eventspec.json")
    assert spec_path is not None, result.reason
    ledger = root / "ledger.duckdb"
    for day in RUN_DATES:
        now = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
        failing = day == RUN_DATES[-1]
        faults = FaultConfig(rate=1.0, seed=0, kinds=("http_500",)) if failing else FaultConfig()
        with Sandbox(now=now, faults=faults) as sb:
            client = ClientConfig(pixel_id="1234567890", access_token=TOKEN, graph_url=sb.url, max_attempts=2,
                                  backoff_base_s=0.01, backoff_cap_s=0.02)  # fmt: skip
            options = DailyOptions(run_date=day, spec_path=spec_path, source=config.source, tracking_uri=uri,
                                   ledger_path=ledger, client=client)  # fmt: skip
            report = run_daily(options, now=now)
            assert (report.failed > 0) == failing and report.sent + report.failed > 0
    out = root / "page" / "report.html"
    args = ["report", "--source", str(SAMPLE), "--ledger", str(ledger), "--spec", str(spec_path),
            "--out", str(out)]  # fmt: skip
    cli = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": uri})
    assert cli.exit_code == 0, cli.output
    return {"root": root, "out": out, "ledger": ledger, "spec": load_spec(spec_path), "spec_path": spec_path,
            "uri": uri, "cli": cli.output}  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never a browser Playwright downloads itself)."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `apt-get install -y chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log = {"requests": [], "console": [], "errors": []}
    page.on("request", lambda r: log["requests"].append(r.url))
    page.on("console", lambda m: log["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: log["errors"].append(str(e)))
    started = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    log["seconds"] = time.perf_counter() - started
    return page, log


def test_page_renders_in_chromium_with_every_section_visible_and_no_console_error(world, browser, tmp_path):
    """Every section is visible with its heading and its one sentence on what good looks like; the console is
    clean; a screenshot is saved beside the test."""
    page, log = _open(browser, world["out"])
    try:
        for key, title in SECTIONS:
            section = page.locator(f"section#{key}")
            assert section.is_visible(), key
            assert section.locator("h2").inner_text() == title
            assert section.locator("p.good").inner_text().startswith("Good:")
        charts = page.locator("figure svg")
        assert charts.count() >= 5 and all(charts.nth(i).is_visible() for i in range(charts.count()))
        assert page.locator("section#signal ul.flags").inner_text().count("failed") >= 1
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
    finally:
        page.close()
    assert [m for m in log["console"] if m[0] in ("error", "warning")] == [] and log["errors"] == []
    print(f"report page: {world['out'].stat().st_size / 1e6:.2f} MB, loaded in {log['seconds']:.2f} s")


def test_page_makes_no_network_request(world, browser):
    """The browser's request log while loading the page holds the file itself and nothing else."""
    page, log = _open(browser, world["out"])
    page.close()
    assert log["requests"] == [world["out"].as_uri()]
    text = world["out"].read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#)""", text), "every reference is in-page"
    assert "http://" not in text.replace("http://www.w3.org/", "") and "https://" not in text


def test_page_carries_no_identifier_hash_or_token(world):
    """No user id, event id, raw or hashed identifier of a sent user, spec or run id, trace id or token."""
    text = world["out"].read_text()
    spec = world["spec"]
    con = duckdb.connect(str(world["ledger"]), read_only=True)
    try:
        ledger = con.execute("SELECT event_id, run_id, spec_id, fbtrace_id FROM capi_events").df()
    finally:
        con.close()
    users = pd.read_parquet(SAMPLE / "users.parquet")
    users["event_id"] = [event_id_for(spec.spec_id, u) for u in users["user_id"]]
    sent = users[users["event_id"].isin(ledger["event_id"])]
    assert len(sent) > 100
    hashed, _ = hash_identifiers(sent[[c for c in MATCH_COLUMNS if c in sent]])
    secrets = {TOKEN, spec.spec_id, *ledger["run_id"], *ledger["event_id"], *ledger["fbtrace_id"].dropna()}
    secrets |= set(sent["user_id"].astype(str))
    for column in ("email", "phone", "external_id", "fbc", "fbp", "client_ip_address", "client_user_agent"):
        secrets |= {str(v) for v in sent[column].dropna() if len(str(v)) >= 6}
    secrets |= {v for col in hashed for v in hashed[col].dropna() if len(v) >= 16}
    found = [s for s in secrets if s in text]
    assert found == [], f"{len(found)} identifier-like value(s) on the page"
    assert not re.search(r"[0-9a-f]{32}", text) and "pltv-" not in text and "spec-" not in text


def test_cli_summary_names_the_file_and_the_flags(world):
    """`pltv report` prints where it wrote the page, its size and the flags the page shows."""
    assert f"wrote {world['out']}" in world["cli"] and "MB" in world["cli"]
    assert "1. Signal health:" in world["cli"] and "failed" in world["cli"]


# --------------------------------------------------------------------------------------------------------
# the numbers behind the sections (pure functions over ledger rows)
# --------------------------------------------------------------------------------------------------------


def _rows(records) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=["send_date", "state", "reason", "value", "spec_id", "event_id"])
    frame["send_date"] = pd.to_datetime(frame["send_date"])
    return frame


def test_outcomes_split_skips_and_failures_by_reason_and_expired_apart():
    """Each ledger row lands in exactly one outcome column of its send date; expired is not 'failed'."""
    rows = _rows([("2026-10-01", "sent", None, 5.0, "s", "a"), ("2026-10-01", "skipped", "no_consent", 1.0, "s", "b"),
                  ("2026-10-02", "failed", "expired", 1.0, "s", "c"), ("2026-10-02", "failed", "rejected", 1.0, "s", "d"),
                  ("2026-10-02", "unconfirmed", None, 1.0, "s", "e")])  # fmt: skip
    counts = health.outcome_counts(rows)
    assert list(counts.columns) == [
        "sent",
        "skipped: no_consent",
        "failed: rejected",
        "unconfirmed",
        "expired",
    ]
    assert counts.to_numpy().sum() == len(rows)
    flags = health.Flags()
    health.delivery_flags(flags, counts, health.trailing_volume(rows), None)
    text = " ".join(flags.get("signal"))
    assert "under Meta's 100/week" in text and "1 event(s) failed" in text
    assert "1 event(s) unconfirmed" in text and "1 event(s) expired" in text


def test_trailing_volume_counts_sent_events_of_the_last_seven_days():
    """At each send date: the events sent on it and the six days before."""
    days = pd.date_range("2026-10-01", periods=10, freq="D")
    rows = _rows([(d, "sent", None, 1.0, "s", f"{d}{i}") for d in days for i in range(3)])
    volume = health.trailing_volume(rows)
    assert volume.tolist() == [3, 6, 9, 12, 15, 18, 21, 21, 21, 21]


def test_psi_uses_the_daily_jobs_function_and_waits_for_enough_events(world):
    """The trailing-week PSI equals activation.report's PSI on the same values, and is n/a under 200 events."""
    from activation.report import population_stability_index

    spec = world["spec"]
    rng = np.random.default_rng(0)
    values = rng.lognormal(3, 1, 300)
    rows = _rows([("2026-10-01", "sent", None, v, spec.spec_id, str(i)) for i, v in enumerate(values)])
    drift = health.value_drift(rows, spec)
    ref = spec.value_reference
    assert drift["psi"].iloc[0] == pytest.approx(
        population_stability_index(ref["edges"], ref["shares"], values)
    )
    assert np.isnan(health.value_drift(rows.head(150), spec)["psi"].iloc[0])


def test_coverage_drop_is_flagged_only_beyond_ten_points_and_the_days_noise():
    """A 20-point drop on 400 events is flagged; the same drop on 8 events is within its noise (+-21 points)."""
    for n, flagged in ((400, True), (8, False)):
        coverage = pd.DataFrame(
            {"em": [0.9, 0.9, 0.7]}, index=pd.date_range("2026-10-01", periods=3, name="send_date")
        )
        keys = health.MatchKeys(coverage=coverage, estimated_score=pd.Series(dtype=float),
                                invalid=pd.DataFrame(columns=["key", "present", "usable", "invalid", "reasons"]),
                                events_by_day=pd.Series([400, 400, n], index=coverage.index), events=800 + n,
                                unmatched=0)  # fmt: skip
        flags = health.Flags()
        health.match_flags(flags, keys)
        assert bool(flags.get("match")) == flagged, n


# --------------------------------------------------------------------------------------------------------
# calibration and experiment: issue 13's readouts, once this toolkit has them
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def readout_world(tmp_path_factory):
    """A sample with an acquisition experiment (+25 % on the treatment arm), sends replayed a year back (matured),
    a month back (partial maturity) and yesterday, and a pltv.toml naming the arm column."""
    pytest.importorskip(
        "activation.readout", reason="the calibration readout (issue 13) is not in this toolkit"
    )
    from pltv.sample import Experiment, generate_sample

    root = tmp_path_factory.mktemp("readout")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    generate_sample(root / "src", n_users=20_000, seed=1, experiment=Experiment(lift=0.25))
    train(root / "src", send_days=(1,), tracking_uri=uri)
    config = Config(source=SourceConfig(path=str(root / "src")), train=TrainConfig(send_days=(1,)),
                    mlflow=MlflowConfig(tracking_uri=uri))  # fmt: skip
    result, spec = design_from_registry(
        config, DesignOptions(mode="custom_value"), out=root / "eventspec.json"
    )
    assert spec is not None, result.reason
    for day in (
        date(2025, 10, 1),
        date(2025, 10, 2),
        date(2026, 9, 25),
        date(2026, 9, 26),
        date(2026, 10, 31),
    ):
        now = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
        with Sandbox(now=now) as sb:
            client = ClientConfig(pixel_id="1234567890", access_token=TOKEN, graph_url=sb.url)
            run_daily(DailyOptions(run_date=day, spec_path=spec, source=config.source, tracking_uri=uri,
                                   ledger_path=root / "ledger.duckdb", client=client), now=now)  # fmt: skip
    toml = root / "pltv.toml"
    toml.write_text(
        f'[source]\npath = "{root / "src"}"\n[train]\nsend_days = [1]\n[mlflow]\ntracking_uri = "{uri}"\n'
        f'[capi]\nledger = "{root / "ledger.duckdb"}"\n'
        '[experiment]\narm_column = "acq_arm"\ntreatment = "treatment"\ncontrol = "control"\n'
    )
    out = root / "report.html"
    cli = CliRunner().invoke(app, ["report", "--config", str(toml), "--spec", str(spec), "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    return out


def test_calibration_section_shows_matured_and_partial_views_with_intervals(readout_world, browser):
    """Matured send weeks and the partial-maturity view, each with a bias interval, a chart and the deciles."""
    page, log = _open(browser, readout_world)
    try:
        section = page.locator("section#calibration")
        text = section.inner_text()
        assert "no readout available" not in text
        assert "matured (365 days)" in text and "partial maturity, day 30" in text and "95% interval" in text
        assert section.locator("figure svg").count() == 2
    finally:
        page.close()
    assert log["errors"] == [] and log["requests"] == [readout_world.as_uri()]


def test_experiment_section_shows_the_lift_with_its_interval_and_maturity(readout_world, browser):
    """The configured arm column gives the lift, its 95 % interval, both arms and whether it is mature."""
    page, _ = _open(browser, readout_world)
    try:
        text = page.locator("section#experiment").inner_text()
        assert re.search(r"Lift in revenue per user by day 30: [+-]\d+\.\d% \[95% interval [+-]\d", text)
        assert "treatment" in text and "control" in text and ("NOT mature" in text or "mature" in text)
        assert page.locator("section#experiment figure svg").count() == 1
    finally:
        page.close()


def test_a_ledger_no_run_wrote_gives_a_page_that_says_so(tmp_path):
    """An empty ledger and a missing model store still give all six sections, each saying what is missing."""
    from activation.report_page import ReportOptions, build_report

    duckdb.connect(str(tmp_path / "ledger.duckdb")).close()
    options = ReportOptions(source=SourceConfig(path=str(SAMPLE)), ledger_path=tmp_path / "ledger.duckdb",
                            tracking_uri=f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}")  # fmt: skip
    report, text = build_report(options)
    assert [f'section id="{key}"' in text for key, _ in SECTIONS] == [True] * len(SECTIONS)
    assert "the ledger holds no events yet" in " ".join(report.sections["signal"].flags)
    assert report.sections["match"].unavailable == "no sent events in the ledger yet"
    assert any("no MLflow store" in f for f in report.sections["models"].flags)


def test_a_spec_that_does_not_exist_is_a_clean_error(world, tmp_path):
    """`pltv report --spec missing.json` exits 2 naming the file, and writes nothing."""
    out = tmp_path / "report.html"
    args = ["report", "--source", str(SAMPLE), "--ledger", str(world["ledger"]), "--spec", str(tmp_path / "missing.json"),
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "missing.json" in result.output and not out.exists()


def test_values_breaking_metas_pltv_rules_are_flagged(world):
    """Fewer than 5 distinct values, or max under 3x min, in a value mode is flagged with the numbers."""
    spec = world["spec"]
    rows = _rows(
        [
            ("2026-10-01", "sent", None, v, spec.spec_id, str(i))
            for i, v in enumerate([10.0, 12.0, 14.0] * 100)
        ]
    )
    flags = health.Flags()
    health.value_flags(flags, health.value_drift(rows, spec), spec, health.recent_values(rows))
    assert any("3 distinct values, max/min 1.4" in f for f in flags.get("values"))


def test_status_warnings_replace_the_pages_own_flags_of_the_same_kind():
    """With a run history, volume/delivery/coverage/drift flags are `pltv status`'s; the others stay."""
    flags = health.Flags()
    flags.add("signal", "12 events sent in the 7 days", "volume")
    flags.add("signal", "3 event(s) pending", "")
    flags.add("match", "em coverage 40%", "coverage")
    flags.add("values", "PSI n/a: 12 events", "")
    flags.use_status_warnings(["volume: 15 events sent in the 7 days to 2026-10-31", "drift: PSI 0.310"])
    assert flags.get("signal") == [
        "3 event(s) pending",
        "pltv status: volume: 15 events sent in the 7 days to 2026-10-31",
    ]
    assert flags.get("match") == [] and flags.get("values") == [
        "PSI n/a: 12 events",
        "pltv status: drift: PSI 0.310",
    ]


_HOLD = """
import sys, time, duckdb
from activation.runlock import run_lock
with run_lock(sys.argv[1], run_date="2026-10-31"):
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(60)
"""


def test_the_page_is_written_beside_a_running_job_from_its_snapshot(world, tmp_path):
    """While a run holds the ledger, the page reads the snapshot that run left, as `pltv status` does, and says so."""
    import subprocess
    import sys

    from activation.report_page import ReportOptions, build_report
    from activation.runlock import snapshot_path

    ledger = tmp_path / "ledger.duckdb"
    shutil.copy(world["ledger"], ledger)
    shutil.copy(snapshot_path(world["ledger"]), snapshot_path(ledger))  # the last run's, as it left it
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(ledger)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        options = ReportOptions(source=SourceConfig(path=str(SAMPLE)), ledger_path=ledger,
                                tracking_uri=world["uri"], spec_path=world["spec_path"], send_days=(1,))  # fmt: skip
        report, _ = build_report(options)
    finally:
        proc.kill()
        proc.wait()
    assert "is writing the ledger" in report.facts["ledger"]
    assert report.sections["match"].unavailable is None and report.sections["signal"].body
