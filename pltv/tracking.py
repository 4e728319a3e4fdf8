"""MLflow setup: one place that points MLflow at a store and makes the experiment.

``configure("sqlite:///mlruns/mlflow.db")`` creates the folder, keeps artifacts beside the database
(``mlruns/artifacts``) and turns MLflow's telemetry off. MLflow 3.17 refuses the plain file store, so the
embedded default is SQLite; a server URI (``http://...``) is used as given.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlparse

from pltv.errors import ConfigError, RegistryError


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute), else ``None``."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    path = tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        raise ConfigError(
            f"tracking URI {tracking_uri!r}: give a database file, e.g. sqlite:///mlruns/mlflow.db"
        )
    return Path(path)


def artifact_location(tracking_uri: str) -> str | None:
    """``<db dir>/artifacts`` as a file URI for SQLite stores; ``None`` (server default) otherwise."""
    db = sqlite_path(tracking_uri)
    return (db.resolve().parent / "artifacts").as_uri() if db is not None else None


def configure(tracking_uri: str, *, existing: bool = False) -> str:
    """Point MLflow (tracking and registry) at ``tracking_uri``; create a SQLite store's folder. Returns the URI.

    ``existing=True`` (readers: the daily job, the designer, notebooks) refuses a SQLite store that is not
    there, instead of letting MLflow create an empty one that would mislead the next investigation."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    if tracking_uri.startswith("file:") or (
        "://" not in tracking_uri and urlparse(tracking_uri).scheme in ("", "file")
    ):
        raise ConfigError(
            f"tracking URI {tracking_uri!r} is a plain file store, which MLflow 3 no longer supports; "
            "use sqlite:///<folder>/mlflow.db or an http(s) tracking server"
        )
    db = sqlite_path(tracking_uri)
    if db is not None and existing and not db.is_file():
        raise RegistryError(
            f"no MLflow store at {db} (tracking URI {tracking_uri}); train with `pltv train` first, or point "
            "MLFLOW_TRACKING_URI or [mlflow] tracking_uri in pltv.toml at the store that holds the models"
        )
    if db is not None:
        db.resolve().parent.mkdir(parents=True, exist_ok=True)
    import mlflow

    # "Creating initial MLflow database tables..." / "Updating database tables" (and alembic's migration
    # lines) are printed at INFO whenever a store is opened: setup chatter, not the user's business.
    for name in ("mlflow.store.db.utils", "mlflow.store.model_registry.abstract_store", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return tracking_uri


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created with artifacts beside a SQLite store when missing."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    experiment_id = client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def ui_command(tracking_uri: str, *, cwd: Path | None = None) -> str:
    """A shell command that opens the MLflow UI on this store and runs as printed, from ``cwd``.

    The ``mlflow`` script of this interpreter's environment (``.venv/bin/mlflow``, which is not on ``PATH``
    unless the venv is activated), else ``<python> -m mlflow``; a relative SQLite path is made absolute."""
    cwd = (cwd or Path.cwd()).resolve()
    db = sqlite_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    uri = f"sqlite:///{(cwd / db).resolve()}" if db is not None and not db.is_absolute() else tracking_uri
    script = Path(sys.executable).parent / "mlflow"
    if script.is_file():
        try:
            program = shlex.quote(str(script.relative_to(cwd)))
        except ValueError:
            program = shlex.quote(str(script))
    else:
        program = f"{shlex.quote(sys.executable)} -m mlflow"
    return f"{program} ui --backend-store-uri {shlex.quote(uri)}"
