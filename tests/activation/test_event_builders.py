"""Event builders and Meta's rules: modes, skips with reasons, local pre-validation, EMQ estimate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import build_event, build_one, user_data_records, with_send_at

from activation.client import chunk
from activation.errors import EventSettingsError
from activation.events import PRESEND_REASONS, build_events, presend_skips
from activation.identity import hash_identifiers
from activation.meta import validate_event
from activation.quality import estimate_match_quality
from activation.settings import EventSettings, event_id_for
from activation.types import PlannedEvent, SkippedEvent

NOW = datetime(2026, 10, 30, tzinfo=UTC)
UD = {"em": "a" * 64, "client_user_agent": "Mozilla/5.0", "client_ip_address": "2001:db8::1"}
CUSTOM = EventSettings(
    mode="custom_value", spec_id="spec-1", send_day=3, event_source_url="https://shop.example"
)


def _user(**kw):
    base = {
        "user_id": "u1",
        "signup_at": "2026-10-26T12:00:00",
        "predicted_ltv": 123.456,
        "client_user_agent": "Mozilla/5.0",  # raw: website events need it (checked before match keys)
    }
    return base | kw


def test_custom_value_event_carries_value_currency_and_send_moment():
    """custom_value sends pLTV_D{d} at signup + send_day with value and currency."""
    ev = build_one(_user(), UD, CUSTOM, now=NOW)
    assert isinstance(ev, PlannedEvent)
    p = ev.payload
    assert p["event_name"] == "pLTV_D3" and p["event_time"] == int(
        datetime(2026, 10, 29, 12, tzinfo=UTC).timestamp()
    )
    assert p["custom_data"] == {"currency": "USD", "value": 123.46, "predicted_ltv": 123.46}
    assert p["event_id"] == event_id_for("spec-1", "u1") and "u1" not in p["event_id"]
    assert p["action_source"] == "website" and p["event_source_url"] == "https://shop.example"


def test_event_id_is_deterministic_and_spec_specific():
    """Same (spec, user) gives the same id; another spec gives another."""
    assert event_id_for("s", 1) == event_id_for("s", 1) != event_id_for("t", 1)


def test_append_value_references_the_original_conversion():
    """AppendValue carries predicted_ltv and the conversion's event name and ids."""
    settings = EventSettings(
        mode="append_value", spec_id="s", send_day=3, event_source_url="https://x.example"
    )
    user = _user(
        conversion_event_name="Purchase", conversion_event_id="ord-9", conversion_sent_at="2026-10-26T12:00"
    )
    ev = build_one(user, UD, settings, now=NOW)
    assert isinstance(ev, PlannedEvent)
    assert ev.payload["event_name"] == "AppendValue"
    assert ev.payload["original_event_data"] == {"event_name": "Purchase", "event_id": "ord-9"}
    assert ev.payload["custom_data"] == {"currency": "USD", "predicted_ltv": 123.46}


@pytest.mark.parametrize(
    ("user", "ud", "settings", "reason"),
    [
        (_user(consent=False), UD, CUSTOM, "no_consent"),
        (_user(predicted_ltv=0.0), UD, CUSTOM, "non_positive_value"),
        (_user(), {}, CUSTOM, "no_match_key"),
        (_user(signup_at="2026-10-10"), UD, CUSTOM, "too_old"),
        (_user(signup_at="2026-10-29"), UD, CUSTOM, "in_future"),
        (
            _user(),
            UD,
            EventSettings(mode="threshold", spec_id="s", send_day=3, threshold=500.0),
            "below_threshold",
        ),
        (
            _user(conversion_event_name="Purchase", conversion_event_id="x", conversion_sent_at="2026-10-01"),
            UD,
            EventSettings(mode="append_value", spec_id="s", send_day=3, event_source_url="https://x.example"),
            "outside_append_window",
        ),
        (
            _user(),
            UD,
            EventSettings(mode="append_value", spec_id="s", send_day=3, event_source_url="https://x.example"),
            "missing_conversion_ids",
        ),
        (_user(), {"fn": "a" * 64, "ge": "b" * 64}, CUSTOM, "insufficient_customer_information"),
        (_user(), {"em": "a" * 64}, CUSTOM, "missing_client_user_agent"),  # raw UA not in user_data
        # no user agent / no URL come before the match keys: such a user's identifiers are never needed
        (_user(client_user_agent=None), {}, CUSTOM, "missing_client_user_agent"),
        (_user(client_user_agent=" "), UD, CUSTOM, "missing_client_user_agent"),
        (
            _user(),
            {},
            EventSettings(mode="custom_value", spec_id="s", send_day=3),
            "missing_event_source_url",
        ),
        (
            _user(client_user_agent=None),
            {},
            EventSettings(mode="custom_value", spec_id="s", send_day=3, action_source="system_generated"),
            "no_match_key",
        ),
    ],
)
def test_unsendable_users_are_skipped_with_a_reason(user, ud, settings, reason):
    """Every rule Meta (or the design) would refuse becomes a skip with its reason, never a bad event."""
    out = build_one(user, ud, settings, now=NOW)
    assert isinstance(out, SkippedEvent) and out.reason == reason
    assert out == build_event(user, ud, settings, now=NOW)  # the per-row reference agrees
    users = with_send_at(pd.DataFrame([user]), settings)
    presend = presend_skips(users, settings, now=NOW).iloc[0]
    assert presend in (reason, None) and (presend is None or reason in PRESEND_REASONS)


