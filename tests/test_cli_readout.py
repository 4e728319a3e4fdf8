"""`pltv readout experiment`: JSON with lift, lift_ci and arms; bad input is exit 2 with a one-line reason."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pltv.cli import app
from pltv.sample import Experiment, generate_sample

ARGS = [
    "readout",
    "experiment",
    "--arm-column",
    "acq_arm",
    "--treatment",
    "treatment",
    "--control",
    "control",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("cli-exp") / "src"
    generate_sample(out, n_users=8_000, seed=6, experiment=Experiment(lift=0.25, days=200))
    return str(out)


def test_experiment_json_carries_lift_interval_and_arms(source, tmp_path):
    """--json prints lift, lift_ci (two numbers) and both arms; spend adds CAC and the lift per unit spend."""
    spend = tmp_path / "spend.csv"
    spend.write_text("date,arm,spend\n2026-10-01,treatment,5000\n2026-10-01,control,5000\n")
    config = tmp_path / "pltv.toml"
    config.write_text(f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path}/none/mlflow.db"\n')
    result = CliRunner().invoke(
        app, [*ARGS, "--source", source, "--spend", str(spend), "--json", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    lo, hi = data["lift_ci"]
    assert lo < data["lift"] < hi and set(data["arms"]) == {"treatment", "control"}
    assert data["arms"]["treatment"]["cac"] > 0 and data["lift_per_spend"] is not None
    assert data["projection"].startswith("none (no MLflow store")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--arm-column", "campaign"], "no arm column 'campaign'"),
        (["--treatment", "pltv_v9"], "no user has users.acq_arm = 'pltv_v9'"),
        (["--maturity-days", "400"], "past the 365-day horizon"),
        (["--as-of", "tomorrow"], "--as-of must be a date"),
        (["--spend", "/nonexistent/spend.csv"], "cannot read the spend file"),
    ],
)
def test_experiment_bad_input_exits_2_with_one_line(source, extra, reason):
    """Each bad input is exit 2 and a single line naming what is wrong."""
    result = CliRunner().invoke(app, [*ARGS, "--source", source, *extra])
    assert result.exit_code == 2, result.output
    assert reason in result.output and result.output.count("\n") == 1


def test_experiment_projects_horizon_ltv_with_the_champion_it_names(tmp_path):
    """With a champion for send day 7 the readout projects horizon LTV (realized + predicted rest) and says which."""
    from pltv.train import train

    src = tmp_path / "src"
    generate_sample(src, n_users=20_000, seed=3, experiment=Experiment(lift=0.25))
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    train(src, send_days=(7,), tracking_uri=uri, promote=True)  # champion even if it trails its baseline
    config = tmp_path / "pltv.toml"
    config.write_text(f'[mlflow]\ntracking_uri = "{uri}"\n')
    result = CliRunner().invoke(app, [*ARGS, "--source", str(src), "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["projection"].startswith("pltv_d7 v1 (champion, send day 7)")
    lo, hi = data["projected_lift_ci"]
    assert lo < data["projected_lift"] < hi
    for arm in data["arms"].values():  # a year's value is more than its first 30 days
        assert arm["projected_ltv"] > arm["revenue_per_user"] > 0
    assert "whose horizon matured" in data["share_source"]
