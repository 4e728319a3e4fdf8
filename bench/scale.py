"""Benchmark the single machine's ceiling: 100k -> 1M -> 10M users, and the daily job with 1M users due.

    nice -n 10 .venv/bin/python bench/scale.py [--sizes 100000,1000000,10000000] [--data /work/scale-data]
                                               [--daily-users 1000000] [--no-daily]

Data: the sample generator (:func:`pltv.sample.generate_tables`) in chunks of 1M users (seeds ``seed + k``,
ids prefixed by the chunk), made denser to about ``--tx-per-user`` (10) transactions and
``--events-per-user`` (20) events per user by repeating each row later in the user's history. Written once
per size under ``--data`` (outside the repository; reused when present, the generation is not timed).

Pipeline, each size in its own child process (so peak RSS is that size's): sources (open + validate) ->
features (the DuckDB SQL, one send day) -> train (model choice on a 50k validation sample, fit on every
training user, recalibration) -> evaluate (holdout metrics). A sampler thread records the peak RSS of
each stage; cost per user = wall seconds per million users, and its ratio 10M / 1M (goal: flat, +-30 %).

Daily: a copy of the ``--daily-users`` export with every user's history moved so that all of them are due
on the run date, a send-day-1 model trained on the committed sample, ``pltv score-and-send`` as a user
runs it (its own process; peak RSS is its own) against ``pltv sandbox`` in another process.

Goals on the 2-core, 24 GB reference machine: 10M-user training < 10 min and < 12 GB; 1M due users scored
and delivered < 2 min and < 3 GB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
END = "2026-11-01"
SEND_DAY = 1
HORIZON = 365
CHUNK = 1_000_000
RUN_DATE = "2026-11-01"


# ---- data ---------------------------------------------------------------------------------------------


def _denser(table, per_user: float, n_users: int, rng, *, spread_days: float, end_us: int, id_column=None):
    """``table`` with each row repeated (later in time, by up to ``spread_days`` per copy) so that it holds
    about ``per_user`` rows per user; copies dated at or after the data's end are dropped."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    factor = per_user * n_users / max(table.num_rows, 1)
    if factor <= 1:
        return table
    whole = int(math.floor(factor))
    parts = [table]
    ts = table.column("occurred_at").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    for j in range(1, whole + 1):
        if j == whole:  # the fractional part: a random share of the rows gets one more copy
            keep = rng.random(table.num_rows) < (factor - whole)
        else:
            keep = np.ones(table.num_rows, dtype=bool)
        shift = (rng.random(table.num_rows) * spread_days * 86_400e6 * j).astype(np.int64)
        moved = ts + shift
        keep &= moved < end_us
        idx = np.flatnonzero(keep)
        copy = table.take(pa.array(idx))
        new_ts = pa.array(moved[idx]).cast(pa.timestamp("us", tz="UTC"))
        copy = copy.set_column(copy.schema.get_field_index("occurred_at"), "occurred_at", new_ts)
        if id_column is not None:
            col = copy.column(id_column)
            copy = copy.set_column(
                copy.schema.get_field_index(id_column),
                id_column,
                pc.binary_join_element_wise(col.cast(pa.string()), f"r{j}", ""),
            )
        parts.append(copy)
    return pa.concat_tables(parts, promote_options="permissive")


