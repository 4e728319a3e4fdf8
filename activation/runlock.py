"""One run per ledger at a time, and what ``pltv status`` reads while that run holds the ledger.

- :func:`run_lock` takes ``<ledger>.lock`` (an advisory ``flock``) before the daily job loads anything, so
  a second concurrent ``pltv score-and-send`` on the same ledger is refused at once, naming the run that
  holds it, instead of after loading the source and the model. The lock dies with its process (kill -9
  included): there is no stale lock to clean up.
- DuckDB lets no other process open a file a writer holds, not even read-only. :func:`write_snapshot`
  copies the ledger to ``<ledger>.snapshot`` (atomically, at the run's start and end) so that a
  scheduler's health check (``pltv status``) can read it while the run goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from activation.errors import LedgerError, RunInProgress


def lock_path(ledger: str | Path) -> Path:
    return Path(f"{ledger}.lock")


def snapshot_path(ledger: str | Path) -> Path:
    return Path(f"{ledger}.snapshot")


def holder(ledger: str | Path) -> dict:
    """What the lock file says about the run holding it (pid, run date, start), or ``{}``."""
    try:
        return json.loads(lock_path(ledger).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def is_locked(ledger: str | Path) -> bool:
    """True while a run holds the ledger's lock."""
    path = lock_path(ledger)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def run_lock(ledger: str | Path, *, run_date: object) -> Iterator[None]:
    """Hold the ledger's run lock for the ``with`` block; :class:`RunInProgress` when another run has it.

    Without the ledger's folder there is nothing to protect (the run fails on the folder later, naming it)."""
    path = lock_path(ledger)
    if not path.parent.is_dir():
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LedgerError(f"cannot create the run lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = holder(ledger)
            raise RunInProgress(
                f"another `pltv score-and-send` holds the ledger {ledger} (pid {other.get('pid', '?')}, run date "
                f"{other.get('run_date', '?')}, started {other.get('started', '?')}): this run stopped before "
                "loading anything and sent nothing; `pltv status` shows the running one"
            ) from None
        os.ftruncate(fd, 0)
        info = {
            "pid": os.getpid(),
            "run_date": str(run_date),
            "started": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        }
        os.write(fd, json.dumps(info).encode())
        yield
    finally:
        os.close(fd)  # releases the flock


def write_snapshot(con: duckdb.DuckDBPyConnection, ledger: str | Path) -> None:
    """Copy the ledger table to ``<ledger>.snapshot`` (a DuckDB file, replaced atomically). Best effort: a
    snapshot that cannot be written never stops a delivery."""
    from activation.ledger import TABLE

    final = snapshot_path(ledger)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        con.execute(f"ATTACH '{str(tmp).replace(chr(39), chr(39) * 2)}' AS _snapshot")
        try:
            con.execute(f"CREATE TABLE _snapshot.{TABLE} AS SELECT * FROM {TABLE}")
        finally:
            con.execute("DETACH _snapshot")
        os.replace(tmp, final)
    except (duckdb.Error, OSError):
        with contextlib.suppress(OSError):
            tmp.unlink()
