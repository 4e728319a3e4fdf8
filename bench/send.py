"""Bench: 100k events with raw identifiers → normalize + hash → CAPI, ours vs Meta's facebook-business SDK.

Both pipelines start from the same raw users (``pltv.sample`` messy identifiers) and post to the same
local sink (the project's sandbox, in its own process, so the sink does not share our GIL):

- ours: the daily job's own path, :func:`activation.delivery.deliver_pipelined`: per chunk of ``--chunk``
  users (50k, the daily job's default) ``plan_events`` (presend rules → ``hash_identifiers`` of the users
  they leave sendable → ``build_events``), then ``deliver`` (ledger claim, ``CapiClient.send``: JSON,
  1000/batch, ``--workers`` concurrent requests, 4 by default, outcomes to a DuckDB ledger, empty or
  holding ``--history`` rows of earlier days); chunk k+1 is prepared while chunk k is in flight;
- SDK:  ``UserData``/``Event`` objects → ``EventRequest(...).execute()`` per 1000 (its default sync path,
  ``FacebookAdsApi.init(crash_log=False)``, ``FacebookSession.GRAPH`` = the sink). A batch whose raw
  values make the SDK raise is re-built without the events that fail ``Event.normalize()`` — what a
  user of the SDK has to do, since one bad value aborts its whole request.

Prints events/s for both, the ratio, normalize+hash throughput alone (all users in one call, measured
after both runs), and how many hashes the SDK computes differently from Meta's documented rule
(compared key by key on the same users).

    .venv/bin/python bench/send.py --events 100000
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activation.client import CapiClient, ClientConfig  # noqa: E402
from activation.delivery import deliver_pipelined  # noqa: E402
from activation.events import plan_events  # noqa: E402
from activation.identity import COLUMN_KEYS, hash_identifiers  # noqa: E402
from activation.ledger import Ledger, RunInfo  # noqa: E402
from activation.ledger_schema import TABLE  # noqa: E402
from activation.settings import EventSettings, event_id_for  # noqa: E402
from activation.types import EventPlan  # noqa: E402
from pltv.contract import MATCH_COLUMNS  # noqa: E402

TOKEN = "bench-token"
SDK_FIELDS = {  # contract column -> UserData kwarg (the SDK's raw-value API)
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "city": "city",
    "state": "state",
    "zip": "zip_code",
    "country": "country_code",
    "date_of_birth": "date_of_birth",
    "external_id": "external_id",
    "client_ip_address": "client_ip_address",
    "client_user_agent": "client_user_agent",
    "fbc": "fbc",
    "fbp": "fbp",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_sink(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pltv.cli", "sandbox", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/_sandbox/summary", timeout=0.5)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sink did not start")


def _users(n: int, seed: int, now: pd.Timestamp) -> pd.DataFrame:
    try:
        from pltv.sample import generate_tables

        users, _, _ = generate_tables(max(n, 100), seed=seed)
        users = users.head(n).reset_index(drop=True)
    except ImportError:  # pragma: no cover - before pltv.sample existed
        raise SystemExit("pltv.sample is required for the bench's messy identifiers") from None
    rng = np.random.default_rng(seed)
    # re-time the users so that every event is fresh for the sink (send moment within the last hour)
    users["signup_at"] = now - pd.Timedelta(days=3) - pd.to_timedelta(rng.integers(60, 3600, n), unit="s")
    users["send_at"] = users["signup_at"] + pd.Timedelta(days=3)  # the selection's send moment (send day 3)
    users["predicted_ltv"] = np.round(rng.gamma(2.0, 40.0, n) + 1, 2)
    users["consent"] = True
    return users


def _reset(url: str) -> None:
    requests.post(f"{url}/_sandbox/reset", timeout=5)


def _stats(url: str) -> dict:
    return requests.get(f"{url}/_sandbox/summary", timeout=5).json()["stats"]


def _fill_history(ledger_path: Path, rows: int) -> None:
    """Earlier days' rows, so the timed run writes into a ledger of a realistic size and mix (not timed):
    half sent, half skipped (the share this bench's users skip, mostly for missing match keys)."""
    if rows <= 0:
        return
    with Ledger(ledger_path) as ledger:
        ledger.con.execute(
            f"""INSERT INTO {TABLE} (event_id, run_id, spec_id, send_date, event_name, event_time, value, state,
                                    reason, attempts, events_received, created_at, updated_at)
            SELECT 'pltv-h' || lpad(i::VARCHAR, 23, '0'), 'history-' || (i % 7), 'history', DATE '2026-01-01',
                   'pLTV_D3', 1767225600 + i, 10.0, CASE WHEN i % 2 = 0 THEN 'sent' ELSE 'skipped' END,
                   CASE WHEN i % 2 = 1 THEN 'no_match_keys' END, 1, 1000, now()::TIMESTAMP, now()::TIMESTAMP
            FROM range(?) r(i)""",
            [rows],
        )


def run_ours(
    users: pd.DataFrame, url: str, now: float, workers: int, chunk_users: int, ledger_path: Path
) -> tuple[float, float, int, set]:
    """Ours end to end, on the daily job's own delivery path: chunks of ``chunk_users`` users through
    :func:`activation.delivery.deliver_pipelined` (chunk k+1's ``plan_events`` — presend rules, hashing of
    the sendable users only, building — while chunk k is delivered through the client and the ledger).

    Returns (seconds, preparation seconds summed over chunks, events sent, planned users).
    """
    settings = EventSettings(mode="custom_value", spec_id="bench", send_day=3)
    cfg = ClientConfig(pixel_id="1", access_token=TOKEN, graph_url=url, max_workers=workers)
    run = RunInfo(run_id="bench", spec_id="bench", send_date=date.today())
    prepared = [0.0]
    event_ids: list[str] = []
    id_columns = [c for c in MATCH_COLUMNS if c in users.columns]

    def prepare(part: pd.DataFrame) -> EventPlan:
        t = time.perf_counter()
        plan = plan_events(part, settings, now=now, id_columns=id_columns, default_region="US")
        prepared[0] += time.perf_counter() - t
        event_ids.extend(e.event_id for e in plan.events)
        return plan

    t0 = time.perf_counter()
    with CapiClient(cfg) as client, Ledger(ledger_path) as ledger:
        parts = (users.iloc[i : i + chunk_users] for i in range(0, len(users), chunk_users))
        sent = sum(r.sent for r in deliver_pipelined(parts, prepare, client=client, ledger=ledger, run=run))
    elapsed = time.perf_counter() - t0
    # bookkeeping for the peer (which users to send through the SDK), outside the timed pipeline
    sent_ids = set(event_ids)
    planned_users = {u for u in users["user_id"] if event_id_for("bench", u) in sent_ids}
    return elapsed, prepared[0], sent, planned_users


def run_hash_only(users: pd.DataFrame) -> float:
    """Normalize + hash alone, all users in one call (no send competing for the CPU)."""
    t0 = time.perf_counter()
    hash_identifiers(users, default_region="US")
    return time.perf_counter() - t0


def _sdk_event(row: dict, now: int):
    from facebook_business.adobjects.serverside.action_source import ActionSource
    from facebook_business.adobjects.serverside.custom_data import CustomData
    from facebook_business.adobjects.serverside.event import Event
    from facebook_business.adobjects.serverside.gender import Gender
    from facebook_business.adobjects.serverside.user_data import UserData

    kwargs = {
        kw: str(row[col])
        for col, kw in SDK_FIELDS.items()
        if row.get(col) is not None and row[col] == row[col]
    }
    g = str(row.get("gender") or "").strip().lower()
    if g in ("f", "m"):
        kwargs["gender"] = Gender.FEMALE if g == "f" else Gender.MALE
    return Event(
        event_name="pLTV_D3",
        event_time=int(pd.Timestamp(row["signup_at"]).timestamp()) + 3 * 86400,
        event_id=f"sdk-{row['user_id']}",
        event_source_url=row.get("event_source_url") or "https://shop.example.com",
        action_source=ActionSource.WEBSITE,
        user_data=UserData(**kwargs),
        custom_data=CustomData(value=float(row["predicted_ltv"]), currency="usd"),
    )


def run_sdk(users: pd.DataFrame, url: str, now: int) -> tuple[float, int, int, int]:
    from facebook_business.adobjects.serverside.event_request import EventRequest
    from facebook_business.api import FacebookAdsApi
    from facebook_business.exceptions import FacebookRequestError
    from facebook_business.session import FacebookSession

    FacebookSession.GRAPH = url
    FacebookAdsApi.init(access_token=TOKEN, crash_log=False)
    rows = users.astype(object).where(users.notna(), None).to_dict("records")
    t0 = time.perf_counter()
    sent = dropped = rejected = 0
    for i in range(0, len(rows), 1000):
        events = [_sdk_event(r, now) for r in rows[i : i + 1000]]
        try:
            try:
                resp = EventRequest(pixel_id="1", events=events).execute()
            except (TypeError, ValueError):
                ok = []
                for e in events:
                    try:
                        e.normalize()
                        ok.append(e)
                    except (TypeError, ValueError):
                        dropped += 1
                resp = EventRequest(pixel_id="1", events=ok).execute()
            sent += resp.events_received
        except FacebookRequestError:  # its str() dumps the batch (hashed PII): never printed
            rejected += len(events)
    return time.perf_counter() - t0, sent, dropped, rejected


def sdk_disagreements(users: pd.DataFrame) -> tuple[int, int, int]:
    """(hashes compared, SDK differs from the documented rule, SDK errors where the rule gives a value)."""
    from facebook_business.adobjects.serverside.normalize import Normalize

    ours, _ = hash_identifiers(users, default_region="US")
    sdk_field = {"em": "em", "ph": "ph", "fn": "fn", "ln": "ln", "ct": "ct", "st": "st", "zp": "zp",
                 "country": "country", "db": "db", "ge": "ge"}  # fmt: skip
    compared = differ = errors = 0
    for col, key in COLUMN_KEYS.items():
        if key not in sdk_field or col not in users or key not in ours:
            continue
        for raw, mine in zip(users[col].tolist(), ours[key].tolist(), strict=True):
            if mine is None or raw is None or raw != raw:
                continue
            compared += 1
            try:
                theirs = Normalize.normalize(sdk_field[key], str(raw), True)
            except (TypeError, ValueError):
                errors += 1
                differ += 1
                continue
            differ += theirs != mine
    return compared, differ, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4, help="our client's concurrent requests")
    ap.add_argument(
        "--chunk", type=int, default=50_000, help="users per chunk of ours (hashed while the last is sent)"
    )
    ap.add_argument(
        "--history",
        type=int,
        default=0,
        help="rows of earlier days in our ledger before the run (e.g. 700000)",
    )
    args = ap.parse_args()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    sink = _start_sink(port)
    try:
        now = pd.Timestamp.now(tz="UTC")
        users = _users(args.events, args.seed, now)
        now_s = int(now.timestamp()) + 60

        with tempfile.TemporaryDirectory() as tmp:
            _fill_history(Path(tmp) / "ledger.duckdb", args.history)
            t_ours, t_prepare, sent_ours, planned_users = run_ours(
                users, url, now_s, args.workers, args.chunk, Path(tmp) / "ledger.duckdb"
            )
        ours_stats = _stats(url)
        _reset(url)
        # the SDK peer sends the same events (the users our pipeline found sendable: user agent etc.)
        peer = users[users["user_id"].isin(planned_users)].reset_index(drop=True)
        t_sdk, sent_sdk, sdk_dropped, sdk_rejected = run_sdk(peer, url, now_s)
        sdk_stats = _stats(url)
        compared, differ, sdk_errors = sdk_disagreements(users)
        t_hash_alone = run_hash_only(users)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    n = len(users)
    result = {
        "events": n,
        "ours_events_per_s": round(sent_ours / t_ours),
        "ours_sent": sent_ours,
        "ours_seconds": round(t_ours, 2),
        "ours_requests": ours_stats["requests"],
        "ours_client_workers": args.workers,
        "ours_chunk_users": args.chunk,
        "ours_ledger_rows_before": args.history,
        "ours_prepare_seconds_in_pipeline": round(t_prepare, 2),
        "ours_send_wait_seconds": round(max(t_ours - t_prepare, 0.0), 2),
        "normalize_hash_rows_per_s": round(n / t_hash_alone),
        "normalize_hash_seconds": round(t_hash_alone, 2),
        "sdk_events_per_s": round(sent_sdk / t_sdk),
        "sdk_sent": sent_sdk,
        "sdk_seconds": round(t_sdk, 2),
        "sdk_requests": sdk_stats["requests"],
        "sdk_events_dropped_for_bad_values": sdk_dropped,
        "sdk_events_in_rejected_batches": sdk_rejected,
        "ratio_end_to_end": round((sent_ours / t_ours) / (sent_sdk / t_sdk), 2),
        "hashes_compared": compared,
        "sdk_hashes_differing_from_documented_rule": differ,
        "sdk_normalization_errors": sdk_errors,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
