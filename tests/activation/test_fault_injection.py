"""Fault injection over replayed days: drops, latency past the client's timeout, a kill -9 mid-send, a retrain
and redesign in the middle, a missed cron day. At the end, per user, the sandbox counted at most one value
event per event name, and every planned event is delivered, unconfirmed or expired (each counted).

The replay (run dates, sandbox clock at 01:00 of each date unless said otherwise):

- 10-26: 30 % of requests dropped before or after the sandbox processed them;
- 10-27: every request answered after 1.8 s (the client gives up at 1.5 s): the sandbox counts the events,
  the client never hears it;
- 10-28: ``pltv score-and-send`` killed with SIGKILL while its batch is in flight (the sandbox counts it);
- 10-29: no run (a missed cron day);
- 10-30 (02:00, past the 48 h dedup window of 10-27 and 10-28): 20 % drops; then the model is retrained
  and the event redesigned;
- 10-31: the new spec, 20 % of requests dropped or answered after the timeout;
- 11-01: no faults.

Run with ``-s`` to see the tally.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from activation.design import DesignOptions
from activation.design_io import design_from_registry
from activation.events import event_id_for
from activation.sandbox import Sandbox
from activation.spec import load_spec
from pltv.config import Config, MlflowConfig, SourceConfig, TrainConfig
from pltv.sample import generate_sample
from pltv.train import train

pytestmark = pytest.mark.slow

TOKEN = "EAAB-fault-injection-token-never-leaks"
SECRET = "fault-injection-app-secret"
PIXEL = "1234567890"


def _client(url: str, **changes) -> ClientConfig:
    return ClientConfig(
        pixel_id=PIXEL, access_token=TOKEN, app_secret=SECRET, graph_url=url, backoff_base_s=0.01,
        backoff_cap_s=0.05, **changes,
    )  # fmt: skip


def _at(day: str, hour: int = 1) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _kill_mid_send(sb: Sandbox, root: Path, spec: Path, uri: str, run_date: str, now: datetime) -> str:
    """``pltv score-and-send`` as cron runs it, SIGKILLed while its first batch is in the sandbox."""
    before = sb.summary()["stats"]["requests"]
    sb.set_faults(rate=1.0, seed=0, kinds=("latency",), latency_s=1.2)  # under the timeout: it will land
    args = [
        sys.executable, "-m", "pltv.cli", "score-and-send", "--date", run_date, "--source", str(root / "src"),
        "--spec", str(spec), "--pixel-id", PIXEL, "--graph-url", sb.url, "--ledger", str(root / "ledger.duckdb"),
        "--now", now.isoformat(), "--log-level", "INFO",
    ]  # fmt: skip
    env = {**os.environ, "META_ACCESS_TOKEN": TOKEN, "META_APP_SECRET": SECRET, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=root)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and sb.summary()["stats"]["requests"] == before:
        time.sleep(0.02)
    time.sleep(0.3)  # the batch is inside the sandbox, which answers after 1.2 s
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    time.sleep(1.2)  # the sandbox finishes processing the batch the dead run sent
    sb.set_faults(rate=0.0)
    assert sb.summary()["stats"]["requests"] > before, "the killed run never sent a batch"
    return out.decode() + err.decode()


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """Run the whole replay once; the tests below check what it left behind."""
    root = tmp_path_factory.mktemp("faults")
    generate_sample(root / "src", n_users=18_000, seed=5)
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    config = Config(
        source=SourceConfig(path=str(root / "src")),
        train=TrainConfig(send_days=(1,)),
        mlflow=MlflowConfig(tracking_uri=uri),
    )
    capture = _Capture()
    loggers = [logging.getLogger(name) for name in ("activation", "pltv")]
    levels = [lg.level for lg in loggers]
    logging.getLogger().addHandler(capture)
    for lg in loggers:
        lg.setLevel(logging.INFO)
    output: list[str] = []
    specs: list[Path] = []
    reports = []
    try:
        train(root / "src", send_days=(1,), tracking_uri=uri)
        result, spec = design_from_registry(
            config, DesignOptions(mode="custom_value"), out=root / "spec1.json"
        )
        assert spec is not None, result.reason
        specs.append(spec)

        def day(sb: Sandbox, run_date: str, now: datetime, spec: Path, **client) -> None:
            sb.set_now(now)
            options = DailyOptions(
                run_date=date.fromisoformat(run_date), spec_path=spec, source=config.source, tracking_uri=uri,
                ledger_path=root / "ledger.duckdb", client=_client(sb.url, **client),
            )  # fmt: skip
            report = run_daily(options, now=now)
            reports.append(report)
            output.append(report.render())

        with Sandbox(access_token=TOKEN, app_secret=SECRET) as sb:
            sb.set_faults(rate=0.3, seed=11, kinds=("drop", "drop_after"))
            day(sb, "2026-10-26", _at("2026-10-26"), spec, batch_size=10)
            sb.set_faults(rate=1.0, seed=12, kinds=("latency",), latency_s=1.8)
            day(sb, "2026-10-27", _at("2026-10-27"), spec, max_attempts=2)
            sb.set_faults(rate=0.0)
            sb.set_now(_at("2026-10-28"))
            output.append(_kill_mid_send(sb, root, spec, uri, "2026-10-28", _at("2026-10-28")))
            # 10-29: the cron missed a day
            sb.set_faults(rate=0.2, seed=13, kinds=("drop", "drop_after"))
            day(sb, "2026-10-30", _at("2026-10-30", hour=2), spec, batch_size=10)
            # then the model is retrained and the event redesigned
            train(root / "src", send_days=(1,), tracking_uri=uri, promote=True)
            result, spec = design_from_registry(
                config, DesignOptions(mode="custom_value"), out=root / "spec2.json"
            )
            assert spec is not None, result.reason
            specs.append(spec)
            sb.set_faults(rate=0.2, seed=14, kinds=("drop", "drop_after", "latency"), latency_s=1.7)
            day(sb, "2026-10-31", _at("2026-10-31"), spec, batch_size=10, max_attempts=3)
            sb.set_faults(rate=0.0)
            day(sb, "2026-11-01", _at("2026-11-01"), spec)
            counted = sb.counted()
            hashes = {
                v
                for e in sb.events()
                for values in e["user_data"].values()
                for v in (values if isinstance(values, list) else [values])
                if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v)
            }
    finally:
        logging.getLogger().removeHandler(capture)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    con = duckdb.connect(str(root / "ledger.duckdb"), read_only=True)
    try:
        ledger = con.execute("SELECT * FROM capi_events").df()
    finally:
        con.close()
    users = pd.read_parquet(root / "src" / "users.parquet")
    spec_ids = [load_spec(p).spec_id for p in specs]
    assert len(set(spec_ids)) == 2, "the redesign must produce a new spec"
    owner = {event_id_for(s, u): u for s in spec_ids for u in users["user_id"]}
    return {
        "root": root, "ledger": ledger, "counted": counted, "owner": owner, "users": users,
        "text": "\n".join(output + capture.lines), "reports": reports, "hashes": hashes,
    }  # fmt: skip


def _tally(ledger: pd.DataFrame) -> Counter:
    label = ledger["state"].where(
        ledger["reason"].isna(), ledger["state"] + "/" + ledger["reason"].fillna("")
    )
    return Counter(label)


def test_each_user_is_counted_at_most_once_per_event_name(replay):
    """Per user and event name, the sandbox counted at most one value event over the whole replay."""
    per_user: Counter = Counter()
    for (name, event_id), times in replay["counted"].items():
        per_user[(replay["owner"][event_id], name)] += times
    doubled = {k: n for k, n in per_user.items() if n > 1}
    print(
        f"\nfault injection: {len(per_user)} (user, event name) pairs counted, {len(doubled)} more than once"
    )
    print("ledger tally:", dict(sorted(_tally(replay["ledger"]).items())))
    for r in replay["reports"]:
        print(f"  {r.run_date}: sent={r.sent} failed={r.failed} unconfirmed={r.unconfirmed} expired={r.expired} "
              f"sent_before={r.served_before} catch_up={r.catch_up}")  # fmt: skip
    assert not doubled, f"{len(doubled)} users counted more than once"


def test_every_planned_event_ends_delivered_unconfirmed_or_expired(replay):
    """Nothing is left owed after the last fault-free day: every non-skipped row is settled for a stated
    reason, and every row the ledger calls sent was counted by the sandbox."""
    ledger = replay["ledger"]
    planned = ledger[ledger["state"] != "skipped"]
    outcome = planned["state"] + "/" + planned["reason"].fillna("")
    assert set(outcome) <= {"sent/", "failed/unconfirmed", "failed/expired", "failed/rejected"}, Counter(
        outcome
    )
    reports = replay["reports"]
    assert sum(r.unconfirmed for r in reports) == (outcome == "failed/unconfirmed").sum()  # each one counted
    counted_ids = {event_id for _, event_id in replay["counted"]}
    assert set(planned.loc[planned["state"] == "sent", "event_id"]) <= counted_ids


def test_no_token_identifier_or_hash_in_output_logs_ledger_or_mlflow(replay):
    """With logging at INFO: no token, app secret, raw identifier or hashed identifier anywhere we write."""
    users = replay["users"]
    raw = {str(v) for c in ("email", "phone", "external_id", "fbc", "fbp") for v in users[c].dropna()}
    assert len(replay["hashes"]) > 100 and len(replay["text"]) > 1000
    texts = [replay["text"], replay["ledger"].astype(str).to_csv()]
    for path in (replay["root"] / "mlruns").rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    for text in texts:
        assert TOKEN not in text and SECRET not in text
        assert not set(re.findall(r"[0-9a-f]{64}", text)) & replay["hashes"]
        emails = set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text))
        assert not emails & raw
