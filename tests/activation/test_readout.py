"""Sent-vs-realized calibration on replayed daily runs: the real daily job, the real sandbox over a loopback
socket (its ``--now`` clock replays past days), a real ledger, and a model fitted on the sample's own past."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from activation.client import ClientConfig
from activation.daily import DailyOptions, run_daily
from activation.readout import CalibrationOptions, bias_interval, calibration_readout, match_users
from activation.sandbox import Sandbox
from activation.settings import EventSettings
from activation.spec import EventSpec
from activation.valuemap import ValueMapping
from pltv.config import SourceConfig
from pltv.features import build_features, feature_columns
from pltv.models import EarlyRevenueMultiple
from pltv.registry import LtvPythonModel
from pltv.sample import generate_sample
from pltv.sources import open_source

HORIZON = 90
TRAIN_AS_OF = "2025-08-01"  # the model learns only from users matured before the replayed sends
# four weeks whose 90-day horizon matured long before the data ends (2026-11-01), and a week that has not
REPLAY = [date(2025, 8, 4) + timedelta(days=i) for i in range(28)] + [
    date(2026, 9, 7) + timedelta(days=i) for i in range(7)
]


class _Scaled:
    """An estimator whose predictions are ``factor`` times another's (a deliberately miscalibrated model)."""

    def __init__(self, estimator, factor: float) -> None:
        self.estimator, self.factor = estimator, factor

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.factor * self.estimator.predict(frame)


@pytest.fixture(scope="module")
def replays(tmp_path_factory):
    """One ledger per model (calibrated, x1.3), each filled by the daily job replayed over ``REPLAY``."""
    root = tmp_path_factory.mktemp("readout")
    generate_sample(root / "src", n_users=60_000, seed=9)
    with open_source(root / "src") as src:
        train = build_features(src.con, send_day=1, as_of=TRAIN_AS_OF, horizon_days=HORIZON)
    # the `k x early revenue` model, k fitted on the matured past: calibrated in total by construction
    estimator = EarlyRevenueMultiple().fit(train, train["actual_ltv"])
    spec = EventSpec(
        settings=EventSettings(mode="custom_value", spec_id="", event_name="pLTV_D1", send_day=1),
        value_mapping=ValueMapping("calibrated", floor=0.01), model_name="pltv_d1", model_version="1",
        horizon_days=HORIZON,
    )  # fmt: skip
    (root / "spec.json").write_text(spec.to_json())
    ledgers = {}
    for label, est in (("calibrated", estimator), ("x1.3", _Scaled(estimator, 1.3))):
        model = LtvPythonModel(
            est, send_day=1, horizon_days=HORIZON, event_names=train.attrs["event_names"],
            feature_names=feature_columns(train),
        )  # fmt: skip
        ledger = root / f"ledger-{label}.duckdb"
        with Sandbox(now=datetime(2025, 8, 4, 1, tzinfo=UTC)) as sb:
            for day in REPLAY:
                now = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
                sb.set_now(now)
                options = DailyOptions(
                    run_date=day, spec_path=root / "spec.json", source=SourceConfig(path=str(root / "src")),
                    tracking_uri="sqlite:///unused.db", ledger_path=ledger,
                    client=ClientConfig(pixel_id="1234567890", access_token="sandbox-token", graph_url=sb.url),
                )  # fmt: skip
                run_daily(options, now=now, model=model)
        ledgers[label] = ledger
    return {"root": root, "ledgers": ledgers, "spec": spec}


def _readout(replays, label):
    options = CalibrationOptions(horizon_days=HORIZON, partial_days=(30,))
    return calibration_readout(replays["root"] / "src", replays["ledgers"][label], options)


def test_miscalibrated_model_shows_its_bias_within_the_interval(replays):
    """Values x1.3 read as bias near +30 %, inside an interval that excludes a calibrated model's 0."""
    readout = _readout(replays, "x1.3")
    lo, hi = readout.bias_ci
    print(f"x1.3: users={readout.users} bias={readout.bias:+.1%} [{lo:+.1%}, {hi:+.1%}]")
    assert readout.users > 1000 and readout.unmatched == 0
    assert lo <= 0.30 <= hi and lo > 0
    partial = readout.partial[30]["overall"]
    print(f"x1.3 partial 30d: users={partial.users} bias={partial.bias:+.1%} {partial.bias_ci}")
    assert partial.bias_ci[0] <= 0.30 <= partial.bias_ci[1]


def test_calibrated_model_shows_an_interval_around_zero(replays):
    """The model fitted on the matured past reads as calibrated: its interval holds 0, at the horizon and at 30 days."""
    readout = _readout(replays, "calibrated")
    lo, hi = readout.bias_ci
    print(f"calibrated: users={readout.users} bias={readout.bias:+.1%} [{lo:+.1%}, {hi:+.1%}]")
    assert lo <= 0 <= hi
    partial = readout.partial[30]["overall"]
    print(f"calibrated partial 30d: users={partial.users} bias={partial.bias:+.1%} {partial.bias_ci}")
    assert partial.bias_ci[0] <= 0 <= partial.bias_ci[1]
    assert len(readout.weeks) == 4 and sum(w.users for w in readout.weeks) == readout.users
    assert 0 < readout.gini <= 1 and len(readout.deciles) == 10
    assert json.loads(json.dumps(readout.to_dict()))["users"] == readout.users


