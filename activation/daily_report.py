"""What one run of the daily job reports: :class:`DailyReport` (counts, skip reasons, match quality,
values, PSI, stage times; ``render`` is ``pltv score-and-send``'s output) and the run's :func:`exit_code`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from activation.delivery import DeliveryReport

PSI_WARNING = 0.2
PSI_MIN_EVENTS = 200  # below this, ten-bin shares are too noisy for PSI to mean anything


@dataclass
class DailyReport:
    run_id: str
    run_date: date
    spec_id: str
    model: str
    eligible: int = 0  # users selected (the day's + catch-up)
    catch_up: int = 0
    deferred: int = 0  # send moment after the source's last row: scored by a later run, once the data is in
    expired: int = 0  # owed by earlier runs but now too old for Meta: marked failed/expired
    unconfirmed: int = 0  # may have reached Meta, its dedup window closed: settled, never re-sent
    served_before: int = 0  # users already sent this event name under an earlier spec: not sent again
    new_ledger: Path | None = None  # an empty ledger this run started while events from earlier days were due
    data_end: datetime | None = None
    planned: int = 0
    sent: int = 0
    already_done: int = 0
    rejected_before: int = 0  # planned again, but Meta rejected them in an earlier run: not re-sent
    failed: int = 0
    skipped: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # (code, subcode) -> events
    identity_dropped: Counter = field(default_factory=Counter)  # (user_data key, reason) -> values dropped
    match_quality: Any = None
    psi: float | None = None
    value_quantiles: dict[str, float] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False
    outbox: Path | None = None

    def add(self, delivery: DeliveryReport) -> None:
        """Count one chunk's delivery into the run."""
        self.sent += delivery.sent
        self.failed += delivery.failed
        self.already_done += delivery.already_done
        self.rejected_before += delivery.rejected_before
        self.failures.update(delivery.failures)

    def render(self) -> str:
        lines = [
            f"run {self.run_id} for {self.run_date} (spec {self.spec_id}, model {self.model})"
            + (" — DRY RUN, nothing sent" if self.dry_run else ""),
            f"  eligible users   {self.eligible:>9,}  (catch-up {self.catch_up:,})",
            *(
                [
                    f"  deferred         {self.deferred:>9,}  (send moment after the source's last row at "
                    f"{self.data_end:%Y-%m-%d %H:%M:%S} UTC: their window is not in the data yet; a later "
                    "run sends them)"
                ]
                if self.deferred
                else []
            ),
            f"  events planned   {self.planned:>9,}",
            f"  sent             {self.sent:>9,}"
            + (f"  (+{self.already_done:,} already sent)" if self.already_done else "")
            + (
                f"  ({self.rejected_before:,} rejected by Meta earlier, not re-sent)"
                if self.rejected_before
                else ""
            ),
            f"  failed           {self.failed:>9,}"
            + (
                "  " + ", ".join(f"code {c}/{s}: {n:,}" for (c, s), n in self.failures.items())
                if self.failures
                else ""
            ),
            *(
                [
                    f"  expired          {self.expired:>9,}  (owed by earlier runs, now older than Meta accepts)"
                ]
                if self.expired
                else []
            ),
            *(
                [
                    f"  unconfirmed      {self.unconfirmed:>9,}  (may have reached Meta without an answer; its "
                    "48 h dedup window closed: never re-sent)"
                ]
                if self.unconfirmed
                else []
            ),
            *(
                [
                    f"  sent before      {self.served_before:>9,}  (users this event already reached under "
                    "an earlier spec: one value per user and event name)"
                ]
                if self.served_before
                else []
            ),
            *(
                [
                    f"  WARNING          new, empty ledger {self.new_ledger} while {self.catch_up:,} event(s) from "
                    "earlier days were due: sent as never sent before. Expected on a first run; otherwise the "
                    "ledger lives elsewhere (a job started in another folder?): point --ledger / [capi] ledger at it"
                ]
                if self.new_ledger
                else []
            ),
            f"  skipped          {sum(self.skipped.values()):>9,}"
            + (
                "  " + ", ".join(f"{r}: {n:,}" for r, n in self.skipped.most_common()) if self.skipped else ""
            ),
        ]
        if self.match_quality is not None and self.planned:
            lines.append(f"  match quality    {self.match_quality.render().splitlines()[0]}")
        if self.value_quantiles:
            q = self.value_quantiles
            lines.append(
                f"  values           p10={q['p10']:.2f} p50={q['p50']:.2f} p90={q['p90']:.2f} max={q['max']:.2f}"
            )
        if self.psi is None and self.planned:
            lines.append(f"  PSI vs holdout         n/a  (needs >= {PSI_MIN_EVENTS} events to be meaningful)")
        if self.psi is not None:
            flag = (
                "  WARNING: the score distribution drifted from the holdout" if self.psi > PSI_WARNING else ""
            )
            lines.append(f"  PSI vs holdout   {self.psi:>9.3f}{flag}")
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        lines.append(f"  duration         {self.seconds:>8.1f}s  ({stages})")
        if self.outbox:
            lines.append(f"  outbox           {self.outbox}")
        return "\n".join(lines)


def exit_code(report: DailyReport) -> int:
    """0: every eligible event sent or skipped for a stated reason; 1: some failed after retries."""
    return 1 if report.failed else 0
