"""Identity normalization and hashing: Meta's documented rules, the shared vectors, invariants."""

from __future__ import annotations

import hashlib
import json
import string
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import user_data_for, user_data_records

from activation import identity, normalization, workers
from activation.errors import InvalidIdentifier
from activation.identity import hash_identifiers
from activation.normalization import hash_normalized, normalize

VECTORS = Path(__file__).resolve().parents[2] / ".." / "shared" / "capi" / "normalization_vectors.json"
CASES = json.loads(VECTORS.read_text())["cases"] if VECTORS.exists() else []


@pytest.mark.skipif(not CASES, reason="../shared/capi/normalization_vectors.json not beside the clone")
@pytest.mark.parametrize("case", CASES, ids=[f"{c['field']}:{c['input'].strip()}" for c in CASES])
def test_normalization_vector_matches_documented_rule(case):
    """Every shared vector normalizes and hashes to Meta's documented value, also where the SDK differs."""
    norm = normalize(case["field"], case["input"], default_region=case.get("default_region"))
    assert norm == case["expected_normalized"]
    assert hash_normalized(case["field"], norm) == case["expected_sha256"]


def test_vectors_are_all_present():
    """The acceptance set is the 45 shared cases."""
    assert len(CASES) == 45


@pytest.mark.parametrize(
    ("key", "raw", "country", "expected"),
    [
        ("ph", "07911 123456", "gb", "447911123456"),
        ("ph", "(650) 555-1212", None, "16505551212"),
        ("db", "Feb 16, 1997", None, "19970216"),
        ("db", "16.02.1997", None, "19970216"),
        ("db", "31/12/1990", None, "19901231"),
        ("ge", "Woman", None, "f"),
        ("ge", " MALE ", None, "m"),
        ("country", "DEU", None, "de"),
        ("country", "Germany", None, "de"),
        ("st", "Texas", "us", "tx"),
        ("st", "Bayern", "de", "bayern"),
        ("zp", "2134", "us", "02134"),
        ("fn", "van der Berg", None, "vanderberg"),
        ("external_id", " CRM-42 ", None, "crm-42"),
        ("fbc", "fb.1.1596403881668.IwAR2xYzAbC", None, "fb.1.1596403881668.IwAR2xYzAbC"),
    ],
)
def test_common_forms_normalize_to_meta_format(key, raw, country, expected):
    """Common real-world spellings map to Meta's format."""
    assert normalize(key, raw, country=country) == expected


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("em", "not-an-email", "invalid_format"),
        ("fn", "   ", "empty"),
        ("fn", "--", "no_letters"),
        ("ge", "Xyzzy", "unknown_value"),
        ("db", "1850-01-01", "year_out_of_range"),
        ("db", "2099-12-31", "year_out_of_range"),
        ("db", "1997-02-30", "invalid_date"),
        ("country", "Atlantis", "unknown_country"),
        ("ph", "12", "invalid_number"),
        ("client_ip_address", "999.1.1.1", "invalid_ip"),
        ("fbc", "IwAR2xYz", "invalid_format"),
    ],
)
def test_invalid_value_raises_reason_without_value(key, raw, reason):
    """An unusable value is reported by key and reason, and the message never carries the value."""
    with pytest.raises(InvalidIdentifier) as info:
        normalize(key, raw)
    assert info.value.reason == reason
    assert raw.strip() not in str(info.value) or not raw.strip()


def test_md5_is_not_taken_as_already_hashed():
    """Only SHA-256 (64-hex) passes through; a 32-hex external_id is hashed like any other id."""
    md5 = hashlib.md5(b"x").hexdigest()
    assert (
        hash_normalized("external_id", normalize("external_id", md5))
        == hashlib.sha256(md5.encode()).hexdigest()
    )


@pytest.mark.parametrize("key", ["client_ip_address", "client_user_agent", "fbc", "fbp", "madid", "anon_id"])
def test_plain_keys_are_never_hashed(key):
    """Keys Meta wants in clear are sent as normalized, not hashed."""
    raw = {"client_ip_address": "2001:db8::1", "fbc": "fb.1.1.AbC", "fbp": "fb.1.1.123"}.get(key, "Ab-12 x")
    assert hash_normalized(key, normalize(key, raw)) == raw


