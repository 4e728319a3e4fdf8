"""The event designer: value mappings, each rule excluding a candidate, the choice, the EventSpec."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import build_event, user_data_for

from activation.design import (
    DATASET_RULE,
    Candidate,
    DesignOptions,
    Population,
    candidates,
    design,
    render_table,
    rules_broken,
    score,
)
from activation.design_io import population_stats, volume_note
from activation.settings import EventSettings
from activation.spec import EventSpec, SpecError, load_spec, save_spec
from activation.types import PlannedEvent
from activation.valuemap import KINDS, ValueMapping, fit_mapping
from pltv import metrics
from pltv.contract import MATCH_COLUMNS
from pltv.features import default_as_of
from pltv.sources import open_source

BIG = Population(weekly_signups=2_000, deliverable_share=0.9, append_share=0.5)
SAMPLE = "data/sample"
AS_OF = datetime(2026, 11, 1)


def _holdout(n: int = 4_000, skill: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """A zero-inflated, heavy-tailed holdout whose predictions know ``skill`` of the truth."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    payer = rng.random(n) < 1 / (1 + np.exp(-(-1.5 + z)))
    actual = np.where(payer, np.exp(3.5 + 0.8 * z + rng.normal(0, 0.6, n)), 0.0)
    early = np.where(payer & (rng.random(n) < 0.5), actual * 0.3, 0.0)
    noisy = skill * z + rng.normal(0, 1, n)
    pred = np.exp(2.0 + 0.9 * noisy)
    pred *= actual.sum() / pred.sum()
    return pd.DataFrame({"predicted_ltv": pred, "actual_ltv": actual, "actual_future": actual - early})


def _scores(candidate: Candidate, population: Population = BIG) -> dict:
    return score(candidate, _holdout(), population)


@pytest.mark.parametrize("kind", KINDS)
def test_value_mappings_are_monotone_positive_with_five_distinct_values(kind):
    """Every mapping keeps the order, never sends zero or less, and gives at least 5 distinct values."""
    h = _holdout()
    mapping = fit_mapping(kind, h["predicted_ltv"], h["actual_ltv"])
    grid = np.sort(np.concatenate([h["predicted_ltv"].to_numpy(), [0.0, -3.0, 1e6]]))
    values = mapping.apply(grid)
    assert np.all(np.diff(values) >= 0)
    assert values.min() > 0
    assert len(np.unique(mapping.apply(h["predicted_ltv"]))) >= 5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e5), min_size=20, max_size=200), st.sampled_from(KINDS))
def test_mappings_are_monotone_for_any_predictions(preds, kind):
    """Monotone and positive whatever the holdout looks like."""
    p = np.asarray(preds)
    mapping = fit_mapping(kind, p, p * 1.1)
    values = mapping.apply(np.sort(p))
    assert np.all(np.diff(values) >= 0) and values.min() > 0


def test_mapping_round_trips_through_its_dict():
    """A fitted mapping serializes to plain numbers and back to the same function."""
    h = _holdout()
    for kind in KINDS:
        m = fit_mapping(kind, h["predicted_ltv"], h["actual_ltv"])
        again = ValueMapping.from_dict(json.loads(json.dumps(m.to_dict())))
        assert np.array_equal(again.apply(h["predicted_ltv"]), m.apply(h["predicted_ltv"]))


def test_rule_too_few_distinct_values_excludes_a_candidate():
    """A value mapping with fewer than 5 distinct values breaks Meta's pLTV rule."""
    s = _scores(Candidate(3, "custom_value", "calibrated")) | {"distinct_values": 4.0}
    assert "distinct_values>=5" in rules_broken(
        Candidate(3, "custom_value", "calibrated"), s, BIG, DesignOptions()
    )


def test_rule_max_over_min_excludes_a_candidate():
    """Values whose max is under 3x their min break Meta's pLTV rule."""
    s = _scores(Candidate(3, "custom_value", "calibrated")) | {"max_over_min": 2.5}
    assert "max>=3xmin" in rules_broken(Candidate(3, "custom_value", "calibrated"), s, BIG, DesignOptions())


def test_rule_non_positive_values_exclude_a_candidate():
    """A zero or negative value breaks Meta's pLTV rule."""
    s = _scores(Candidate(3, "append_value", "calibrated")) | {"min_value": 0.0}
    assert "positive_values" in rules_broken(
        Candidate(3, "append_value", "calibrated"), s, BIG, DesignOptions()
    )


def test_rule_dataset_volume_excludes_a_small_dataset():
    """Fewer than 100 events a week for the dataset breaks Meta's pLTV requirement."""
    small = Population(weekly_signups=90, deliverable_share=1.0, append_share=1.0)
    cand = Candidate(1, "append_value", "calibrated")
    assert DATASET_RULE == "dataset>=100/week(each of 4)"
    assert DATASET_RULE in rules_broken(cand, score(cand, _holdout(), small), small, DesignOptions())


