"""The daily job end to end: a real sample, a real MLflow store, the real sandbox over a loopback socket."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from activation.client import ClientConfig
from activation.daily import DailyOptions, DailyRunError, run_daily
from activation.design import DesignOptions
from activation.design_io import design_from_registry
from activation.identity import hash_identifiers
from activation.sandbox import FaultConfig, Sandbox
from activation.spec import load_spec
from pltv.config import SourceConfig

TOKEN = "EAAB-test-token-should-never-leak"
SECRET = "app-secret-never-leaks"
RUN_DATE = date(2026, 10, 31)
NOW = datetime(2026, 10, 31, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(daily_world):
    """The session's sample, send-day-1 model and custom_value spec (``daily_world``: read only)."""
    return daily_world


def _options(world, tmp_path, sandbox=None, **changes) -> DailyOptions:
    client = None
    if sandbox is not None:
        client = ClientConfig(
            pixel_id="1234567890", access_token=TOKEN, app_secret=SECRET, graph_url=sandbox.url,
            backoff_base_s=0.01, backoff_cap_s=0.05, **changes.pop("client", {}),
        )  # fmt: skip
    return DailyOptions(
        run_date=changes.pop("run_date", RUN_DATE),
        spec_path=world["spec"],
        source=changes.pop("source", world["config"].source),
        tracking_uri=world["uri"],
        ledger_path=tmp_path / "ledger.duckdb",
        client=client,
        **changes,
    )


def _ledger(tmp_path) -> pd.DataFrame:
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True)
    try:
        return con.execute("SELECT * FROM capi_events").df()
    finally:
        con.close()


def test_events_received_equal_eligible_users_with_spec_values_and_hashes(world, tmp_path):
    """Every planned event arrives once; value and hashes follow the spec and the identity rules."""
    with Sandbox(now=NOW) as sb:
        report = run_daily(_options(world, tmp_path, sb), now=NOW)
        received = {e["event_id"]: e for e in sb.events()}
    ledger = _ledger(tmp_path)
    sent = ledger[ledger["state"] == "sent"]
    assert report.sent == len(sent) == len(received) == report.planned > 20
    assert set(sent["event_id"]) == set(received)
    assert report.eligible == report.planned + sum(report.skipped.values())
    spec = load_spec(world["spec"])
    # recompute one user's value and email hash independently of the run
    event = next(iter(received.values()))
    assert event["event_name"] == spec.settings.event_name and event["custom_data"]["currency"] == "USD"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        users = con.execute(f"SELECT * FROM '{world['root'] / 'src' / 'users.parquet'}'").df()
    from activation.settings import event_id_for

    users["event_id"] = [event_id_for(spec.spec_id, u) for u in users["user_id"]]
    row = users[users["event_id"] == event["event_id"]].iloc[0]
    send_at = row["signup_at"] + pd.Timedelta(days=spec.settings.send_day)
    assert event["event_time"] == int(send_at.timestamp())
    expected, _ = hash_identifiers(users.loc[[row.name], ["email", "country"]])
    if expected["em"].notna().iloc[0]:
        assert event["user_data"]["em"] == expected["em"].iloc[0]
    assert event["custom_data"]["value"] >= spec.value_mapping.floor
    assert report.match_quality is not None and "PSI vs holdout" in report.render()


def test_rerun_of_the_same_date_sends_nothing_new(world, tmp_path):
    """A second run of the same date finds every event already sent."""
    with Sandbox(now=NOW) as sb:
        first = run_daily(_options(world, tmp_path, sb), now=NOW)
        again = run_daily(_options(world, tmp_path, sb), now=NOW)
        assert sb.summary()["stats"]["duplicates"] == 0
    assert first.sent > 0
    assert again.sent == 0 and again.already_done == again.planned