def test_user_data_for_drops_only_the_bad_key():
    """A bad phone drops ph for that user and keeps the other keys."""
    data, drops = user_data_for({"email": "A@B.co", "phone": "12", "country": "USA", "fbp": "fb.1.2.3"})
    assert set(data) == {"em", "country", "fbp"}
    assert data["country"] == hashlib.sha256(b"us").hexdigest()
    assert drops == [("ph", "invalid_number")]


def test_hash_identifiers_uses_each_users_country_for_phone():
    """A national number takes its user's country code, else the default region."""
    users = pd.DataFrame(
        {
            "phone": ["07911 123456", "(650) 555-1212", None],
            "country": ["UK", None, "us"],
            "email": ["", "x", None],
        }
    )
    frame, report = hash_identifiers(users, default_region="US")
    assert frame["ph"].tolist() == [
        hashlib.sha256(b"447911123456").hexdigest(),
        hashlib.sha256(b"16505551212").hexdigest(),
        None,
    ]
    assert report.kept["ph"] == 2 and report.present["em"] == 1
    assert report.dropped[("em", "invalid_format")] == 1
    assert frame["em"].isna().all()


def test_columnar_and_per_row_paths_agree():
    """hash_identifiers and user_data_for produce the same user_data for every row."""
    users = pd.DataFrame(
        {
            "email": [" Jo@X.com", "bad", "k@y.org"],
            "phone": ["+44 20 7946 0958", "650.555.1212", "0"],
            "state": ["California", "NSW", " n.y. "],
            "zip": ["94035-1234", "2000", "10001"],
            "country": ["United States", "Australia", "USA"],
            "fbc": ["fb.1.1.AbCd", None, "fb.1.2.XyZ"],
        }
    )
    frame, _ = hash_identifiers(users)
    rows = user_data_records(frame)
    for i, rec in enumerate(users.to_dict("records")):
        assert rows[i] == user_data_for(rec)[0]


def test_hashing_100k_rows_takes_seconds_not_minutes():
    """The columnar path handles a daily job's 100k users in a few seconds."""
    n = 100_000
    users = pd.DataFrame(
        {
            "email": [f" User{i}@Example.com " for i in range(n)],
            "phone": [f"(415) 555-{i % 10000:04d}" for i in range(n)],
            "first_name": ["Mary-Jane"] * n,
            "city": ["St. Louis"] * n,
            "state": ["California"] * n,
            "zip": ["94035-1234"] * n,
            "country": ["USA"] * n,
            "external_id": [f"u{i}" for i in range(n)],
        }
    )
    start = time.perf_counter()
    frame, report = hash_identifiers(users)
    assert time.perf_counter() - start < 10
    assert report.kept["em"] == n and frame.shape == (n, 8)


_HASHED_TEXT_KEYS = ["em", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"]


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(_HASHED_TEXT_KEYS), raw=st.text(max_size=30))
def test_normalization_is_idempotent_on_its_output(key, raw):
    """normalize(normalize(x)) == normalize(x) whenever x is usable."""
    try:
        once = normalize(key, raw)
    except InvalidIdentifier:
        return
    assert normalize(key, once) == once