def generate(out: Path, n_users: int, *, seed: int, tx_per_user: float, events_per_user: float) -> dict:
    """Write a ``n_users`` export (users/, transactions/, events/ part files) under ``out``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pltv.sample import generate_tables

    tmp = out.with_name(out.name + ".partial")
    for table in ("users", "transactions", "events"):
        (tmp / table).mkdir(parents=True, exist_ok=True)
    end_us = int(pd.Timestamp(END, tz="UTC").value // 1000)
    counts = {"users": 0, "transactions": 0, "events": 0}
    for k in range(math.ceil(n_users / CHUNK)):
        m = min(CHUNK, n_users - k * CHUNK)
        users, tx, events = generate_tables(max(m, 100), seed=seed + k, end=END)
        prefix = f"k{k:02d}"
        users["user_id"] = prefix + users["user_id"].astype(str)
        tx["user_id"] = prefix + tx["user_id"].astype(str)
        tx["transaction_id"] = prefix + tx["transaction_id"].astype(str)
        events["user_id"] = events["user_id"].cat.rename_categories(lambda u, p=prefix: p + str(u))
        rng = np.random.default_rng(seed * 1000 + k)
        t_tx = _denser(pa.Table.from_pandas(tx, preserve_index=False), tx_per_user, m, rng, spread_days=20,
                       end_us=end_us, id_column="transaction_id")  # fmt: skip
        t_ev = pa.Table.from_pandas(events, preserve_index=False)
        t_ev = t_ev.set_column(0, "user_id", pc.cast(t_ev.column("user_id"), pa.string()))
        t_ev = _denser(t_ev, events_per_user, m, rng, spread_days=2, end_us=end_us)
        pq.write_table(
            pa.Table.from_pandas(users, preserve_index=False), tmp / "users" / f"part-{k:03d}.parquet"
        )
        pq.write_table(t_tx, tmp / "transactions" / f"part-{k:03d}.parquet", row_group_size=1_000_000)
        pq.write_table(t_ev, tmp / "events" / f"part-{k:03d}.parquet", row_group_size=1_000_000)
        counts["users"] += len(users)
        counts["transactions"] += t_tx.num_rows
        counts["events"] += t_ev.num_rows
        del users, tx, events, t_tx, t_ev
    (tmp / "generated.json").write_text(json.dumps(counts))
    tmp.rename(out)
    return counts


def ensure_data(root: Path, n_users: int, args) -> tuple[Path, dict]:
    path = root / f"users-{n_users}"
    if not (path / "generated.json").exists():
        t = time.perf_counter()
        counts = generate(path, n_users, seed=args.seed, tx_per_user=args.tx_per_user,
                          events_per_user=args.events_per_user)  # fmt: skip
        print(f"generated {path} in {time.perf_counter() - t:.0f} s (not timed): {counts}", flush=True)
    return path, json.loads((path / "generated.json").read_text())


# ---- one size, in a child process ---------------------------------------------------------------------


class _Peak:
    """Samples this process's RSS every 50 ms; ``stage()`` records wall time and peak RSS per stage."""

    def __init__(self):
        import psutil

        self._proc = psutil.Process()
        self._peak = 0
        self._stop = False
        self.stages: list[dict] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self._stop:
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(0.05)

    @contextmanager
    def stage(self, name: str):
        self._peak = self._proc.memory_info().rss
        t = time.perf_counter()
        yield
        wall = time.perf_counter() - t
        peak = max(self._peak, self._proc.memory_info().rss)
        self.stages.append({"stage": name, "seconds": wall, "peak_gb": peak / 1024**3})
        print(json.dumps(self.stages[-1]), flush=True)


def run_size(data: Path, workdir: Path) -> None:

    from pltv.evaluate import evaluate_holdout
    from pltv.features import build_features, default_as_of
    from pltv.sources import open_source
    from pltv.train import fit_send_day

    peak = _Peak()
    with peak.stage("sources"):  # the product's own connection: a third of memory, spilling past it
        src = open_source(data)
    as_of = default_as_of(src.quality.data_end)
    with peak.stage("features"):
        frame = build_features(src.con, send_day=SEND_DAY, as_of=as_of, horizon_days=HORIZON)
    src.close()
    with peak.stage("train"):
        result = fit_send_day(frame, send_day=SEND_DAY, horizon_days=HORIZON)
    del frame
    with peak.stage("evaluate"):
        scores = evaluate_holdout(result.holdout)
    print(json.dumps({"summary": True, "matured": result.split["n_matured"], "train": result.split["n_train"],
                      "test": result.split["n_test"], "candidate": result.candidate,
                      "gini": scores["gini"], "decile_mape": scores["decile_mape"]}), flush=True)  # fmt: skip


def measure_size(data: Path, counts: dict, workdir: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "_size", str(data), str(workdir)], stdout=subprocess.PIPE, text=True
    )
    stages, summary = [], {}
    for line in proc.stdout:
        if line.startswith("{"):
            item = json.loads(line)
            if item.pop("summary", False):
                summary = item
            else:
                stages.append(item)
                print(
                    f"    {item['stage']:<10} {item['seconds']:8.1f} s   peak RSS {item['peak_gb']:6.2f} GB",
                    flush=True,
                )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"size {counts['users']:,} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"users": counts["users"], "counts": counts, "stages": stages, "summary": summary,
            "wall": time.perf_counter() - t, "peak_gb": usage.ru_maxrss / 1024**2}  # fmt: skip


# ---- the daily job with every user due ----------------------------------------------------------------


