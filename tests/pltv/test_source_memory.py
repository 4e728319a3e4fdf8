"""The source's own DuckDB connection is bounded and spills to a private folder that closing removes."""

import os
from pathlib import Path

from pltv.source_files import MEMORY_SHARE, machine_memory
from pltv.sources import open_source

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _setting(con, name: str) -> str:
    return con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]


def test_own_connection_is_bounded_and_spills_to_a_private_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DuckDB's default spill folder would be ./.tmp
    src = open_source(SAMPLE)
    spill = Path(_setting(src.con, "temp_directory"))
    limit = _setting(src.con, "memory_limit")  # e.g. "7.8 GiB"
    assert (
        spill.is_dir()
        and spill.name.startswith(f"pltv-duckdb-{os.getpid()}-")
        and tmp_path not in spill.parents
    )
    # DuckDB reports the limit rounded, in its own units: compare to the share within 5 %
    number, unit = limit.split()
    scale = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]
    assert (
        abs(float(number) * scale - machine_memory() * MEMORY_SHARE) < 0.05 * machine_memory() * MEMORY_SHARE
    )
    src.close()
    assert not spill.exists()
    assert not (tmp_path / ".tmp").exists()


def test_failed_open_removes_its_spill_folder(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "users.csv").write_text("user_id,signup_at\nu1,not a time\n")
    (tmp_path / "export" / "transactions.csv").write_text("user_id,occurred_at,revenue\nu1,2026-01-01,1\n")
    try:
        open_source(tmp_path / "export")
    except Exception as exc:
        assert "signup_at" in str(exc)
    else:
        raise AssertionError("an unparseable signup_at must fail")
    assert not list(tmp_path.glob("pltv-duckdb-*"))


def test_a_killed_run_s_spill_folder_is_removed_by_the_next_opening(tmp_path, monkeypatch):
    """A process killed mid-run cannot remove its spill folder; the next source opening removes folders
    whose process is gone, and keeps those of live processes."""
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    orphan = tmp_path / f"pltv-duckdb-{gone}-abc"
    (orphan / "spill.tmp").parent.mkdir()
    (orphan / "spill.tmp").write_bytes(b"x" * 1024)
    live = tmp_path / f"pltv-duckdb-{os.getppid()}-def"  # the test runner's parent: alive
    live.mkdir()
    with open_source(SAMPLE):
        assert not orphan.exists()
        assert live.is_dir()
