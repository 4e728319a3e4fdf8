"""The notebooks execute top to bottom against a temporary MLflow store holding two trained versions.

The kernel is this interpreter (a kernel spec written to ``tmp_path`` pointing at ``sys.executable``), so the
test needs no ``ipykernel install`` and cannot pick up another Python from ``PATH``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SAMPLE = ROOT / "data" / "sample"
KERNEL = "pltv-test-venv"


@pytest.fixture(scope="module")
def store(d7_two_versions_store) -> str:
    """A SQLite MLflow store with send day 7 trained twice (an older as_of, then the default): the
    session's, shared with the compare tests (the notebooks only read it)."""
    return d7_two_versions_store


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A Jupyter data dir whose only kernel spec runs ``sys.executable -m ipykernel_launcher``."""
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pltv test (this interpreter)",
                "language": "python",
            }
        )
    )
    return data


def _config_file(store: str) -> Path:
    """A pltv.toml beside the store naming the sample and the store: the notebooks read it like the CLI."""
    path = Path(store.removeprefix("sqlite:///")).parent / "pltv.toml"
    path.write_text(f'[source]\npath = "{SAMPLE}"\n[mlflow]\ntracking_uri = "{store}"\n')
    return path


def _execute(path: Path, kernel_dir: Path, store: str, monkeypatch) -> nbformat.NotebookNode:
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("PLTV_CONFIG", str(_config_file(store)))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=180, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir / "kernels")])
    client.km = client.create_kernel_manager()
    client.km.kernel_spec_manager = ksm
    client.execute()
    return nb


def _images(nb) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


@pytest.mark.parametrize(
    ("notebook", "figures"), [("calibration.ipynb", 4), ("event_design.ipynb", 3), ("readout.ipynb", 2)]
)
def test_notebook_executes_top_to_bottom(notebook, figures, store, kernel_dir, monkeypatch):
    """Every cell runs without error against two registered versions and each picture is rendered."""
    nb = _execute(NOTEBOOKS / notebook, kernel_dir, store, monkeypatch)
    assert _images(nb) == figures


@pytest.mark.parametrize("notebook", ["calibration.ipynb", "event_design.ipynb", "readout.ipynb"])
def test_notebook_is_committed_without_outputs(notebook):
    """Committed notebooks carry no outputs or execution counts (they are executed by the tests)."""
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