def _users_con(signups: list[datetime], **columns) -> duckdb.DuckDBPyConnection:
    """A ``users`` table of web signups the daily job can send (consent, keys, URL, conversion ids)."""
    n = len(signups)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "signup_at": signups,
            "email": [f"user{i}@example.com" for i in range(n)],
            "client_user_agent": ["Mozilla/5.0"] * n,
            "event_source_url": ["https://shop.example.com/signup"] * n,
            "consent": [True] * n,
            "conversion_event_name": ["CompleteRegistration"] * n,
            "conversion_event_id": [f"reg-{i}" for i in range(n)],
            "conversion_sent_at": [t + timedelta(seconds=30) for t in signups],
        }
        | columns
    )
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("CREATE TABLE users AS SELECT * FROM frame")
    return con


def test_dataset_rule_needs_100_in_each_of_the_last_four_weeks():
    """Meta asks for 100 conversions in each of the last 4 weeks: 440 in the last week alone break it."""
    cand = Candidate(1, "append_value", "calibrated")
    burst = population_stats(
        _users_con([AS_OF - timedelta(days=3, minutes=i) for i in range(440)]), as_of=AS_OF
    )
    assert burst.weekly_signups == 110 and burst.append_by_week == (0, 0, 0, 440)
    s = score(cand, _holdout(), burst)
    assert s["weekly_volume"] == 110 and s["weakest_week_volume"] == 0
    assert rules_broken(cand, s, burst, DesignOptions()) == [DATASET_RULE]  # the average alone would pass
    assert "weakest week 0 custom events, 0 AppendValue" in volume_note(burst, AS_OF)
    steady = [AS_OF - timedelta(days=1 + 7 * w, minutes=i) for w in range(4) for i in range(110)]
    even = population_stats(_users_con(steady), as_of=AS_OF)
    assert even.deliverable_by_week == (110,) * 4
    assert rules_broken(cand, score(cand, _holdout(), even), even, DesignOptions()) == []


def test_rule_learning_phase_scales_with_ad_sets():
    """Volume must cover ~50 optimization events per ad set per week."""
    pop = Population(weekly_signups=400, deliverable_share=1.0, append_share=1.0)
    cand = Candidate(1, "threshold", None, 0.10)  # ~40 events a week
    s = score(cand, _holdout(), pop)
    assert "learning>=50x1/week" in rules_broken(cand, s, pop, DesignOptions(ad_sets=1))
    cand = Candidate(1, "threshold", None, 0.50)  # ~200 a week: enough for 4 ad sets, not 5
    s = score(cand, _holdout(), pop)
    assert not any(r.startswith("learning") for r in rules_broken(cand, s, pop, DesignOptions(ad_sets=4)))
    assert "learning>=50x5/week" in rules_broken(cand, s, pop, DesignOptions(ad_sets=5))


def test_rule_append_value_needs_conversion_ids():
    """AppendValue is impossible without the conversion event ids in the data."""
    pop = dataclasses.replace(BIG, append_share=0.0)
    cand = Candidate(1, "append_value", "calibrated")
    assert "conversion_ids_present" in rules_broken(cand, score(cand, _holdout(), pop), pop, DesignOptions())


def test_append_value_at_send_day_zero_is_never_chosen():
    """AppendValue's event_time (signup + send day) must be later than the conversion's, the signup."""
    d0, d1 = Candidate(0, "append_value", "calibrated"), Candidate(1, "append_value", "calibrated")
    assert "append_after_conversion" in rules_broken(d0, _scores(d0), BIG, DesignOptions())
    assert "append_after_conversion" not in rules_broken(d1, _scores(d1), BIG, DesignOptions())
    for mode in ("auto", "append_value"):
        result = design({0: _holdout(), 1: _holdout()}, {0: ("m0", "1"), 1: ("m1", "1")}, BIG,
                        horizon_days=365, options=DesignOptions(mode=mode))  # fmt: skip
        d0_append = result.table[(result.table["send_day"] == 0) & (result.table["mode"] == "append_value")]
        assert len(d0_append) and not d0_append["eligible"].any()
        assert (result.winner["send_day"], result.winner["mode"]) != (0, "append_value")


def test_population_counts_only_events_the_daily_job_can_send():
    """A website event without event_source_url or client_user_agent, or without consent, is no volume."""
    url = "https://shop.example.com/signup"
    con = _users_con(
        [AS_OF - timedelta(days=2, minutes=i) for i in range(5)],
        event_source_url=[url, None, url, None, url],
        client_user_agent=["Mozilla/5.0", "Mozilla/5.0", None, None, "Mozilla/5.0"],
        consent=[True, True, True, True, False],
    )
    pop = population_stats(con, as_of=AS_OF)
    assert pop.deliverable_share == 0.2 and pop.append_share == 0.2
    assert pop.deliverable_by_week == pop.append_by_week == (0, 0, 0, 1)