def test_sent_events_of_users_missing_from_the_source_are_counted_unmatched(replays, tmp_path):
    """A source without some sent users: their events are counted as unmatched, the rest still read."""
    src = replays["root"] / "src"
    users = pd.read_parquet(src / "users.parquet")
    (tmp_path / "src").mkdir()
    users.iloc[::2].to_parquet(tmp_path / "src" / "users.parquet")
    for table in ("transactions", "events"):
        (tmp_path / "src" / table).symlink_to(src / table)
    full = _readout(replays, "calibrated")
    half = calibration_readout(
        tmp_path / "src", replays["ledgers"]["calibrated"], CalibrationOptions(horizon_days=HORIZON)
    )
    assert half.sent_events == full.sent_events
    assert half.unmatched > 0.3 * full.sent_events and half.matched + half.unmatched == half.sent_events


def test_match_users_recomputes_the_daily_jobs_event_ids():
    """Each sent event is tied back to the user whose (spec, user) id it carries; unknown ids stay unmatched."""
    from activation import event_id_for

    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"]})
    events = pd.DataFrame({"event_id": [event_id_for("spec-a", "u2"), event_id_for("spec-b", "u3"), "pltv-x"],
                           "spec_id": ["spec-a", "spec-b", "spec-a"]})  # fmt: skip
    matched = match_users(users, events)
    assert matched["user_id"].tolist()[:2] == ["u2", "u3"] and pd.isna(matched["user_id"].iloc[2])


def test_bias_interval_scales_and_resamples_the_share():
    """bias = share x Σ sent / Σ realized − 1; the reference share's noise widens the interval."""
    rng = np.random.default_rng(0)
    realized = rng.lognormal(0, 1, 2000)
    sent = realized * 2.0
    point, (lo, hi) = bias_interval(sent, realized)
    assert point == pytest.approx(1.0) and lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    part, whole = rng.lognormal(0, 1, 500), rng.lognormal(0, 1, 500) + 5
    fixed = part.sum() / whole.sum()
    point, (lo, hi) = bias_interval(sent, realized, scale=(part, whole))
    assert point == pytest.approx(2 * fixed - 1) and lo < point < hi


def test_cli_calibration_json_carries_users_and_bias_and_bad_input_exits_2(replays, tmp_path):
    """`pltv readout calibration --json` prints users and bias; a missing ledger is exit 2 with one line."""
    from typer.testing import CliRunner

    from pltv.cli import app

    config = tmp_path / "pltv.toml"
    config.write_text(f"[train]\nhorizon_days = {HORIZON}\n")
    src, ledger = str(replays["root"] / "src"), str(replays["ledgers"]["x1.3"])
    runner = CliRunner()
    ok = runner.invoke(app, ["readout", "calibration", "--source", src, "--ledger", ledger, "--json",
                             "--config", str(config)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["users"] == _readout(replays, "x1.3").users and data["bias"] > 0 and len(data["bias_ci"]) == 2
    text = runner.invoke(
        app, ["readout", "calibration", "--source", src, "--ledger", ledger, "--config", str(config)]
    )
    assert text.exit_code == 0 and "bias" in text.output and "partial maturity 30 days" in text.output
    missing = runner.invoke(
        app, ["readout", "calibration", "--source", src, "--ledger", str(tmp_path / "no.duckdb")]
    )
    assert missing.exit_code == 2 and missing.output.count("\n") == 1 and "no ledger" in missing.output


def _tiny_source():
    """Four users: three matured at a 90-day horizon by 2026-01-01, one 40 days old; known revenue."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE users (user_id VARCHAR, signup_at TIMESTAMP)")
    con.execute(
        "INSERT INTO users VALUES ('a', '2025-06-01'), ('b', '2025-06-02'), ('c', '2025-06-09'), ('d', '2025-11-22')"
    )
    con.execute("CREATE TABLE transactions (user_id VARCHAR, occurred_at TIMESTAMP, revenue DOUBLE)")
    con.execute(
        "INSERT INTO transactions VALUES ('a', '2025-06-05', 30), ('a', '2025-10-01', 999), "  # 2nd after horizon
        "('b', '2025-06-10', 10), ('d', '2025-11-25', 8)"
    )
    return con


def test_bias_per_week_and_overall_is_the_ratio_of_sums_on_a_hand_computed_source():
    """Σ sent / Σ realized − 1 over matured users, per Monday send week; repeats and other event names noted."""
    from activation import event_id_for
    from activation.readout import read_calibration

    con = _tiny_source()
    rows = [
        ("a", "2025-06-08", 50.0),
        ("b", "2025-06-09", 10.0),
        ("c", "2025-06-16", 20.0),
        ("d", "2025-11-29", 5.0),
    ]
    events = pd.DataFrame(
        [{"event_id": event_id_for("s1", u), "spec_id": "s1", "send_date": pd.Timestamp(d), "event_name": "pLTV_D7",
          "value": v} for u, d, v in rows]
        + [{"event_id": event_id_for("s2", "a"), "spec_id": "s2", "send_date": pd.Timestamp("2025-06-08"),
            "event_name": "AppendValue", "value": 1.0}]
    )  # fmt: skip
    options = CalibrationOptions(horizon_days=90, partial_days=(30,), as_of="2026-01-01", n_boot=200)
    readout = read_calibration(con, events, options)
    assert readout.event_name == "pLTV_D7" and any("'AppendValue' (1)" in n for n in readout.notes)
    assert readout.users == 3 and readout.unmatched == 0
    assert readout.bias == pytest.approx((50 + 10 + 20) / (30 + 10) - 1)
    assert [w.week for w in readout.weeks] == ["2025-06-02", "2025-06-09", "2025-06-16"]
    assert readout.weeks[1].bias == pytest.approx(0.0)  # b: sent 10, realized 10 (send week of Monday 06-09)
    partial = readout.partial[30]
    assert partial["users"] == 1 and partial["share"] == pytest.approx(
        40 / 40
    )  # all matured revenue by day 30
    assert partial["overall"].bias == pytest.approx(5.0 * 1.0 / 8.0 - 1)
