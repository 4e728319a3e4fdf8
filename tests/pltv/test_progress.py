"""Progress: plain one-line stage logs off a terminal, a live bar with counts on one, nothing when silent."""

from __future__ import annotations

import io

import pytest

from pltv.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    """A pipe or a cron log gets a start line and a done line per stage, with counts and what it found."""
    out = io.StringIO()
    progress = Progress.for_stream(out)
    assert not progress.live
    with progress:
        progress.log("source x: 10 users")
        with progress.stage("send day 1: fit", total=3, unit="fits") as stage:
            for _ in range(3):
                stage.advance()
            stage.done("chose tweedie_small")
    lines = out.getvalue().splitlines()
    assert lines[0] == "source x: 10 users"
    assert lines[1] == "send day 1: fit ..."
    assert lines[2].startswith("send day 1: fit: done in ") and lines[2].endswith(
        "(3 fits; chose tweedie_small)"
    )


def test_a_failing_stage_says_failed_and_the_error_propagates():
    """An exception inside a stage is not reported as done."""
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress.for_stream(out).stage("features"):
        raise RuntimeError("boom")
    assert "features: failed after" in out.getvalue() and "done" not in out.getvalue()


def test_live_bar_on_a_terminal_shows_stage_and_counts():
    """On a terminal the rich bar shows the stage name and done/total."""
    out = _Terminal()
    progress = Progress.for_stream(out)
    assert progress.live
    with progress, progress.stage("send day 3: fit", total=4, unit="fits") as stage:
        stage.advance(2)
        progress._bar.refresh()  # what rich's refresh thread draws ten times a second
        stage.advance(2)
    text = out.getvalue()
    assert "send day 3: fit" in text and "2/4" in text  # the running bar: stage and done/total
    assert "send day 3: fit: done in" in text and "(4 fits)" in text  # the finished stage's whole line


def test_silent_prints_nothing_and_a_writer_gets_plain_lines():
    """The library default is silent; a plain callable receives the same lines as a pipe."""
    with Progress.silent().stage("x", total=1) as stage:
        stage.advance()
    lines: list[str] = []
    with Progress.coerce(lines.append).stage("y"):
        pass
    assert lines[0] == "y ..." and lines[1].startswith("y: done in")


def test_sample_data_and_train_report_their_stages(tmp_path):
    """`pltv sample-data` prints one line per stage off a terminal; train reports features, fits, counts."""
    from typer.testing import CliRunner

    from pltv.cli import app
    from pltv.train import fits_per_send_day, train

    result = CliRunner().invoke(app, ["sample-data", "--out", str(tmp_path / "s"), "--users", "3000"])
    assert result.exit_code == 0, result.output
    assert "generate 3,000 users (seed 1): done in" in result.output
    assert "write " in result.output and "transactions/: done in" in result.output
    lines: list[str] = []
    train(tmp_path / "s", send_days=(1,), horizon_days=90, tracking_uri=None, progress=lines.append)
    assert lines[0] == "open + validate the source ..."  # the first minutes at 10M users are not silent
    assert lines[1].startswith("open + validate the source: done in") and "(3,000 users)" in lines[1]
    assert any(line.startswith("send day 1: features: done in") and "users)" in line for line in lines)
    fits = next(line for line in lines if line.startswith("send day 1: model choice + fit: done"))
    assert f"({fits_per_send_day()} fits; chose " in fits
