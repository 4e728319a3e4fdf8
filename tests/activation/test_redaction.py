"""No identifier (raw or hashed), token or appsecret_proof in logs or exception texts."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date

import pandas as pd
import pytest
from capi_helpers import SECRET, TOKEN, client_config

from activation.client import CapiClient, appsecret_proof
from activation.delivery import deliver
from activation.errors import AccessDenied
from activation.events import build_events
from activation.identity import hash_identifiers
from activation.ledger import Ledger, RunInfo
from activation.redaction import RedactionFilter, log_event, redact
from activation.sandbox import Sandbox
from activation.settings import EventSettings


def test_redact_removes_hashes_emails_phones_and_secrets():
    """64-hex, 32-hex, emails, +phones, token pairs and configured secrets become [REDACTED]."""
    text = f"a {'ab' * 32} b {'cd' * 16} jo@x.com +1 650 555 1212 access_token=zzz {SECRET} batch=3"
    out = redact(text, [SECRET])
    assert out.count("[REDACTED]") == 6 and "batch=3" in out


def test_filter_redacts_messages_and_tracebacks(caplog):
    """The filter rewrites messages and exception text of every record."""
    logger = logging.getLogger("activation.test_filter")
    logger.addFilter(RedactionFilter([TOKEN]))
    with caplog.at_level(logging.INFO, logger="activation.test_filter"):
        try:
            raise ValueError(f"boom {TOKEN} mary@example.com")
        except ValueError:
            logger.exception("failed for %s", "mary@example.com")
        log_event(logger, "activation.batch_sent", batch=17, events=1000, status=200)
    assert TOKEN not in caplog.text and "mary@example.com" not in caplog.text
    assert "activation.batch_sent batch=17 events=1000 status=200" in caplog.text


def test_full_send_with_identifiers_leaks_nothing_into_logs_or_errors(caplog, tmp_path):
    """A send with faults, a rejected event and a bad-token run logs no identifier, hash, token or proof."""
    now = pd.Timestamp("2026-10-30", tz="UTC")
    users = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(300)],
            "signup_at": [now - pd.Timedelta(days=3, hours=i % 20) for i in range(300)],
            "predicted_ltv": [5.0 + i for i in range(300)],
            "email": [f"Person{i}@Example.com" for i in range(300)],
            "phone": [f"(650) 555-{i:04d}" for i in range(300)],
            "first_name": ["Mary-Jane"] * 300,
            "client_user_agent": ["Mozilla/5.0 (X11)"] * 300,
            "client_ip_address": ["2001:db8::7"] * 300,
        }
    )
    ud, _ = hash_identifiers(users)
    settings = EventSettings(
        mode="custom_value", spec_id="s", send_day=3, event_source_url="https://x.example"
    )
    users["send_at"] = users["signup_at"] + pd.Timedelta(days=settings.send_day)
    with Sandbox(now=now.to_pydatetime(), access_token=TOKEN) as sb:
        plan = build_events(users, ud, settings, now=sb.now())
        plan2 = build_events(users, ud, dataclasses.replace(settings, spec_id="s2"), now=sb.now())
        events = list(plan.events)
        bad = dict(events[5].payload) | {"custom_data": {"value": "NaN-ish", "currency": "USD"}}
        events[5] = type(events[5])(events[5].event_id, "pLTV_D3", events[5].event_time, 1.0, bad)
        sb.set_faults(rate=0.3, seed=2, latency_s=0.01)
        texts = []
        with caplog.at_level(logging.DEBUG), Ledger(tmp_path / "l.duckdb") as ledger:
            with CapiClient(client_config(sb.url, batch_size=50)) as client:
                deliver(events, plan.skipped, client=client, ledger=ledger, run=RunInfo(run_id="r", spec_id="s",
                        send_date=date(2026, 10, 30)))  # fmt: skip
            with CapiClient(client_config(sb.url, access_token="wrong-token-987")) as client:
                with pytest.raises(AccessDenied) as info:
                    deliver(plan2.events, [], client=client, ledger=ledger, run=RunInfo(run_id="r2", spec_id="s2",
                            send_date=date(2026, 10, 31)))  # fmt: skip
                texts.append(str(info.value))
            stored = ledger.con.execute("SELECT * FROM capi_events").fetchall()
    logged = caplog.text + "\n".join(texts) + repr(stored)
    assert "activation.batch_sent" in caplog.text
    secrets = [TOKEN, SECRET, "wrong-token-987", appsecret_proof(SECRET, TOKEN)]
    identifiers = list(users["email"]) + [e.lower() for e in users["email"]] + ["Mary-Jane", "maryjane"]
    hashes = {v for col in ud.columns for v in ud[col].dropna() if len(str(v)) == 64}
    for value in secrets + identifiers + sorted(hashes) + ["16505550001", "2001:db8::7", "Mozilla/5.0 (X11)"]:
        assert value not in logged