def _all_due(src: Path, out: Path) -> int:
    """``src`` with every user's history moved to sign up on the day before the run date's previous day
    (same time of day), so that every send moment (send day 1) falls on the run's previous day; rows on or
    after the run date are dropped (the export ends there)."""
    import duckdb

    out.mkdir(parents=True)
    con = duckdb.connect(config={"memory_limit": "6GB", "temp_directory": str(out.parent / "duckdb-tmp")})
    con.execute("SET TimeZone = 'UTC'")
    day = f"TIMESTAMPTZ '{RUN_DATE}' - INTERVAL {SEND_DAY + 1} DAY"
    con.execute(
        f"CREATE TABLE shift AS SELECT user_id, ({day} + (signup_at - date_trunc('day', signup_at))) - signup_at "
        f"AS delta FROM read_parquet('{src}/users/*.parquet')"
    )
    con.execute(
        f"""COPY (SELECT u.* REPLACE (u.signup_at + s.delta AS signup_at,
                                     u.conversion_sent_at + s.delta AS conversion_sent_at)
                  FROM read_parquet('{src}/users/*.parquet') u JOIN shift s USING (user_id))
            TO '{out}/users.parquet' (FORMAT parquet)"""
    )
    for table in ("transactions", "events"):
        con.execute(
            f"""COPY (SELECT t.* REPLACE (t.occurred_at + s.delta AS occurred_at)
                      FROM read_parquet('{src}/{table}/*.parquet') t JOIN shift s USING (user_id)
                      WHERE t.occurred_at + s.delta < TIMESTAMPTZ '{RUN_DATE}')
                TO '{out}/{table}.parquet' (FORMAT parquet)"""
        )
    n = con.execute("SELECT count(*) FROM shift").fetchall()[0][0]
    con.close()
    return n


def measure_daily(data: Path, workdir: Path) -> dict:
    from daily import timed_run  # bench/daily.py: the same timed run, 100k due of 1M

    tmp = Path(tempfile.mkdtemp(prefix="daily-", dir=workdir))
    t = time.perf_counter()
    due = _all_due(data, tmp / "src")
    print(f"  setup: {due:,} users due on {RUN_DATE} ({time.perf_counter() - t:.0f} s to shift, not timed)",
          flush=True)  # fmt: skip
    run = timed_run(tmp, tmp / "src")
    print(run["stdout"], flush=True)
    if run["returncode"] not in (0, 1):
        print(run["stderr"][-2000:])
    return {"due": due, "wall": run["wall"], "peak_gb": run["peak_kb"] / 1024**2,
            "accepted": run["received"]["accepted"], "report": run["stdout"]}  # fmt: skip


# ---- report -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--data", type=Path, default=Path("/work/scale-data"))
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--tx-per-user", type=float, default=10.0)
    parser.add_argument("--events-per-user", type=float, default=20.0)
    parser.add_argument("--daily-users", type=int, default=1_000_000)
    parser.add_argument("--no-daily", action="store_true")
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    datasets = {n: ensure_data(args.data, n, args) for n in sizes}
    if not args.no_daily and args.daily_users not in datasets:
        datasets[args.daily_users] = ensure_data(args.data, args.daily_users, args)
    if args.generate_only:
        return
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    results = []
    for n in sizes:
        data, counts = datasets[n]
        print(
            f"  {n:,} users ({counts['transactions']:,} transactions, {counts['events']:,} events):",
            flush=True,
        )
        with tempfile.TemporaryDirectory(dir=args.data) as work:
            results.append(measure_size(data, counts, Path(work)))
    print("\npipeline (one send day; wall s / peak RSS GB per stage):")
    names = [s["stage"] for s in results[0]["stages"]]
    print(
        f"  {'users':>11} "
        + " ".join(f"{n:>16}" for n in names)
        + f" {'total s':>9} {'peak GB':>8} {'s per 1M users':>15}"
    )
    for r in results:
        cells = " ".join(f"{s['seconds']:8.1f} /{s['peak_gb']:6.2f}" for s in r["stages"])
        total = sum(s["seconds"] for s in r["stages"])
        r["per_million"] = total / r["users"] * 1e6
        print(f"  {r['users']:>11,} {cells} {total:9.1f} {r['peak_gb']:8.2f} {r['per_million']:15.1f}")
    by_size = {r["users"]: r for r in results}
    if 1_000_000 in by_size and 10_000_000 in by_size:
        ratio = by_size[10_000_000]["per_million"] / by_size[1_000_000]["per_million"]
        big = by_size[10_000_000]
        total = sum(s["seconds"] for s in big["stages"])
        print(f"  cost per user 10M / 1M = {ratio:.2f} (goal 0.70 .. 1.30)")
        print(
            f"  10M training: {total / 60:.1f} min (goal < 10), peak RSS {big['peak_gb']:.1f} GB (goal < 12)"
        )
        for r in results:
            print(f"    {r['users']:,}: {json.dumps(r['summary'])}")
    if not args.no_daily:
        data, counts = datasets[args.daily_users]
        print(f"\ndaily job, {args.daily_users:,} users due in one run:", flush=True)
        with tempfile.TemporaryDirectory(dir=args.data) as work:
            daily = measure_daily(data, Path(work))
        print(f"  score-and-send wall {daily['wall']:.1f} s (goal < 120), peak RSS {daily['peak_gb']:.2f} GB "
              f"(goal < 3), sandbox accepted {daily['accepted']:,}")  # fmt: skip
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_size":
        run_size(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
