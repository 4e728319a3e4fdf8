"""What the ``pltv`` help and its first-hour error messages say."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from pltv.cli import app

COMMANDS = ["sample-data", "inspect", "sandbox", "train", "design", "score-and-send", "status"]


@pytest.mark.parametrize("command", COMMANDS)
def test_flags_show_as_plain_flags(command):
    """No `<bool>` type after a flag: `--dry-run` takes no value (`--dry-run true` is an error)."""
    out = CliRunner().invoke(app, [command, "--help"], terminal_width=100).output
    assert "<bool>" not in out and "BOOLEAN" not in out
    assert re.search(r"^\s+--help\s+Show this message", out, re.M)


def test_dry_run_and_promote_read_as_flags():
    """`--dry-run` and `--promote / --no-promote` print as flags, without a value."""
    runner = CliRunner()
    assert re.search(
        r"^\s+--dry-run\s+Write the request", runner.invoke(app, ["score-and-send", "--help"]).output, re.M
    )
    assert "--promote / --no-promote  " in runner.invoke(app, ["train", "--help"]).output


@pytest.mark.parametrize("width", [80, 100, 140])
def test_exit_code_paragraph_wraps_whole(width):
    """The exit-code paragraph is re-wrapped as one paragraph: no line holding a single stray word."""
    for command in ("score-and-send", "design"):
        out = CliRunner().invoke(app, [command, "--help"], terminal_width=width).output
        paragraph = out[out.index("Exit codes") : out.index("Options:")].rstrip().splitlines()
        assert len(paragraph) >= 2
        assert all(len(line.split()) > 2 for line in paragraph[:-1]), paragraph


def test_design_send_days_says_its_format():
    """`design --send-days` says it takes comma-separated days, with an example."""
    out = CliRunner().invoke(app, ["design", "--help"]).output
    assert "comma-separated, e.g. 1,3" in " ".join(out.split())


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["train", "--as-of", "11/01/2026"], "--as-of"),
        (["sample-data", "--out", "x", "--end", "11/01/2026"], "--end"),
    ],
)
def test_a_date_in_another_format_names_the_expected_one(args, flag, tmp_path):
    """`11/01/2026` is refused with the flag and the format, not Python's strptime message."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"{flag} must be a date YYYY-MM-DD" in result.output and "11/01/2026" in result.output
    assert "does not match format" not in result.output
