"""Every value Meta would refuse is refused here too: the sandbox answers like Meta (event name length,
Purchase without value, an IP that is not one, an absurd value, a URL that is not http(s)), and the builder
drops corrupt identifiers per key (counted) and skips events with an unusable URL or value (counted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
import requests
from capi_helpers import TOKEN, make_events
from oracle import build_one

from activation.identity import hash_identifiers
from activation.meta import validate_event
from activation.settings import EventSettings
from activation.types import SkippedEvent

NOW = datetime(2026, 10, 30, tzinfo=UTC)
CUSTOM = EventSettings(
    mode="custom_value", spec_id="spec-1", send_day=3, event_source_url="https://shop.example"
)
UD = {"em": "a" * 64, "client_user_agent": "Mozilla/5.0", "client_ip_address": "2001:db8::1"}


def _one(**changes):
    event = make_events(1)[0].payload
    for key, value in changes.items():
        if key == "custom_data":
            event["custom_data"] = value
        elif key.startswith("ud_"):
            event["user_data"][key[3:]] = value
        else:
            event[key] = value
    return event


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_name": "E" * 2000}, "bad_event_name"),
        ({"event_name": "Purchase", "custom_data": {"currency": "USD"}}, "missing_value"),
        ({"ud_client_ip_address": "999.9.9.9"}, "bad_client_ip_address"),
        ({"ud_client_ip_address": ["203.0.113.9", "999.9.9.9"]}, "bad_client_ip_address"),
        ({"custom_data": {"currency": "USD", "value": 1e300}}, "bad_value"),
        ({"event_source_url": "javascript:alert(1)"}, "bad_event_source_url"),
        ({"event_source_url": "https://shop.example/?" + "x" * 18_000}, "bad_event_source_url"),
    ],
)
def test_sandbox_refuses_what_meta_documents_as_invalid(sb, changes, reason):
    """Each of these rejects the whole batch with code 100, as Meta would; nothing is kept."""
    event = _one(**changes)
    assert validate_event(event, now=datetime.now(UTC)).reason == reason
    r = requests.post(f"{sb.url}/v26.0/123/events", json={"data": [event], "access_token": TOKEN}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["code"] == 100
    assert sb.events() == []


def test_sandbox_accepts_a_purchase_with_value_and_a_valid_ipv4(sb):
    """The strict rules do not refuse good events."""
    event = _one(event_name="Purchase", ud_client_ip_address="203.0.113.9")
    r = requests.post(f"{sb.url}/v26.0/123/events", json={"data": [event], "access_token": TOKEN}, timeout=5)
    assert r.status_code == 200, r.text


def test_corrupt_identifiers_are_dropped_per_key_and_counted():
    """An email with a NUL byte or an emoji, a 20 KB user agent, a zero-width character: dropped for that key
    (never hashed or sent), counted by reason; the user's other keys are kept."""
    users = pd.DataFrame(
        {
            "email": [
                "jane\x00@example.com",
                "jane😀@example.com",
                "ok@example.com",
                "bob\u200b@example.com",
            ],
            "client_user_agent": ["Mozilla/5.0 " + "x" * 20_000, "Mozilla/5.0", "Mozilla/5.0", "Mozilla/5.0"],
            "phone": ["+14155550199"] * 4,
        }
    )
    user_data, report = hash_identifiers(users, parallel=False)
    assert user_data["em"].isna().tolist() == [True, True, False, True]
    assert user_data["client_user_agent"].isna().tolist() == [True, False, False, False]
    assert user_data["ph"].notna().all()
    assert report.dropped[("em", "control_characters")] == 2
    assert report.dropped[("em", "invalid_characters")] == 1
    assert report.dropped[("client_user_agent", "too_long")] == 1


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://shop.example/?" + "x" * 18_000, "/checkout"])
def test_an_unusable_event_source_url_skips_the_event_with_a_reason(url):
    """javascript:, an 18 KB URL or a bare path is never sent: the event is skipped as invalid_event_source_url."""
    user = {"user_id": "u1", "signup_at": "2026-10-26T12:00:00", "predicted_ltv": 12.0,
            "client_user_agent": "Mozilla/5.0", "event_source_url": url}  # fmt: skip
    event = build_one(user, UD, CUSTOM, now=NOW)
    assert isinstance(event, SkippedEvent) and event.reason == "invalid_event_source_url"


def test_an_absurd_value_is_skipped_not_sent():
    """A predicted value of 1e300 (a broken model or mapping) is skipped as implausible_value."""
    user = {"user_id": "u1", "signup_at": "2026-10-26T12:00:00", "predicted_ltv": 1e300,
            "client_user_agent": "Mozilla/5.0"}  # fmt: skip
    event = build_one(user, UD, CUSTOM, now=NOW)
    assert isinstance(event, SkippedEvent) and event.reason == "implausible_value"
