"""Delivery: planned events through the client, with every state change written to the ledger.

:func:`deliver` is the daily job's last step: skips are recorded, planned events are claimed as pending
(the ids already sent are dropped here, so nothing is sent twice), batches go out concurrently and each
batch's outcomes are written as soon as it returns (batches that returned during the last write are written
together, in one transaction). A token/permission error stops the run: the rows of
batches not delivered stay ``pending`` for the next run, and the :class:`RunStopped` propagates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from activation.client import CapiClient
from activation.errors import LedgerError, RunStopped
from activation.ledger import Ledger, RunInfo
from activation.ledger_states import REJECTED, SENT
from activation.pipeline import pipelined
from activation.redaction import log_event
from activation.types import EventPlan, PlannedEvent, SkippedEvent

log = logging.getLogger("activation.delivery")
T = TypeVar("T")


@dataclass(frozen=True)
class DeliveryReport:
    """What one run did (counts only)."""

    run_id: str
    planned: int
    skipped: int
    already_done: int  # planned but not claimed because an earlier run sent them
    rejected_before: int  # planned but not claimed because Meta rejected them in an earlier run
    sent: int
    failed: int
    seconds: float
    failures: dict[tuple[int | None, int | None], int] = field(default_factory=dict)  # (code, subcode) -> n

    def render(self) -> str:
        """One line for a terminal."""
        rate = self.sent / self.seconds if self.seconds else 0.0
        fails = ", ".join(f"code {c}/{s}: {n:,}" for (c, s), n in self.failures.items())
        return (
            f"run {self.run_id}: planned={self.planned:,} sent={self.sent:,} failed={self.failed:,} "
            f"skipped={self.skipped:,} already_done={self.already_done:,} "
            f"rejected_before={self.rejected_before:,} in {self.seconds:.1f}s "
            f"({rate:,.0f} events/s)" + (f"; failures: {fails}" if fails else "")
        )


def deliver(
    events: Sequence[PlannedEvent],
    skipped: Sequence[SkippedEvent],
    *,
    client: CapiClient,
    ledger: Ledger,
    run: RunInfo,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryReport:
    """Send ``events`` exactly once per ``event_id`` (as far as the ledger knows) and record everything."""
    start = clock()
    ledger.record_skipped(skipped, run=run)
    claimed = set(ledger.claim_pending(events, run=run))
    payloads = [e.payload for e in events if e.event_id in claimed]
    unclaimed = [e.event_id for e in events if e.event_id not in claimed]
    earlier = ledger.states(unclaimed).values() if unclaimed else ()
    log_event(log, "activation.run_started", run_id=run.run_id, planned=len(events), claimed=len(payloads),
              skipped=len(skipped))  # fmt: skip
    sent = failed = 0
    failures: dict[tuple[int | None, int | None], int] = {}
    answered: set[str] = set()
    batches = client.send(payloads)  # held, so that stopping comes before the generator closes
    try:
        for outcomes in batches:
            ledger.record_outcomes(outcomes)
            answered.update(o.event_id for o in outcomes)
            for o in outcomes:
                if o.state == SENT:
                    sent += 1
                else:
                    failed += 1
                    key = (o.error_code, o.error_subcode)
                    failures[key] = failures.get(key, 0) + 1
    except LedgerError:
        client.stop()  # what cannot be recorded is not sent: the rest stays owed to the next run
        batches.close()
        raise
    except RunStopped as exc:
        # the batches that never left stay owed as never delivered (not "may have reached Meta")
        ledger.release(claimed - answered, run=run)
        log_event(log, "activation.run_stopped", logging.ERROR, run_id=run.run_id, code=exc.code,
                  sent=sent, failed=failed, pending=len(payloads) - sent - failed)  # fmt: skip
        raise
    report = DeliveryReport(
        run_id=run.run_id,
        planned=len(events),
        skipped=len(skipped),
        already_done=sum(state == SENT for state, _ in earlier),
        rejected_before=sum(reason == REJECTED for _, reason in earlier),
        sent=sent,
        failed=failed,
        seconds=clock() - start,
        failures=failures,
    )
    log_event(log, "activation.run_finished", run_id=run.run_id, sent=sent, failed=failed,
              skipped=len(skipped), already_done=report.already_done, seconds=round(report.seconds, 2))  # fmt: skip
    return report


def deliver_pipelined(
    parts: Iterable[T],
    prepare: Callable[[T], EventPlan],
    *,
    client: CapiClient,
    ledger: Ledger,
    run: RunInfo,
) -> Iterator[DeliveryReport]:
    """The daily job's delivery loop: ``prepare`` (score, hash, build) chunk k+1 in this thread while chunk
    k is delivered (:func:`deliver`) in the background; one :class:`DeliveryReport` per chunk, in order.

    ``bench/send.py`` times this very function against Meta's SDK. A :class:`RunStopped` from chunk k is
    raised once chunk k+1 is prepared; chunk k+1 is then never delivered (its events stay owed).
    """
    return pipelined(
        parts, prepare, lambda plan: deliver(plan.events, plan.skipped, client=client, ledger=ledger, run=run)
    )
