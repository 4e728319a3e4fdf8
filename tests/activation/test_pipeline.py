"""Pipelining: same results as the sequential loop, with preparation overlapping delivery."""

from __future__ import annotations

import threading
import time

import pytest

from activation.pipeline import pipelined


def test_results_equal_the_sequential_loop_in_order():
    """deliver(prepare(x)) per item, in input order."""
    items = list(range(7))
    assert list(pipelined(items, lambda x: x * 10, lambda p: p + 1)) == [x * 10 + 1 for x in items]


def test_empty_input_yields_nothing():
    """No items: neither function is called."""
    assert list(pipelined([], lambda x: 1 / 0, lambda p: 1 / 0)) == []


def test_next_chunk_is_prepared_while_the_previous_is_delivered():
    """Preparation of item k+1 starts before delivery of item k ends."""
    log: list[str] = []
    lock = threading.Lock()

    def prepare(x: int) -> int:
        with lock:
            log.append(f"prepare{x}")
        return x

    def deliver(x: int) -> int:
        time.sleep(0.05)
        with lock:
            log.append(f"delivered{x}")
        return x

    assert list(pipelined(range(3), prepare, deliver)) == [0, 1, 2]
    assert log.index("prepare1") < log.index("delivered0")
    assert log.index("prepare2") < log.index("delivered1")


def test_deliveries_never_overlap():
    """One delivery at a time, so handles used only by deliver are never shared between threads."""
    active = 0
    peak = 0
    lock = threading.Lock()

    def deliver(x: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return x

    assert list(pipelined(range(5), lambda x: x, deliver)) == list(range(5))
    assert peak == 1


def test_delivery_error_stops_the_run():
    """An exception from deliver propagates; later chunks are not delivered."""
    delivered: list[int] = []

    def deliver(x: int) -> int:
        if x == 1:
            raise RuntimeError("token refused")
        delivered.append(x)
        return x

    with pytest.raises(RuntimeError, match="token refused"):
        list(pipelined(range(5), lambda x: x, deliver))
    assert delivered == [0]