def test_all_events_arrive_through_injected_transient_faults(world, tmp_path):
    """With 30% of requests failing transiently (5xx, throttling, drops) everything still arrives."""
    faults = FaultConfig(rate=0.3, seed=3, kinds=("http_500", "throttle", "drop"))
    with Sandbox(now=NOW, faults=faults) as sb:
        report = run_daily(_options(world, tmp_path, sb, client={"batch_size": 10}), now=NOW)
        received = {e["event_id"] for e in sb.events()}
        assert sb.summary()["stats"]["faults"] > 0
    assert report.failed == 0 and report.sent == report.planned == len(received)


def test_a_user_meta_would_reject_is_isolated_and_reported(world, tmp_path):
    """A user whose only keys are city, state, zip, gender and user agent (Meta: insufficient customer
    information) is skipped with that reason; the others arrive."""
    src = world["root"] / "src"
    bad = tmp_path / "src"
    bad.mkdir()
    for part in ("transactions", "events"):
        (bad / part).symlink_to(src / part)
    users = pd.read_parquet(src / "users.parquet")
    spec = load_spec(world["spec"])
    send_at = users["signup_at"] + pd.Timedelta(days=spec.settings.send_day)
    day_users = users[
        (send_at >= pd.Timestamp("2026-10-30", tz="UTC"))
        & (send_at < pd.Timestamp("2026-10-31", tz="UTC"))
        & users["consent"]
        & users["client_user_agent"].notna()
    ]
    victim = day_users.index[0]
    for col in ("email", "phone", "first_name", "last_name", "date_of_birth", "external_id", "fbc", "fbp",
                "client_ip_address", "madid", "anon_id"):  # fmt: skip
        users.loc[victim, col] = None
    users.loc[victim, ["city", "state", "zip", "gender"]] = ["Austin", "TX", "73301", "F"]
    users.to_parquet(bad / "users.parquet")
    options = _options(world, tmp_path, None)
    options = DailyOptions(**{**options.__dict__, "source": SourceConfig(path=str(bad))})
    with Sandbox(now=NOW) as sb:
        options = DailyOptions(**{**options.__dict__, "client": _options(world, tmp_path, sb).client})
        report = run_daily(options, now=NOW)
        received = {e["event_id"] for e in sb.events()}
    from activation.settings import event_id_for

    victim_id = event_id_for(spec.spec_id, users.loc[victim, "user_id"])
    assert victim_id not in received
    ledger = _ledger(tmp_path).set_index("event_id")
    assert ledger.loc[victim_id, "state"] == "skipped"
    assert ledger.loc[victim_id, "reason"] in (
        "insufficient_customer_information",
        "missing_client_user_agent",
    )
    assert report.sent == len(received) > 0 and report.failed == 0


def test_dry_run_writes_request_bodies_without_secrets_and_sends_nothing(world, tmp_path):
    """--dry-run: the outbox holds the exact bodies minus the token; the sandbox sees nothing."""
    with Sandbox(now=NOW) as sb:
        options = _options(world, tmp_path, sb, dry_run=True, outbox_dir=tmp_path / "outbox")
        report = run_daily(options, now=NOW)
        assert sb.summary()["stats"]["requests"] == 0
    bodies = [json.loads(line) for line in report.outbox.read_text().splitlines()]
    assert sum(len(b["data"]) for b in bodies) == report.planned > 0
    text = report.outbox.read_text()
    assert TOKEN not in text and "access_token" not in text and "appsecret_proof" not in text
    assert not (tmp_path / "ledger.duckdb").exists() or _ledger(tmp_path).empty


def test_missing_spec_or_model_stops_before_sending(world, tmp_path):
    """A spec that does not exist, or pins a version the registry lacks, fails clearly and sends nothing."""
    options = _options(world, tmp_path, None, dry_run=True)
    with pytest.raises(Exception, match="does not exist"):
        run_daily(DailyOptions(**{**options.__dict__, "spec_path": tmp_path / "nope.json"}), now=NOW)
    from activation.spec import save_spec

    save_spec(dataclasses.replace(load_spec(world["spec"]), model_version="99"), tmp_path / "spec99.json")
    with pytest.raises(Exception, match="version 99"):
        run_daily(DailyOptions(**{**options.__dict__, "spec_path": tmp_path / "spec99.json"}), now=NOW)


