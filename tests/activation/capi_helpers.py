"""Test helpers: client configs with test-speed backoff and events that Meta's rules accept."""

from __future__ import annotations

import time

from activation.client import ClientConfig
from activation.settings import event_id_for
from activation.types import PlannedEvent

TOKEN = "EAAB-test-token-0123456789"
SECRET = "app-secret-abcdef"


def client_config(url: str, **kw) -> ClientConfig:
    """A client config with test-speed backoff."""
    base = dict(
        pixel_id="123", access_token=TOKEN, app_secret=SECRET, graph_url=url, backoff_base_s=0.005,
        backoff_cap_s=0.05, max_attempts=12, max_workers=4,
    )  # fmt: skip
    return ClientConfig(**(base | kw))


def make_events(n: int, *, spec: str = "spec-1", now: float | None = None) -> list[PlannedEvent]:
    """n valid custom_value events with hashed identifiers."""
    t = int((now or time.time()) - 3600)
    out = []
    for i in range(n):
        eid = event_id_for(spec, f"user-{i}")
        payload = {
            "event_name": "pLTV_D3",
            "event_time": t,
            "event_id": eid,
            "action_source": "website",
            "event_source_url": "https://shop.example",
            "user_data": {
                "em": f"{i:064x}",
                "client_user_agent": "Mozilla/5.0",
                "client_ip_address": "2001:db8::1",
            },
            "custom_data": {"value": 10.0 + i % 7, "currency": "USD", "predicted_ltv": 10.0 + i % 7},
        }
        out.append(PlannedEvent(eid, "pLTV_D3", t, 10.0 + i % 7, payload))
    return out
