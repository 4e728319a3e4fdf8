"""Pipelining: prepare the next chunk while the previous one is being delivered.

Delivery is mostly waiting on sockets (the GIL is released there), preparation (normalize + hash + build)
is CPU: :func:`pipelined` overlaps them with one background thread. Chunk ``k`` is delivered in that
thread while the calling thread prepares chunk ``k + 1``; results come back in input order, and at most
one prepared chunk waits, so memory stays bounded by two chunks.

    for report in pipelined(chunks, prepare=hash_and_build, deliver=send_chunk):
        ...

``deliver`` runs in one thread at a time, in order, so a handle used only there (a ledger connection,
a client) is never used concurrently; ``prepare`` runs in the calling thread. The daily job delivers
through it (:func:`activation.delivery.deliver_pipelined`, and a dry run's outbox writer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


def pipelined(items: Iterable[T], prepare: Callable[[T], P], deliver: Callable[[P], R]) -> Iterator[R]:
    """Yield ``deliver(prepare(item))`` per item, in order, preparing item k+1 while item k is delivered.

    An exception from ``deliver`` is raised at the next step (after the chunk being prepared at that
    moment is ready, never delivered); one from ``prepare`` is raised once the delivery in flight ends.
    Closing the iterator early waits for the delivery in flight and delivers nothing more.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline") as pool:
        in_flight: Future[R] | None = None
        for item in items:
            prepared = prepare(item)
            if in_flight is not None:
                result = in_flight.result()
                in_flight = pool.submit(deliver, prepared)
                yield result
            else:
                in_flight = pool.submit(deliver, prepared)
        if in_flight is not None:
            yield in_flight.result()
