"""`pltv score`: every user who reached the send day, scored by a registered version, written as Parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pltv.cli import app
from pltv.errors import ConfigError
from pltv.features import build_features, default_as_of
from pltv.registry import load_model
from pltv.score import ModelRef, parse_model_ref
from pltv.sources import open_source

SAMPLE = "data/sample"


@pytest.fixture
def store(d3_store):
    """The session's send-day-3 store (tests/conftest.py): these tests only read it."""
    return d3_store


def _score(uri, *args):
    return CliRunner().invoke(app, ["score", *args], env={"MLFLOW_TRACKING_URI": uri})


def test_scores_every_user_who_reached_the_send_day_with_the_registered_model(store, tmp_path):
    """One row per user whose send moment is at or before as_of, the champion's predictions, its version."""
    out = tmp_path / "scores.parquet"
    result = _score(store, "--source", SAMPLE, "--send-day", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert list(scores.columns) == ["user_id", "predicted_ltv", "model_version"]
    assert set(scores["model_version"]) == {"pltv_d3/1"}
    model = load_model(store, "pltv_d3", "champion")
    with open_source(SAMPLE) as src:
        as_of = default_as_of(src.quality.data_end)
        users = src.con.execute(
            "SELECT count(*) FROM users WHERE signup_at + INTERVAL 3 DAY <= $1", [as_of]
        ).fetchall()[0][0]
        feats = build_features(
            src.con, send_day=3, as_of=as_of, population="reached", event_names=model.event_names,
            categoricals=model.categoricals,
        )  # fmt: skip
    assert len(scores) == users == len(feats)
    assert scores["user_id"].is_unique
    np.testing.assert_array_equal(scores["predicted_ltv"].to_numpy(), model.predict(feats))
    assert "scored 19," in result.output
    assert "send day 3: source + features: done in" in result.output  # a line per stage (not a terminal)
    assert "score with pltv_d3/1: done in" in result.output


def test_a_version_number_and_an_alias_name_the_same_model(store, tmp_path):
    """--model pltv_d3/1 and --model pltv_d3@champion write the same predictions."""
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert (
        _score(
            store, "--source", SAMPLE, "--send-day", "3", "--model", "pltv_d3/1", "--out", str(a)
        ).exit_code
        == 0
    )
    assert (
        _score(
            store, "--source", SAMPLE, "--send-day", "3", "--model", "pltv_d3@champion", "--out", str(b)
        ).exit_code
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "pltv_d9@champion"], "no model models:/pltv_d9@champion"),
        (["--model", "pltv_d3/7"], "no model models:/pltv_d3/7"),
        (["--model", "pltv_d3"], "expected NAME@ALIAS"),
        (["--source", "no/such/export"], "no/such/export"),
        (["--engine", "flink"], "--engine must be duckdb or spark"),
    ],
)
def test_missing_model_source_or_bad_option_is_exit_2_and_writes_nothing(store, tmp_path, args, message):
    """A model, version, source or option that does not exist: a clear error, exit 2, no output file."""
    out = tmp_path / "scores.parquet"
    base = {"--source": SAMPLE, "--send-day": "3", "--out": str(out)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    result = _score(store, *[x for kv in base.items() for x in kv])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_a_model_for_another_send_day_is_refused(store, tmp_path):
    """Scoring day-1 windows with a day-3 model would read the wrong window: refused, exit 2."""
    result = _score(store, "--source", SAMPLE, "--send-day", "1", "--model", "pltv_d3@champion", "--out",
                    str(tmp_path / "x.parquet"))  # fmt: skip
    assert result.exit_code == 2 and "trained for send day 3" in result.output


def test_model_references_parse_as_alias_version_or_the_send_days_champion():
    """NAME@ALIAS, NAME/VERSION, and no flag = the send day's champion under the name template."""
    assert parse_model_ref("m@challenger", template="pltv_d{send_day}", send_day=3) == ModelRef(
        "m", "challenger"
    )
    assert parse_model_ref("m/12", template="pltv_d{send_day}", send_day=3).uri == "models:/m/12"
    assert parse_model_ref(None, template="pltv_d{send_day}", send_day=7).uri == "models:/pltv_d7@champion"
    with pytest.raises(ConfigError, match="version number"):
        parse_model_ref("m/latest", template="x", send_day=1)