def test_ldu_user_gets_limited_data_use_with_geolocation():
    """An LDU user's event carries ['LDU'] with country and state 0 (Meta geolocates)."""
    ev = build_one(_user(ldu=True), UD, CUSTOM, now=NOW)
    assert ev.payload["data_processing_options"] == ["LDU"]
    assert ev.payload["data_processing_options_country"] == 0 == ev.payload["data_processing_options_state"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mode": "other"}, "mode"),
        ({"currency": "XYZ"}, "ISO 4217"),
        ({"mode": "threshold"}, "threshold"),
        ({"mode": "append_value", "event_name": "Purchase"}, "AppendValue"),
        ({"event_name": "bad name!"}, "event_name"),
        ({"action_source": "app"}, "needs app_data"),
    ],
)
def test_settings_refuse_what_meta_would_reject(kw, match):
    """EventSettings fail fast on an impossible design."""
    with pytest.raises(EventSettingsError, match=match):
        EventSettings(**({"mode": "custom_value", "spec_id": "s", "send_day": 1} | kw))


def test_validate_event_rejects_unhashed_email_and_old_events():
    """Unhashed hashed-keys and >7-day-old events are rejected with code 100 and Meta's subcode."""
    good = dict(build_one(_user(), UD, CUSTOM, now=NOW).payload)
    assert validate_event(good, now=NOW) is None
    bad = good | {"user_data": {"em": "someone@example.com", "client_user_agent": "x"}}
    assert validate_event(bad, now=NOW).reason == "unhashed_user_data"
    old = good | {"event_time": good["event_time"] - 9 * 86400}
    r = validate_event(old, now=NOW)
    assert (r.code, r.subcode) == (100, 2804003)


def test_build_events_from_frames_skips_and_estimates_match_quality():
    """A frame of users becomes events + skips, with an EMQ estimate labelled as such."""
    users = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "signup_at": pd.to_datetime(["2026-10-26", "2026-10-26", "2026-10-26"]),
            "predicted_ltv": [10.0, 20.0, 30.0],
            "email": ["a@x.com", None, "c@x.com"],
            "client_user_agent": ["UA", "UA", None],
            "consent": [True, True, True],
        }
    )
    users = with_send_at(users, CUSTOM)
    ud, _ = hash_identifiers(users[["email", "client_user_agent"]])
    plan = build_events(users, ud, CUSTOM, now=NOW)
    assert [e.event_id for e in plan.events] == [event_id_for("spec-1", "a")]
    assert plan.skip_reasons() == {"insufficient_customer_information": 1, "missing_client_user_agent": 1}
    assert plan.match_quality.coverage["em"] == 1.0 and "estimate" in plan.match_quality.label


def test_match_quality_estimate_is_bounded():
    """The estimate is 0 with no keys and 10 with every weighted key."""
    assert estimate_match_quality([{}]).estimated_score == 0
    from activation.quality import MATCH_KEY_WEIGHTS

    assert estimate_match_quality([dict.fromkeys(MATCH_KEY_WEIGHTS, "x")]).estimated_score == 10


@given(n=st.integers(0, 3000), size=st.integers(1, 1000))
def test_batches_partition_the_input(n, size):
    """Chunks are ordered, at most size long, and concatenate back to the input."""
    items = list(range(n))
    parts = chunk(items, size)
    assert all(0 < len(p) <= size for p in parts)
    assert [x for p in parts for x in p] == items