def test_unreadable_source_is_a_clear_error(world, tmp_path):
    """A source path that does not exist stops the run with what to fix."""
    options = _options(world, tmp_path, None, dry_run=True)
    options = DailyOptions(**{**options.__dict__, "source": SourceConfig(path=str(tmp_path / "missing"))})
    with pytest.raises(DailyRunError, match="cannot open the source"):
        run_daily(options, now=NOW)


_KILLED_RUN = """
import sys
from datetime import UTC, datetime, date
from pathlib import Path
from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from pltv.config import SourceConfig
url, root, ledger = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
client = ClientConfig(pixel_id="1234567890", access_token="tok", graph_url=url, batch_size=5, max_workers=1)
options = DailyOptions(run_date=date(2026, 10, 31), spec_path=root / "spec.json",
    source=SourceConfig(path=str(root / "src")), tracking_uri=sys.argv[4], ledger_path=ledger, client=client)
print(run_daily(options, now=datetime(2026, 10, 31, 1, 0, tzinfo=UTC)).sent, flush=True)
"""


def test_a_run_killed_mid_send_is_completed_by_the_next_run(world, tmp_path):
    """SIGKILL during delivery, then a re-run: every eligible event delivered, the ledger consistent."""
    ledger_path = tmp_path / "ledger.duckdb"
    with Sandbox(now=NOW, faults=FaultConfig(rate=1.0, kinds=("latency",), latency_s=0.15)) as sb:
        args = [sys.executable, "-c", _KILLED_RUN, sb.url, str(world["root"]), str(ledger_path), world["uri"]]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(sb.events()) < 10:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = len(sb.events())
        con = duckdb.connect(str(ledger_path), read_only=True)
        pending = con.execute("SELECT count(*) FROM capi_events WHERE state = 'pending'").fetchone()[0]
        con.close()
        assert partial >= 10 and pending > 0  # killed mid-send: some sent, some pending
        sb.set_faults(rate=0.0)
        report = run_daily(_options(world, tmp_path, sb), now=NOW)
        received = {e["event_id"] for e in sb.events()}
    ledger = _ledger(tmp_path)
    planned = ledger[ledger["state"] != "skipped"]
    assert (planned["state"] == "sent").all()
    assert set(planned["event_id"]) == received
    assert report.failed == 0


def test_no_identifier_token_or_proof_in_logs_or_output(world, tmp_path, caplog):
    """Logs and the printed report carry counts and ids, never identifiers, hashes, tokens or proofs."""
    caplog.set_level(logging.DEBUG)
    with Sandbox(now=NOW) as sb:
        report = run_daily(_options(world, tmp_path, sb), now=NOW)
        payload_values = {
            v for e in sb.events() for v in e["user_data"].values() if isinstance(v, str) and len(v) > 6
        }
    text = caplog.text + report.render()
    users = pd.read_parquet(world["root"] / "src" / "users.parquet")
    raw = {
        str(v) for c in ("email", "phone", "external_id", "fbc", "fbp") for v in users[c].dropna().head(500)
    }
    assert TOKEN not in text and SECRET not in text
    assert not any(v in text for v in payload_values)
    assert not any(v in text for v in raw)
    from activation.client import appsecret_proof

    assert appsecret_proof(SECRET, TOKEN) not in text


