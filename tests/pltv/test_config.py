"""``pltv.toml``: the paths it sets are resolved against its own folder, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pltv.cli import app
from pltv.config import DEFAULT_TRACKING_URI, load_config


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pltv.toml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_files_folder(tmp_path, monkeypatch):
    """source, a sqlite store and the ledger written relative in the file point beside the file."""
    path = _write(
        tmp_path / "mydata",
        '[source]\npath = "export"\n[mlflow]\ntracking_uri = "sqlite:///store/mlflow.db"\n'
        '[capi]\nledger = "state/ledger.duckdb"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "mydata" / "pltv.toml")
    base = path.resolve().parent
    assert cfg.source.path == str(base / "export")
    assert cfg.mlflow.tracking_uri == f"sqlite:///{base / 'store' / 'mlflow.db'}"
    assert cfg.capi.ledger == str(base / "state" / "ledger.duckdb")


def test_absolute_paths_servers_and_defaults_are_kept(tmp_path):
    """Absolute paths and http stores are used as written; keys the file does not set keep the defaults."""
    path = _write(
        tmp_path / "a",
        f'[source]\npath = "{tmp_path / "abs"}"\n[mlflow]\ntracking_uri = "http://127.0.0.1:5000"\n',
    )
    cfg = load_config(path)
    assert cfg.source.path == str(tmp_path / "abs")
    assert cfg.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert cfg.capi.ledger == "pltv_ledger.duckdb"  # not set in the file: relative to the working directory
    assert load_config(_write(tmp_path / "b", "[train]\nhorizon_days = 90\n")).mlflow.tracking_uri == (
        DEFAULT_TRACKING_URI
    )


@pytest.mark.parametrize(
    "source", ["catalog:analytics.pltv_export", "s3://bucket/exports/latest", "dbfs:/exports"]
)
def test_spark_sources_in_the_file_are_not_made_local_paths(tmp_path, source):
    """A catalog schema or a URI Spark reads is kept as written (it is not a folder beside the file)."""
    cfg = load_config(_write(tmp_path / "a", f'[source]\npath = "{source}"\n'))
    assert cfg.source.path == source


def test_inspect_with_config_from_another_directory(tmp_path, monkeypatch):
    """``cd elsewhere && pltv inspect --config mydata/pltv.toml`` reads the source the file names."""
    from pltv.sample import generate_sample

    generate_sample(tmp_path / "mydata" / "export", n_users=300, seed=3)
    _write(tmp_path / "mydata", '[source]\npath = "export"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["inspect", "--config", "mydata/pltv.toml"])
    assert result.exit_code == 0, result.output
    assert "payer share" in result.output
    monkeypatch.chdir(tmp_path / "mydata" / "export")  # from inside another folder, same answer
    result = CliRunner().invoke(app, ["inspect", "--config", "../pltv.toml"])
    assert result.exit_code == 0, result.output


def test_resolve_config_anchors_a_relative_file_and_the_defaults_to_cwd(tmp_path, monkeypatch):
    """A notebook's view: PLTV_CONFIG relative to the repository root, defaults under it, env store last."""
    from pltv.config import resolve_config

    _write(tmp_path / "repo" / "mydata", '[source]\npath = "export"\n')
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config("mydata/pltv.toml", cwd=tmp_path / "repo", environ={})
    assert cfg.source.path == str(tmp_path / "repo" / "mydata" / "export")
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'repo' / 'mlruns' / 'mlflow.db'}"
    env = resolve_config(
        None, cwd=tmp_path / "repo", environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    )
    assert env.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert env.source.path == str(tmp_path / "repo" / "data" / "sample")