@settings(max_examples=200, deadline=None)
@given(
    digits=st.text(alphabet=string.digits, min_size=10, max_size=10), sep=st.sampled_from(["", "-", " ", "."])
)
def test_phone_normalization_is_idempotent_in_its_region(digits, sep):
    """A normalized phone number re-normalizes to itself."""
    raw = f"({digits[:3]}){sep}{digits[3:6]}{sep}{digits[6:]}"
    try:
        once = normalize("ph", raw, default_region="US")
    except InvalidIdentifier:
        return
    assert normalize("ph", once, default_region="US") == once


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(_HASHED_TEXT_KEYS + ["ph"]), raw=st.text(max_size=30))
def test_hashing_never_receives_an_empty_string(key, raw):
    """Whatever the input, a usable value is non-empty before it is hashed."""
    try:
        norm = normalize(key, raw)
    except InvalidIdentifier:
        return
    assert norm != ""
    assert len(hash_normalized(key, norm)) == 64


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(_HASHED_TEXT_KEYS + ["ph"]), data=st.binary(min_size=1, max_size=20))
def test_already_hashed_values_pass_through_unchanged(key, data):
    """A SHA-256 hex value is sent as is, never re-hashed."""
    digest = hashlib.sha256(data).hexdigest()
    assert hash_normalized(key, normalize(key, digest)) == digest
    assert hash_normalized(key, normalize(key, digest.upper())) == digest


def test_sha256_refuses_the_empty_string():
    """Hashing an empty value is a bug caught at the hash call."""
    with pytest.raises(InvalidIdentifier):
        normalization.sha256_hex("")


def test_phone_validity_shortcut_equals_libphonenumber():
    """_is_valid_phone answers exactly phonenumbers.is_valid_number, on sample and shared-code numbers."""
    import phonenumbers

    from pltv.sample import generate_tables

    users, _, _ = generate_tables(3000, seed=4)
    raw = [(p, c) for p, c in zip(users["phone"], users["country"], strict=True) if isinstance(p, str)]
    raw += [
        (f"+1 {a} 555 {i:04d}", None) for a in ("242", "876", "649", "416", "205", "800") for i in range(40)
    ]
    raw += [(f"+44 {p}", None) for p in ("1624 412345", "1534 712345", "1481 712345", "7700 900123", "20 1")]
    raw += [(f"+61 {p}", None) for p in ("8 9162 1234", "8 9164 1234", "4 1234 5678", "2 1")]
    numbers = []
    for text, country in raw:
        try:
            numbers.append(phonenumbers.parse(text, country))
        except phonenumbers.NumberParseException:
            continue
    assert len(numbers) > 1500
    verdicts = [normalization._is_valid_phone(n) for n in numbers]
    assert verdicts == [phonenumbers.is_valid_number(n) for n in numbers]
    assert any(verdicts) and not all(verdicts)


@pytest.mark.skipif(not workers._FORK_AVAILABLE, reason="worker processes need fork")
def test_parallel_path_gives_the_serial_result(monkeypatch):
    """Values normalized and hashed in worker processes give exactly the serial frame and report."""
    from pltv.sample import generate_tables

    users, _, _ = generate_tables(4000, seed=7)
    users.loc[users.index[:5], "phone"] = ["  ", "12", "+44 20 7946 0958", "e" * 64, "0044 20 7946 0958"]
    users.loc[users.index[:3], "email"] = ["  ", "bad", "A" * 64]
    serial = hash_identifiers(users, default_region="US", parallel=False)
    monkeypatch.setattr(identity, "PARALLEL_MIN_UNIQUES", 100)
    monkeypatch.setattr(workers, "_TASK_SIZE", 300)
    monkeypatch.setattr(identity, "workers", lambda: 1)  # also on a one-CPU runner
    started = []
    real = identity.SharedWork.__init__
    monkeypatch.setattr(
        identity.SharedWork, "__init__", lambda self, *a: (started.append(1), real(self, *a))[1]
    )
    parallel = hash_identifiers(users, default_region="US")
    assert started, "the parallel path did not run"
    pd.testing.assert_frame_equal(parallel[0], serial[0])
    assert parallel[1] == serial[1]
    assert serial[1].dropped[("ph", "invalid_number")] >= 1


def test_small_inputs_never_start_worker_processes(monkeypatch):
    """Below PARALLEL_MIN_UNIQUES unique values, no process is forked."""

    def boom(*args, **kwargs):
        raise AssertionError("worker processes started for a small input")

    monkeypatch.setattr(identity, "SharedWork", boom)
    frame, _ = hash_identifiers(pd.DataFrame({"phone": ["(650) 555-1212"] * 50, "country": ["us"] * 50}))
    assert frame["ph"].notna().all()