def test_identifiers_are_hashed_only_for_users_whose_event_can_be_sent(world, tmp_path, monkeypatch):
    """Users skipped for a reason that needs no user_data (no consent, no user agent…) never reach
    normalization: hashing sees exactly the others; every skip still has its ledger row and reason."""
    import activation.events as events
    from activation.events import PRESEND_REASONS

    reports = []

    def spy(users, **kwargs):
        frame, identity = hash_identifiers(users, **kwargs)
        reports.append(identity)
        return frame, identity

    monkeypatch.setattr(events, "hash_identifiers", spy)  # where plan_events looks it up
    with Sandbox(now=NOW) as sb:
        report = run_daily(_options(world, tmp_path, sb), now=NOW)
    presend = sum(n for r, n in report.skipped.items() if r in PRESEND_REASONS)
    assert presend > 0 and report.planned > 0
    assert sum(r.rows for r in reports) == report.eligible - presend
    skipped = _ledger(tmp_path).query("state == 'skipped'")
    assert skipped["reason"].value_counts().to_dict() == dict(report.skipped)


def test_users_past_the_end_of_a_lagging_export_wait_for_the_data(world, tmp_path):
    """An export that stops at noon the day before: users whose send moment is later are not scored (their
    window is not in the data, so their value would be too low, for good); the next run sends them."""
    cutoff = datetime(2026, 10, 30, 12, 0)
    stale = tmp_path / "stale"
    (stale / "transactions").mkdir(parents=True)
    (stale / "events").mkdir()
    src = world["root"] / "src"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for name, column, target in (
            ("users.parquet", "signup_at", "users.parquet"),
            ("transactions/*.parquet", "occurred_at", "transactions/part-00000.parquet"),
            ("events/*.parquet", "occurred_at", "events/part-00000.parquet"),
        ):
            con.execute(
                f"COPY (SELECT * FROM '{src / name}' WHERE {column} < TIMESTAMPTZ '{cutoff:%Y-%m-%d %H:%M}+00') "
                f"TO '{stale / target}' (FORMAT parquet)"
            )
    with Sandbox(now=NOW) as sb:
        lagging = run_daily(_options(world, tmp_path, sb, source=SourceConfig(path=str(stale))), now=NOW)
        assert lagging.deferred > 0 and "deferred" in lagging.render()
        first_ids = {e["event_id"] for e in sb.events()}
        complete = run_daily(_options(world, tmp_path, sb), now=NOW)
        assert complete.deferred == 0
        later_ids = {e["event_id"] for e in sb.events()} - first_ids
    ledger = _ledger(tmp_path)
    sent = ledger[ledger["state"] == "sent"]
    assert lagging.sent == len(first_ids) > 0
    assert complete.sent == len(later_ids) > 0
    event_time = pd.to_datetime(sent.set_index("event_id")["event_time"], unit="s")
    assert (event_time[list(first_ids)] <= cutoff).all() and (event_time[list(later_ids)] > cutoff).all()
    # the complete run selects exactly what the lagging run left: nothing is sent twice, nothing lost
    assert len(sent) == len(first_ids | later_ids) and sb.summary()["stats"]["duplicates"] == 0


def test_a_model_reading_a_column_the_source_lost_stops_before_sending(world, tmp_path):
    """A model trained with an extra categorical refuses to score a source without that column."""
    from pltv.registry import load_model

    spec = load_spec(world["spec"])
    model = load_model(world["uri"], spec.model_name, spec.model_version)
    assert model.categoricals == ["country", "platform", "channel"]
    model.estimator.categoricals_ = [*model.categoricals, "plan"]
    with pytest.raises(DailyRunError, match=r"users column\(s\) \['plan'\]"):
        run_daily(_options(world, tmp_path, dry_run=True), now=NOW, model=model)
    assert not (tmp_path / "ledger.duckdb").exists()


def test_design_says_which_requested_send_days_have_no_model(world, tmp_path):
    """Asking the designer for a send day without a registered champion is said, not silently dropped."""
    options = DesignOptions(mode="custom_value", send_days=(1, 5))
    result, _ = design_from_registry(world["config"], options, out=tmp_path / "spec.json")
    assert any("send days [5] left out: no registered champion (pltv_d5)" in n for n in result.notes)