def test_population_on_the_sample_matches_what_build_event_sends():
    """On the sample, the designer's shares are what build_event lets through at each user's d1 daily run."""
    with open_source(SAMPLE) as src:
        as_of = default_as_of(src.quality.data_end)
        pop = population_stats(src.con, as_of=as_of)
        users = src.con.execute(
            "SELECT * FROM users WHERE signup_at >= ? AND signup_at < ?", [as_of - timedelta(weeks=4), as_of]
        ).df()
    assert 0 < pop.deliverable_share < 1 and users["event_source_url"].isna().any()
    for mode, share, by_week in (
        ("custom_value", pop.deliverable_share, pop.deliverable_by_week),
        ("append_value", pop.append_share, pop.append_by_week),
    ):
        settings = EventSettings(mode=mode, spec_id="spec-test", send_day=1)
        sent = 0
        for user in users.to_dict("records"):
            send_at = pd.Timestamp(user["signup_at"]) + timedelta(days=1)
            run = (send_at.normalize() + timedelta(days=1, hours=1)).tz_localize("UTC")  # next daily run
            user_data, _ = user_data_for({k: user.get(k) for k in MATCH_COLUMNS})
            event = build_event(user | {"predicted_ltv": 10.0}, user_data, settings, now=run)
            sent += isinstance(event, PlannedEvent)
        assert sent == round(share * len(users)) == sum(by_week), mode


def test_rule_append_value_must_arrive_within_seven_days_counting_cadence():
    """A send day whose daily-job delivery lands past 7 days after the conversion is excluded."""
    ok, late = Candidate(5, "append_value", "calibrated"), Candidate(6, "append_value", "calibrated")
    assert "append_within_7d" not in rules_broken(ok, _scores(ok), BIG, DesignOptions())
    assert "append_within_7d" in rules_broken(late, _scores(late), BIG, DesignOptions())


def test_rule_custom_events_past_the_attribution_window_are_excluded():
    """A custom event fired after the 7-day click window cannot be attributed to optimize on."""
    late = Candidate(7, "custom_value", "calibrated")
    assert "attribution_window_7d" in rules_broken(late, _scores(late), BIG, DesignOptions())


def test_rule_custom_event_name_must_be_valid_and_not_standard():
    """A custom event reusing a standard name or with invalid characters is excluded."""
    cand = Candidate(1, "custom_value", "calibrated")
    for template in ("Purchase", "pLTV D{send_day}!"):
        broken = rules_broken(cand, _scores(cand), BIG, DesignOptions(event_name_template=template))
        assert "custom_event_name" in broken


def test_rule_currency_must_be_iso_4217():
    """An unknown currency code is excluded."""
    cand = Candidate(1, "custom_value", "calibrated")
    assert "currency_iso4217" in rules_broken(cand, _scores(cand), BIG, DesignOptions(currency="XYZ"))


def test_threshold_scores_precision_recall_and_revenue_share():
    """Threshold events report precision/recall of the true top share and the revenue they cover."""
    s = _scores(Candidate(1, "threshold", None, 0.2))
    assert 0.18 < s["fire_share"] < 0.22
    assert 0 < s["precision"] <= 1 and 0 < s["recall"] <= 1
    assert s["revenue_share"] > 0.2  # better than random


def test_design_prefers_the_earlier_send_day_within_tolerance():
    """Equal quality (within tolerance): the earliest send day wins; a clearly better later day wins."""
    same = {1: _holdout(skill=1.0), 3: _holdout(skill=1.0)}
    models = {1: ("pltv_d1", "1"), 3: ("pltv_d3", "1")}
    result = design(same, models, BIG, horizon_days=365, options=DesignOptions(mode="custom_value"))
    assert result.winner["send_day"] == 1
    better = {1: _holdout(skill=0.3), 3: _holdout(skill=2.0)}
    result = design(better, models, BIG, horizon_days=365, options=DesignOptions(mode="custom_value"))
    assert result.winner["send_day"] == 3
    assert "wins" in result.reason


def test_design_with_no_eligible_candidate_says_why():
    """When every candidate breaks a rule there is no spec and the reason names the rules."""
    tiny = Population(weekly_signups=10, deliverable_share=1.0, append_share=1.0)
    result = design({1: _holdout()}, {1: ("m", "1")}, tiny, horizon_days=365)
    assert result.spec is None and result.winner is None
    assert "no candidate" in result.reason and "learning" in result.reason
    assert "rejected:" in render_table(result)