def _messy_users(n: int, seed: int) -> pd.DataFrame:
    """Sample users re-timed around NOW, with missing/zero/negative values and odd dtypes mixed in."""
    from pltv.sample import generate_tables

    users, _, _ = generate_tables(n, seed=seed)
    rng = np.random.default_rng(seed)
    now = pd.Timestamp(NOW)
    users["signup_at"] = now - pd.to_timedelta(rng.integers(0, 12 * 86_400_000_000, n), unit="us")
    users.loc[rng.random(n) < 0.03, "signup_at"] = pd.NaT
    sent = now - pd.to_timedelta(rng.integers(0, 10 * 86_400, n), unit="s")
    users["conversion_sent_at"] = users["conversion_sent_at"].where(users["conversion_sent_at"].isna(), sent)
    value = np.round(rng.gamma(2.0, 40.0, n), 3)
    value[rng.random(n) < 0.05] = np.nan
    value[rng.random(n) < 0.05] = 0.0
    value[rng.random(n) < 0.03] = -5.0
    users["predicted_ltv"] = value
    return users


def _per_row(users, user_data, settings):
    uds = user_data_records(user_data.reindex(users.index))
    return [
        build_event(u, ud, settings, now=NOW) for u, ud in zip(users.to_dict("records"), uds, strict=True)
    ]


SETTINGS_UNDER_TEST = [
    CUSTOM,
    EventSettings(mode="custom_value", spec_id="s2", send_day=2, include_predicted_ltv=False),
    EventSettings(
        mode="threshold", spec_id="s3", send_day=1, threshold=60.0, event_source_url="https://t.example"
    ),
    EventSettings(mode="append_value", spec_id="s4", send_day=3, event_source_url="https://x.example"),
]