def test_events_that_ran_out_of_retries_are_sent_by_the_next_days_run(world, tmp_path):
    """An outage longer than the retry budget: the day's events fail; the next day's catch-up sends them."""
    before = datetime(2026, 10, 30, 1, 0, tzinfo=UTC)
    with Sandbox(now=before, faults=FaultConfig(rate=1.0, seed=1, kinds=("http_500",))) as sb:
        options = _options(world, tmp_path, sb, run_date=date(2026, 10, 30), client={"max_attempts": 2})
        outage = run_daily(options, now=before)
        assert outage.failed > 0 and outage.sent == 0
        sb.set_faults(rate=0.0)
        sb.set_now(NOW)
        next_day = run_daily(_options(world, tmp_path, sb), now=NOW)
        received = {e["event_id"] for e in sb.events()}
    ledger = _ledger(tmp_path)
    assert next_day.failed == 0 and next_day.catch_up > 0
    assert set(ledger.loc[ledger["state"] == "sent", "event_id"]) == received
    # what could not be sent any more (older than Meta's 7 days by now) is expired, nothing is left owed
    failed = ledger[ledger["state"] == "failed"]
    assert (failed["reason"] == "expired").all() and len(failed) == next_day.expired
    assert (failed["event_time"] < NOW.timestamp() - 7 * 86400).all()
    assert len(received) + next_day.expired >= outage.failed and not (ledger["state"] == "pending").any()


def test_a_missing_model_store_or_outbox_folder_is_a_clear_error_that_creates_nothing(world, tmp_path):
    """A moved MLflow store is not silently re-created empty; a dry run's outbox beside a ledger folder
    that does not exist fails like the live run would, not by creating the folder."""
    from pltv.errors import RegistryError

    moved = tmp_path / "moved" / "mlflow.db"
    options = dataclasses.replace(_options(world, tmp_path, dry_run=True), tracking_uri=f"sqlite:///{moved}")
    with pytest.raises(RegistryError, match="no MLflow store at"):
        run_daily(options, now=NOW)
    assert not moved.parent.exists()
    options = dataclasses.replace(
        _options(world, tmp_path, dry_run=True), ledger_path=tmp_path / "nowhere" / "ledger.duckdb"
    )
    with pytest.raises(DailyRunError, match="cannot write the dry-run outbox"):
        run_daily(options, now=NOW)
    assert not (tmp_path / "nowhere").exists()


def test_expiry_follows_metas_age_limit_and_never_happens_in_a_dry_run(world, tmp_path):
    """Owed rows expire only past Meta's 7 days (not past a shorter catch-up window), and a dry run
    leaves the ledger as it found it."""
    from capi_helpers import make_events

    from activation.ledger import Ledger, RunInfo

    old = make_events(1, now=(NOW - timedelta(days=10)).timestamp())  # 10 days: Meta refuses it
    recent = make_events(2, spec="spec-2", now=(NOW - timedelta(days=3)).timestamp())[1:]  # still sendable
    with Ledger(tmp_path / "ledger.duckdb") as ledger:
        dead = RunInfo(run_id="dead", spec_id="s", send_date=date(2026, 10, 20))
        ledger.claim_pending([*old, *recent], run=dead)
    dry = run_daily(_options(world, tmp_path, dry_run=True, catch_up_days=2.0), now=NOW)
    assert dry.expired == 0 and set(_ledger(tmp_path)["state"]) == {"pending"}
    with Sandbox(now=NOW) as sb:
        live = run_daily(_options(world, tmp_path, sb, catch_up_days=2.0), now=NOW)
    rows = _ledger(tmp_path).set_index("event_id")
    assert live.expired == 1 and rows.loc[old[0].event_id, "reason"] == "expired"
    assert rows.loc[recent[0].event_id, "state"] == "pending"  # outside the window, but not too old


