"""Progress of long commands: a live bar on a terminal, one plain line per stage everywhere else (cron).

One small API for every long-running command (``train``, ``sample-data``, ``score-and-send``,
``score``)::

    from pltv.progress import Progress

    progress = Progress.for_stream(sys.stdout)       # live bar when stdout is a terminal, else plain lines
    with progress:
        progress.log("source data/sample: 20,000 users")      # a plain line (printed above a live bar)
        with progress.stage("send day 1: model choice", total=13, unit="fits") as stage:
            for ...:
                stage.advance()                                 # one step done (counts, ETA)
            stage.done("chose tweedie_small")                   # optional: what the stage found

Live (a terminal): a `rich <https://rich.readthedocs.io>`_ bar (rich ships with typer) with the stage, the
count ``done/total``, elapsed time and ETA; a stage without ``total`` shows a spinner and the count. Plain
(a pipe, a file, cron): ``<stage> ...`` when a stage starts and ``<stage>: done in 3.2s (13 fits; chose
tweedie_small)`` when it ends, so a log shows which stage is running and how long each took.
:meth:`Progress.silent` prints nothing (the library's default). Library code receives a ``Progress`` and
never decides how it is shown.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO


class Stage:
    """One running stage: :meth:`advance` counts steps, :meth:`done` adds what it found to its last line."""

    def __init__(self, progress: Progress, name: str, total: int | None, unit: str, task) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.completed = 0
        self.note = ""
        self._progress, self._task = progress, task
        self.started = time.perf_counter()

    def advance(self, steps: int = 1) -> None:
        """``steps`` more units done."""
        self.completed += steps
        if self._task is not None:
            self._progress._bar.update(self._task, advance=steps)

    def set_total(self, total: int) -> None:
        """The total, once known (a stage may start before it knows how much work there is)."""
        self.total = total
        if self._task is not None:
            self._progress._bar.update(self._task, total=total)

    def done(self, note: str) -> None:
        """What the stage found (``"20,000 users"``), printed with its final line."""
        self.note = note


class Progress:
    """Where a command's progress goes; see the module docstring."""

    def __init__(self, *, live: bool = False, write: Callable[[str], None] | None = None, stream=None):
        self.live = live
        self._stream: TextIO = stream or sys.stdout
        self._write = write or (lambda line: print(line, file=self._stream, flush=True))
        self._bar = None
        self._silent = False

    @classmethod
    def for_stream(cls, stream: TextIO | None = None) -> Progress:
        """A live bar when ``stream`` (default stdout) is a terminal, plain lines otherwise."""
        stream = stream or sys.stdout
        isatty = getattr(stream, "isatty", None)
        return cls(live=bool(isatty and isatty()), stream=stream)

    @classmethod
    def silent(cls) -> Progress:
        """Prints nothing."""
        progress = cls(write=lambda line: None)
        progress._silent = True
        return progress

    @classmethod
    def coerce(cls, progress: Progress | Callable[[str], None] | None) -> Progress:
        """A ``Progress`` from a ``Progress``, a line writer (plain lines through it) or ``None`` (silent)."""
        if isinstance(progress, Progress):
            return progress
        return cls(write=progress) if progress is not None else cls.silent()

    def __enter__(self) -> Progress:
        if self.live and self._bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def log(self, message: str) -> None:
        """A plain line (above the bar when live)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            self._write(message)

    @contextlib.contextmanager
    def stage(self, name: str, *, total: int | None = None, unit: str = "") -> Iterator[Stage]:
        """A stage of the work; its final line says how long it took and how much it did."""
        task = None
        if self._bar is not None:
            task = self._bar.add_task(name, total=total, unit=unit)
        elif not self._silent:
            self._write(f"{name} ...")
        stage = Stage(self, name, total, unit, task)
        try:
            yield stage
        except BaseException:
            self._finish(stage, failed=True)
            raise
        self._finish(stage)

    def _finish(self, stage: Stage, *, failed: bool = False) -> None:
        seconds = time.perf_counter() - stage.started
        count = f"{stage.completed:,} {stage.unit}".strip() if stage.completed else ""
        detail = "; ".join(part for part in (count, stage.note) if part)
        line = f"{stage.name}: {'failed after' if failed else 'done in'} {seconds:.1f}s" + (
            f" ({detail})" if detail else ""
        )
        if stage._task is not None:  # the finished stage leaves the bar and stays as a whole line above it
            self._bar.remove_task(stage._task)
            self._bar.console.print(line, markup=False, highlight=False)
        elif not self._silent:
            self._write(line)
