"""The sample generator: deterministic per seed, and shaped like a real DTC/subscription business."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from pltv.sample import generate_sample, generate_tables
from pltv.sources import open_source

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tables():
    return generate_tables(20_000, seed=3)


def _digest(*frames: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for frame in frames:
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def test_same_seed_gives_same_data_and_other_seed_differs():
    """One seed, one dataset; another seed, another dataset."""
    a = generate_tables(2_000, seed=11)
    b = generate_tables(2_000, seed=11)
    c = generate_tables(2_000, seed=12)
    assert _digest(*a) == _digest(*b)
    assert _digest(*a) != _digest(*c)


def _matured_ltv(users: pd.DataFrame, tx: pd.DataFrame, end: str = "2026-11-01") -> pd.Series:
    matured = users[users["signup_at"] + pd.Timedelta(days=365) <= pd.Timestamp(end, tz="UTC")]
    t = tx.merge(matured[["user_id", "signup_at"]], on="user_id")
    t = t[(t["occurred_at"] >= t["signup_at"]) & (t["occurred_at"] < t["signup_at"] + pd.Timedelta(days=365))]
    return t.groupby("user_id")["revenue"].sum().reindex(matured["user_id"], fill_value=0.0)


def test_signups_span_two_years_with_growth_and_a_matured_year(tables):
    """Signups cover ~24 months, grow over time, and leave about a year of matured cohorts."""
    users, _, _ = tables
    span = users["signup_at"].max() - users["signup_at"].min()
    assert pd.Timedelta(days=700) < span <= pd.Timedelta(days=730)
    months = users["signup_at"].dt.tz_convert(None).dt.to_period("M").value_counts().sort_index()
    assert months.iloc[-6:].mean() > 1.5 * months.iloc[:6].mean()
    weekday = users["signup_at"].dt.day_of_week.value_counts(normalize=True)
    assert weekday.max() / weekday.min() > 1.1  # weekly seasonality
    matured = (users["signup_at"] + pd.Timedelta(days=365) <= pd.Timestamp("2026-11-01", tz="UTC")).mean()
    assert 0.25 < matured < 0.45


def test_revenue_is_zero_inflated_and_heavy_tailed(tables):
    """Most users never pay; the top decile holds most of the value; refunds are ~2-3 % of rows."""
    users, tx, _ = tables
    ltv = _matured_ltv(users, tx)
    payer_share = (ltv > 0).mean()
    assert 0.12 < payer_share < 0.32
    top_decile = ltv.sort_values(ascending=False).iloc[: len(ltv) // 10].sum() / ltv.sum()
    assert 0.7 < top_decile < 0.95
    payer_ltv = ltv[ltv > 0]
    assert payer_ltv.quantile(0.99) > 8 * payer_ltv.median()  # whales
    refund_share = (tx["revenue"] < 0).mean()
    assert 0.015 < refund_share < 0.04


def test_acquisition_attributes_shift_value(tables):
    """Channel, platform and country change mean LTV."""
    users, tx, _ = tables
    ltv = _matured_ltv(users, tx).rename("ltv")
    frame = users.set_index("user_id").join(ltv, how="inner")
    by_platform = frame.groupby("platform")["ltv"].mean()
    assert by_platform["ios"] > 1.3 * by_platform["android"]
    by_channel = frame.groupby("channel")["ltv"].mean()
    assert by_channel["referral"] > 1.3 * by_channel["affiliate"]


def test_early_behaviour_carries_signal_about_later_value(tables):
    """Users with early add_to_cart events are worth more later, but not deterministically."""
    users, tx, events = tables
    ltv = _matured_ltv(users, tx).rename("ltv")
    early = events.merge(users[["user_id", "signup_at"]], on="user_id")
    early = early[(early["occurred_at"] < early["signup_at"] + pd.Timedelta(days=3))]
    carts = early[early["event_name"] == "add_to_cart"].groupby("user_id").size().rename("carts")
    frame = pd.concat([ltv, carts], axis=1).dropna(subset=["ltv"]).fillna({"carts": 0})
    with_cart = frame.loc[frame["carts"] > 0, "ltv"].mean()
    without = frame.loc[frame["carts"] == 0, "ltv"].mean()
    assert with_cart > 1.5 * without
    assert (frame.loc[frame["carts"] > 0, "ltv"] == 0).mean() > 0.3  # noisy: many carts never convert


def test_identifier_coverage_and_mess_are_realistic(tables):
    """Identifiers have realistic coverage, formats and mess."""
    users, _, _ = tables
    coverage = users.notna().mean()
    assert 0.85 < coverage["email"] < 0.95
    assert 0.5 < coverage["phone"] < 0.75
    assert 0.9 < coverage["external_id"] <= 1.0
    assert 0.01 < 1 - users["consent"].mean() < 0.06
    emails = users["email"].dropna()
    assert (emails != emails.str.strip()).mean() > 0.05  # whitespace
    assert (emails != emails.str.lower()).mean() > 0.05  # mixed case
    phones = users["phone"].dropna()
    assert phones.str.startswith("+").mean() > 0.1 and (~phones.str.startswith("+")).mean() > 0.3
    states = users.loc[users["country"] == "US", "state"].dropna()
    assert states.str.len().eq(2).mean() > 0.3 and states.str.len().gt(2).mean() > 0.3
    web = users[users["platform"] == "web"]
    assert web["fbp"].dropna().str.fullmatch(r"fb\.1\.\d{13}\.\d+").all()
    assert web["fbc"].dropna().str.fullmatch(r"fb\.1\.\d{13}\.IwAR\w+").all()
    assert web["conversion_event_id"].notna().mean() > 0.9
    assert (web["conversion_sent_at"] >= web["signup_at"]).all()
    assert users.loc[users["platform"] != "web", "conversion_event_id"].isna().all()


def test_written_sample_is_a_valid_source(tmp_path):
    """generate_sample writes a folder that passes the data contract, with its export mess counted."""
    summary = generate_sample(tmp_path / "s", n_users=3_000, seed=5)
    with open_source(tmp_path / "s") as src:
        assert src.quality.users == summary["users"] == 3_000
        assert src.quality.transactions_raw == summary["transactions"]
        assert src.quality.dropped.get("transactions: duplicate transaction_id", 0) > 0
    assert (tmp_path / "s" / "transactions").is_dir()


def test_committed_sample_is_small_and_valid():
    """data/sample is the ~20k-user sample the demo and tests use, a few MB at most."""
    folder = REPO / "data" / "sample"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 6 * 1024 * 1024
    with open_source(folder) as src:
        assert src.quality.users == 20_000