def _cli(world, tmp_path, monkeypatch, *args: str):
    from typer.testing import CliRunner

    from pltv.cli import app

    monkeypatch.setenv("META_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("META_APP_SECRET", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    base = ["score-and-send", "--date", f"{RUN_DATE}", "--source", world["config"].source.path,
            "--spec", str(world["spec"]), "--pixel-id", "1234567890", "--ledger", str(tmp_path / "l.duckdb"),
            "--now", NOW.strftime("%Y-%m-%dT%H:%M:%S")]  # fmt: skip
    return CliRunner().invoke(app, [*base, *args])


def test_cli_logs_events_to_stderr_at_info_without_identifiers_or_secrets(world, tmp_path, monkeypatch):
    """--log-level INFO sends the log events to stderr through the redaction filter: no token, no raw or
    hashed identifier reaches them."""
    with Sandbox(now=NOW) as sb:
        result = _cli(world, tmp_path, monkeypatch, "--graph-url", sb.url, "--log-level", "INFO")
        sent = [v for e in sb.events() for v in e["user_data"].values() if isinstance(v, str) and len(v) > 6]
    assert result.exit_code == 0, result.output
    logs = result.stderr
    assert "activation.daily_started" in logs and "activation.batch_sent" in logs
    assert "activation.daily_started" not in result.stdout
    users = pd.read_parquet(world["root"] / "src" / "users.parquet")
    raw = [
        str(v) for c in ("email", "phone", "external_id", "fbc", "fbp") for v in users[c].dropna().head(500)
    ]
    from activation.client import appsecret_proof

    assert sent and not any(v in logs for v in [*sent, *raw, TOKEN, SECRET, appsecret_proof(SECRET, TOKEN)])
    (tmp_path / "q").mkdir()
    quiet = _cli(world, tmp_path / "q", monkeypatch, "--dry-run")  # the default level: WARNING
    assert quiet.exit_code == 0 and "activation.daily_started" not in quiet.stderr


def test_cli_prints_one_line_per_stage_with_counts_when_not_a_terminal(world, tmp_path, monkeypatch):
    """Without a terminal (cron), each stage prints a start line and a done line with its time and count,
    before the run's report."""
    result = _cli(world, tmp_path, monkeypatch, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for stage in ("open + validate the source", "select the users due", "score, hash, build, outbox"):
        assert f"{stage} ..." in out
        assert re.search(rf"{re.escape(stage)}: done in [0-9.]+s \([0-9,]+ users\)", out), stage
    assert out.index("score, hash, build, outbox: done") < out.index("DRY RUN")


def test_cli_exits_3_when_the_endpoint_refuses_the_request(world, tmp_path, monkeypatch):
    """A refused endpoint (a Graph URL that already holds a version) stops the run: exit 3, events owed."""
    with Sandbox(now=NOW) as sb:
        result = _cli(world, tmp_path, monkeypatch, "--graph-url", f"{sb.url}/v26.0")
        assert sb.events() == []
    assert result.exit_code == 3, result.output
    assert "nothing more was sent" in result.stderr


def test_options_from_config_hold_the_delivery_rules(world):
    """No token or pixel id for a live run, or a replay clock aimed at Meta: a ClientConfigError (exit 2)."""
    from activation.errors import ClientConfigError

    cfg = world["config"]
    live = {"run_date": RUN_DATE, "spec_path": world["spec"]}
    with pytest.raises(ClientConfigError, match="META_ACCESS_TOKEN"):
        DailyOptions.from_config(cfg.replace("capi", pixel_id="1"), **live)
    with pytest.raises(ClientConfigError, match="pixel id"):
        DailyOptions.from_config(cfg, **live, access_token=TOKEN)
    with pytest.raises(ClientConfigError, match="refused for sending to Meta"):
        DailyOptions.from_config(
            cfg.replace("capi", pixel_id="1"), **live, access_token=TOKEN, replay_now="2026-10-31"
        )
    dry = DailyOptions.from_config(cfg, **live, dry_run=True, replay_now="2026-10-31T01:00:00")
    assert dry.now == NOW and dry.client is not None and dry.client.access_token == ""