@pytest.mark.filterwarnings("ignore:Discarding nonzero nanoseconds")  # build_event's to_pydatetime
@pytest.mark.parametrize("settings", SETTINGS_UNDER_TEST, ids=lambda s: f"{s.mode}-{s.spec_id}")
@pytest.mark.parametrize("signup_as", ["datetime_utc", "datetime_naive", "datetime_ns_berlin", "iso_strings"])
def test_column_builder_matches_the_per_row_builder(settings, signup_as):
    """build_events gives exactly build_event's payloads, skips and order, row by row, on messy users."""
    users = _messy_users(1500, seed=7)
    if signup_as == "datetime_naive":
        users["signup_at"] = users["signup_at"].dt.tz_localize(None)
    elif signup_as == "datetime_ns_berlin":
        users["signup_at"] = users["signup_at"].dt.tz_convert("Europe/Berlin").dt.as_unit("ns")
        users["signup_at"] += pd.to_timedelta(np.arange(len(users)) % 1000, unit="ns")
    elif signup_as == "iso_strings":
        users["signup_at"] = users["signup_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype(object)
    users.loc[users.index[3::61], "client_user_agent"] = " "  # blank: missing, like a null
    users = with_send_at(users, settings)
    ud, _ = hash_identifiers(users, default_region="US")
    # a few user_data values that validate_event must refuse: unhashed, empty list, wrong type
    ud.loc[ud.index[::97], "em"] = "someone@example.com"
    ud.loc[ud.index[5::89], "ph"] = pd.Series([[]] * len(ud.index[5::89]), index=ud.index[5::89])
    ud.loc[ud.index[7::83], "client_user_agent"] = 12
    plan = build_events(users, ud, settings, now=NOW)
    expected = _per_row(users, ud, settings)
    got = {e.event_id: e for e in [*plan.events, *plan.skipped]}
    assert len(got) == len(expected) == len(plan.events) + len(plan.skipped)
    assert [e.event_id for e in plan.events] == [e.event_id for e in expected if isinstance(e, PlannedEvent)]
    for want in expected:
        have = got[want.event_id]
        assert type(have) is type(want) and have == want  # payload: compared below, with key order
        if isinstance(want, PlannedEvent):
            assert json.dumps(have.payload) == json.dumps(want.payload)
    reasons = plan.skip_reasons()
    assert len(reasons) >= 4 and len(plan.events) > 50  # the sample exercises many rules
    assert reasons.get("unhashed_user_data") and reasons.get("bad_user_data")
    assert reasons.get("missing_client_user_agent") and reasons.get("no_match_key") is None
    assert bool(reasons.get("missing_event_source_url")) == (settings.event_source_url is None)
    # the reasons that need no user_data come first, and are exactly presend_skips' (column-wise)
    presend = presend_skips(users, settings, now=NOW)
    for want, pre in zip(expected, presend.tolist(), strict=True):
        got_reason = getattr(want, "reason", None)
        assert pre == got_reason if pre is not None else got_reason not in PRESEND_REASONS
    # user_data only for the users presend_skips leaves sendable: the same plan
    eligible = presend.isna()
    assert 0 < eligible.sum() < len(users)
    assert build_events(users, ud[eligible], settings, now=NOW) == plan


def test_column_builder_matches_with_object_columns_and_missing_optional_columns():
    """Object dtypes (values as strings, consent as 0/1/None) and absent optional columns behave alike."""
    users = _messy_users(400, seed=11)[
        ["user_id", "signup_at", "predicted_ltv", "email", "client_user_agent"]
    ]
    users = users.astype(object)
    users["predicted_ltv"] = [None if v != v else str(v) for v in users["predicted_ltv"]]
    users["consent"] = [None, 1, 0, True] * 100
    users = with_send_at(users, CUSTOM)
    ud, _ = hash_identifiers(users[["email", "client_user_agent"]])
    plan = build_events(users, ud, CUSTOM, now=NOW)
    expected = _per_row(users, ud, CUSTOM)
    assert [(type(e), e) for e in [*plan.events, *plan.skipped]] == sorted(
        [(type(e), e) for e in expected], key=lambda p: not isinstance(p[1], PlannedEvent)
    )


def test_only_users_presend_skips_leaves_sendable_are_hashed():
    """presend_skips names every reason that needs no user_data, in the builders' order; hashing only
    the remaining users gives the same plan, and the others' identifiers are never normalized."""
    users = pd.DataFrame(
        {
            "user_id": ["ok", "no-consent", "no-ua", "blank-ua", "zero", "no-keys"],
            "signup_at": pd.to_datetime(["2026-10-26"] * 6, utc=True),
            "predicted_ltv": [10.0, 20.0, 30.0, 40.0, 0.0, 50.0],
            "consent": [True, False, True, True, True, True],
            "email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com", None],
            "client_user_agent": ["UA", "UA", None, "  ", "UA", "UA"],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    users = with_send_at(users, CUSTOM)
    skips = presend_skips(users, CUSTOM, now=NOW)
    assert skips.index.equals(users.index)
    assert skips.tolist() == [
        None,
        "no_consent",
        "missing_client_user_agent",
        "missing_client_user_agent",
        "non_positive_value",
        None,
    ]
    eligible = users[skips.isna()]
    ud, report = hash_identifiers(eligible[["email", "client_user_agent"]])
    assert report.rows == 2 and report.present["em"] == 1  # the four pre-skipped emails: never read
    plan = build_events(users, ud, CUSTOM, now=NOW)
    full, _ = hash_identifiers(users[["email", "client_user_agent"]])
    assert plan == build_events(users, full, CUSTOM, now=NOW)
    assert [e.event_id for e in plan.events] == [event_id_for("spec-1", "ok")]
    assert plan.skip_reasons() == {
        "no_consent": 1,
        "missing_client_user_agent": 2,
        "non_positive_value": 1,
        "insufficient_customer_information": 1,  # user agent only: the match-key checks come after
    }


def test_app_events_without_app_data_are_rejected_like_meta_does():
    """REFERENCE: app_data is required for app events; the validator (and so the sandbox) refuses them."""
    good = dict(build_one(_user(), UD, CUSTOM, now=NOW).payload)
    assert validate_event(good | {"action_source": "app"}, now=NOW).reason == "missing_app_data"


def test_events_within_the_send_margin_of_the_age_limit_are_skipped():
    """An event 7 days minus 30 minutes old when built would be past Meta's limit after a slow batch."""
    event_time = NOW - timedelta(days=7) + timedelta(minutes=30)
    user = _user(signup_at=(event_time - timedelta(days=CUSTOM.send_day)).isoformat())
    assert build_one(user, UD, CUSTOM, now=NOW).reason == "too_old"
    fresher = _user(signup_at=(event_time + timedelta(hours=2) - timedelta(days=CUSTOM.send_day)).isoformat())
    assert not isinstance(build_one(fresher, UD, CUSTOM, now=NOW), SkippedEvent)


def test_plan_events_reports_what_hashing_dropped_for_the_sendable_users():
    """plan_events carries the IdentityReport of the users it hashed: counts per key and reason, no values."""
    from activation.events import plan_events

    users = with_send_at(
        pd.DataFrame(
            {
                "user_id": ["a", "b", "c"],
                "signup_at": pd.to_datetime(["2026-10-26"] * 3),
                "predicted_ltv": [10.0, 20.0, 0.0],
                "email": ["a@x.com", "not-an-email", "also-bad"],
                "client_user_agent": ["UA", "UA", "UA"],
                "client_ip_address": ["1.2.3.4"] * 3,
            }
        ),
        CUSTOM,
    )
    plan = plan_events(users, CUSTOM, now=NOW, id_columns=["email", "client_user_agent", "client_ip_address"])
    assert plan.identity.rows == 2  # user c is skipped (value 0) before hashing
    assert plan.identity.dropped == {("em", "invalid_format"): 1}
    assert [e.event_id for e in plan.events] == [event_id_for("spec-1", "a"), event_id_for("spec-1", "b")]
