"""MLflow setup: the browse hint runs as printed, and opening a store prints no setup chatter."""

from __future__ import annotations

import shlex
import subprocess
import sys

from pltv import tracking


def test_ui_command_runs_as_printed_from_another_directory(tmp_path):
    """The printed `mlflow ui` command starts (``--help``) without the venv on PATH, from any directory."""
    command = tracking.ui_command("sqlite:///mlruns/mlflow.db", cwd=tmp_path)
    argv = shlex.split(command)
    assert f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}" in argv  # relative store made absolute
    ui = argv.index("ui")
    out = subprocess.run(
        [*argv[: ui + 1], "--help"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--backend-store-uri" in out.stdout


def test_creating_a_store_prints_no_database_setup_lines(tmp_path):
    """MLflow's "Creating initial MLflow database tables..." INFO lines are not shown to the user."""
    code = (
        "from pltv import tracking\n"
        f"uri = tracking.configure('sqlite:///{tmp_path / 'mlflow.db'}')\n"
        "tracking.ensure_experiment('pltv', uri)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "database tables" not in out.stderr + out.stdout
    assert (tmp_path / "mlflow.db").is_file()