def test_spec_round_trips_and_same_inputs_give_same_id(tmp_path):
    """The EventSpec survives JSON; identical inputs give an identical spec_id."""
    holdouts, models = {1: _holdout(), 3: _holdout(seed=1)}, {1: ("pltv_d1", "2"), 3: ("pltv_d3", "2")}
    a = design(holdouts, models, BIG, horizon_days=365).spec
    b = design(holdouts, models, BIG, horizon_days=365).spec
    assert a.spec_id == b.spec_id
    path = save_spec(a, tmp_path / "spec.json")
    again = load_spec(path)
    assert again == a and again.spec_id == a.spec_id
    assert again.model_version == "2" and again.event_settings().spec_id == a.spec_id


def test_an_edited_spec_is_refused(tmp_path):
    """Editing a spec by hand breaks its content hash and loading fails clearly."""
    spec = design({1: _holdout()}, {1: ("pltv_d1", "1")}, BIG, horizon_days=365).spec
    data = spec.to_dict()
    data["send_day"] = 2
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match="does not match the spec's content"):
        load_spec(tmp_path / "s.json")
    del data["spec_id"]  # removing the hash does not make an edit acceptable
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match="has no spec_id"):
        load_spec(tmp_path / "s.json")
    for not_an_object in ("[1, 2]", "null", '"spec"'):
        (tmp_path / "s.json").write_text(not_an_object)
        with pytest.raises(SpecError, match="a spec is a JSON object"):
            load_spec(tmp_path / "s.json")


def test_spec_of_another_schema_version_is_refused(tmp_path):
    """A spec from a future schema is not guessed at."""
    spec = design({1: _holdout()}, {1: ("pltv_d1", "1")}, BIG, horizon_days=365).spec
    data = spec.to_dict() | {"schema_version": 99}
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match="schema_version"):
        load_spec(tmp_path / "s.json")


def test_candidates_cover_every_mode_mapping_and_threshold():
    """auto mode enumerates send day x mode x mapping, and the five thresholds."""
    cands = candidates([0, 3], DesignOptions())
    assert len(cands) == 2 * (2 * len(KINDS) + 5)
    assert {c.mode for c in cands} == {"append_value", "custom_value", "threshold"}
    assert isinstance(EventSpec, type)


def test_send_day_summary_shows_quality_and_what_limits_each_day():
    """The per-send-day summary names each day's best quality and the rules that limit it."""
    from activation.design import render_send_days

    holdouts = {1: _holdout(skill=0.5), 7: _holdout(skill=2.0)}
    result = design(holdouts, {1: ("m1", "1"), 7: ("m7", "1")}, BIG, horizon_days=365)
    text = render_send_days(result)
    assert text.splitlines()[1].startswith("d1") and text.splitlines()[2].startswith("d7")
    assert "append_within_7d" in text.splitlines()[2] and "attribution_window_7d" in text.splitlines()[2]


def test_a_mapping_fitted_on_actual_ltv_is_scored_out_of_sample():
    """decile_means learns from actual LTV: scored on the users it was fitted on, its decile error is its own
    fit (exactly 0); scored on the holdout half it was not fitted on, it shows the real calibration error."""
    holdout = _holdout()
    scores = score(Candidate(3, "custom_value", "decile_means"), holdout, BIG)
    pred, actual = holdout["predicted_ltv"].to_numpy(), holdout["actual_ltv"].to_numpy()
    in_sample = fit_mapping("decile_means", pred, actual).apply(pred)
    assert metrics.decile_mape(actual, in_sample) < 0.01
    assert scores["decile_mape"] > 0.05 and scores["distinct_values"] >= 5


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("pLTV_D3", True),
        ("a" * 40, True),
        ("a" * 41, False),  # over 40: custom conversions refuse it
        ("pLTV-D3", False),  # '-': the Pixel takes it, custom conversions do not
        ("3pLTV", False),  # must start with a letter
        ("Purchase", False),  # a standard event's name is not a custom event
        ("", False),
    ],
)
def test_one_custom_event_name_rule_for_settings_and_designer(name, ok):
    """EventSettings and the designer apply the same (stricter) custom-event-name rule of activation.meta."""
    from activation.errors import EventSettingsError
    from activation.meta import is_custom_event_name

    assert is_custom_event_name(name) is ok
    if ok:
        assert EventSettings(mode="custom_value", spec_id="s", send_day=1, event_name=name).event_name == name
    else:
        with pytest.raises(EventSettingsError, match="event_name"):
            EventSettings(mode="custom_value", spec_id="s", send_day=1, event_name=name)
    cand = Candidate(1, "custom_value", "calibrated")
    broken = rules_broken(cand, _scores(cand), BIG, DesignOptions(event_name_template=name))
    assert ("custom_event_name" in broken) is (not ok)
