"""Benchmark the daily job: a day of 100k eligible users out of a 1M-user source, sent to the sandbox.

Setup (not timed): generate a 1M-user sample, move 100k random users' whole history so that their send
moment falls on the day before the run date, train a send-day-1 model on the committed sample in a
temporary MLflow store and design a ``custom_value`` spec on it. Timed: ``pltv score-and-send`` as a user
runs it, in its own process (peak RSS is that process's), against ``pltv sandbox`` in another process.

Prints wall time per stage (from the job's report), peak RSS, events/s to the sandbox. Targets on the
2-core reference machine: whole daily run under 60 s, peak RSS under 2 GB.

    python bench/daily.py [--users 1000000] [--eligible 100000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import requests

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-11-01"
SEND_DAY = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pltv(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pltv")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, check=check)


def _shift(src: Path, out: Path, eligible: int) -> None:
    """Copy ``src`` to ``out`` with ``eligible`` random users' histories moved to sign up on the day
    before the send date (same time of day), so that their send moment falls on the run's previous day."""
    out.mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    day = f"TIMESTAMPTZ '{RUN_DATE}' - INTERVAL {SEND_DAY + 1} DAY"
    con.execute(
        f"""
        CREATE TABLE shift AS
        SELECT user_id, ({day} + (signup_at - date_trunc('day', signup_at))) - signup_at AS delta
        FROM read_parquet('{src}/users.parquet') USING SAMPLE {eligible} ROWS (reservoir, 7)
        """
    )
    con.execute(
        f"""
        COPY (SELECT u.* REPLACE (u.signup_at + coalesce(s.delta, INTERVAL 0 SECOND) AS signup_at,
                                  u.conversion_sent_at + coalesce(s.delta, INTERVAL 0 SECOND) AS conversion_sent_at)
              FROM read_parquet('{src}/users.parquet') u LEFT JOIN shift s USING (user_id))
        TO '{out}/users.parquet' (FORMAT parquet)
        """
    )
    for table in ("transactions", "events"):
        (out / table).mkdir()
        con.execute(
            f"""
            COPY (SELECT t.* REPLACE (t.occurred_at + coalesce(s.delta, INTERVAL 0 SECOND) AS occurred_at)
                  FROM read_parquet('{src}/{table}/*.parquet') t LEFT JOIN shift s USING (user_id))
            TO '{out}/{table}/part-0.parquet' (FORMAT parquet)
            """
        )
    con.close()


def timed_run(tmp: Path, src: Path) -> dict:
    """A send-day-1 model and custom-value spec from the committed sample (under ``tmp``), then
    ``pltv score-and-send`` on ``src`` for the run date as a user runs it: its own process (its peak RSS
    is its own) against ``pltv sandbox`` in another. Returns wall seconds, peak KB, stdout, stderr, exit
    code and the sandbox's counts."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}",
           "META_ACCESS_TOKEN": "bench-token"}  # fmt: skip
    _pltv("train", "--source", str(REPO / "data" / "sample"), "--send-days", str(SEND_DAY), env=env)
    _pltv("design", "--source", str(REPO / "data" / "sample"), "--mode", "custom_value", "--out",
          str(tmp / "spec.json"), env=env)  # fmt: skip
    exe = str(Path(sys.executable).with_name("pltv"))
    port = _free_port()
    sandbox = subprocess.Popen([exe, "sandbox", "--port", str(port), "--now", f"{RUN_DATE}T01:00:00"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/_sandbox/summary", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        t = time.perf_counter()
        with open(tmp / "job.out", "w") as out, open(tmp / "job.err", "w") as err:
            job = subprocess.Popen(
                [exe, "score-and-send", "--source", str(src), "--date", RUN_DATE, "--spec", str(tmp / "spec.json"),
                 "--pixel-id", "1234567890", "--graph-url", f"http://127.0.0.1:{port}",
                 "--ledger", str(tmp / "ledger.duckdb"), "--now", f"{RUN_DATE}T01:00:00"],
                stdout=out, stderr=err, env=env,
            )  # fmt: skip
            _, status, usage = os.wait4(job.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t
        received = requests.get(f"http://127.0.0.1:{port}/_sandbox/summary", timeout=5).json()["stats"]
    finally:
        sandbox.terminate()
        sandbox.wait()
    return {"wall": wall, "peak_kb": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status),
            "stdout": (tmp / "job.out").read_text(), "stderr": (tmp / "job.err").read_text(),
            "received": received}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--eligible", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pltv-bench-daily-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        _pltv("sample-data", "--out", str(tmp / "gen"), "--users", str(args.users), "--seed", "11")
        _shift(tmp / "gen", tmp / "src", args.eligible)
        print(
            f"setup: {args.users:,}-user source with {args.eligible:,} users due on the day before {RUN_DATE} "
            f"({time.perf_counter() - t:.0f}s, not timed)"
        )
        run = timed_run(tmp, tmp / "src")
    print(run["stdout"])
    if run["returncode"]:
        print(run["stderr"][-2000:])
    wall, peak_kb, received = run["wall"], run["peak_kb"], run["received"]
    stdout = run["stdout"]
    deliver = next((line for line in stdout.splitlines() if "duration" in line), "")
    sent = next((int(line.split()[1].replace(",", "")) for line in stdout.splitlines()
                 if line.strip().startswith("sent")), 0)  # fmt: skip
    deliver_s = float(deliver.split("deliver ")[1].split("s")[0]) if "deliver " in deliver else float("nan")
    print(f"daily run wall time      {wall:8.1f} s   (target < 60 s; includes interpreter + MLflow start)")
    print(f"peak RSS of the job      {peak_kb / 1024:8.0f} MB  (target < 2048 MB)")
    print(
        f"events sent              {sent:8,}   sandbox accepted {received['accepted']:,} "
        f"in {received['requests']:,} requests"
    )
    print(f"delivery throughput      {sent / deliver_s:8,.0f} events/s (deliver stage {deliver_s:.1f} s)")


if __name__ == "__main__":
    main()
