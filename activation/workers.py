"""Parallel workers for normalization + hashing: forked processes share the unique values with the caller.

Only :func:`activation.identity.hash_identifiers` uses it, for large inputs; the result is the serial one.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from activation.normalization import Prepared, prepare_values

#: Unique values (all columns but ``country``) from which normalization + hashing runs in forked worker
#: processes as well as in the caller. Below it a fork costs more than it saves.
PARALLEL_MIN_UNIQUES = 20_000
_TASK_SIZE = 2_000  # unique values per task: the caller takes the tasks no worker has started
_FORK_AVAILABLE = "fork" in multiprocessing.get_all_start_methods()


def workers() -> int:
    """Worker processes: the other CPUs (the caller keeps one), at most 4; 0 without ``fork``."""
    if not _FORK_AVAILABLE:
        return 0  # spawned workers would re-import pandas & co: slower than the work they take
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cpus - 1, 4)


class SharedWork:
    """Tasks of :func:`prepare_values` run by worker processes and by the caller.

    Workers take tasks from the front (phones first: libphonenumber is most of the time, ~20 µs a
    number); :meth:`results` runs in the caller every task no worker has started, taken from the back,
    then waits for the rest. The split follows how busy each process is; a worker's GIL is its own, so
    its work does not compete with the caller's threads (e.g. a delivery in flight). The same function
    runs on the same input either way, so the result is the serial one.
    """

    def __init__(
        self,
        columns: list[tuple[str, list[Any], list[str | None] | None]],
        default_region: str | None,
        workers: int,
    ) -> None:
        self._tasks: list[tuple[str, list[Any], list[str | None] | None, str | None]] = []
        self._owner: list[str] = []
        for key, uniques, countries in columns:
            for i in range(0, len(uniques), _TASK_SIZE):
                part = countries[i : i + _TASK_SIZE] if countries is not None else None
                self._tasks.append((key, uniques[i : i + _TASK_SIZE], part, default_region))
                self._owner.append(key)
        # fork: workers start in milliseconds with the caller's modules (and phone metadata) loaded
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self._futures: list[Future] = [self._pool.submit(prepare_values, *t) for t in self._tasks]

    def results(self) -> dict[str, list[Prepared]]:
        """Per key, the outcome of each unique value, in the order given."""
        done: dict[int, list[Prepared]] = {}
        try:
            for i in range(len(self._futures) - 1, -1, -1):
                if not self._futures[i].cancel():
                    break
                done[i] = prepare_values(*self._tasks[i])
            out: dict[str, list[Prepared]] = {}
            for i, fut in enumerate(self._futures):
                out.setdefault(self._owner[i], []).extend(done[i] if i in done else fut.result())
            return out
        finally:
            self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
