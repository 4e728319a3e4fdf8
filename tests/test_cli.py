"""The ``pltv`` command: it lists its commands and starts without importing the heavy ML stack."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from pltv.cli import app


def test_help_lists_the_commands():
    """``pltv --help`` names every user-facing command."""
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sample-data", "inspect"):
        assert command in result.output


def test_help_does_not_import_mlflow_or_lightgbm():
    """Startup stays instant: MLflow, LightGBM and scikit-learn load only inside the commands."""
    code = (
        "import sys\n"
        "from pltv.cli import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "heavy = [m for m in ('mlflow', 'lightgbm', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_inspect_prints_the_quality_summary(tmp_path):
    """``pltv inspect`` validates a source and prints counts; a bad path exits non-zero with a message."""
    from pltv.sample import generate_sample

    generate_sample(tmp_path / "s", n_users=500, seed=2)
    runner = CliRunner()
    ok = runner.invoke(app, ["inspect", "--source", str(tmp_path / "s")])
    assert ok.exit_code == 0, ok.output
    assert "payer share" in ok.output
    bad = runner.invoke(app, ["inspect", "--source", str(tmp_path / "missing")])
    assert bad.exit_code == 2
    assert "does not exist" in bad.output


def test_a_bad_pltv_toml_is_a_clean_error_for_every_command(tmp_path):
    """An unknown key, invalid TOML or a missing --config file: exit 2 with the reason, no traceback."""
    unknown, broken = tmp_path / "unknown.toml", tmp_path / "broken.toml"
    unknown.write_text('[capi]\nledgr = "x"\n')
    broken.write_text("[capi\n")
    commands = (
        ["inspect"],
        ["train"],
        ["design"],
        ["status"],
        ["score-and-send", "--date", "2026-10-31", "--dry-run"],
    )
    for config in (unknown, broken, tmp_path / "missing.toml"):
        for command in commands:
            result = CliRunner().invoke(app, [*command, "--config", str(config)])
            assert result.exit_code == 2, (command, config.name, result.output)
            assert (
                "Traceback" not in result.output
                and result.exception is None
                or isinstance(result.exception, SystemExit)
            )
