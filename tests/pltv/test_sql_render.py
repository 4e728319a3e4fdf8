"""Feature SQL per dialect: golden renderings, each parses in its dialect, no DuckDB-only function survives,
and the DuckDB rendering computes the same features as the library."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlglot
from typer.testing import CliRunner

from pltv.cli import app
from pltv.features import build_features, default_as_of
from pltv.sources import open_source
from pltv.sql_render import DIALECTS, DUCKDB_ONLY, render_event_names, render_features

GOLDEN = Path(__file__).parent / "golden"
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
AS_OF = datetime(2026, 11, 1)
EVENTS = ["session", "view_item", "add_to_cart"]


def _features(dialect: str):
    return render_features(dialect, send_day=3, as_of=AS_OF, event_names=EVENTS)


def _body(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.startswith("--"))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rendering_matches_the_reviewed_golden_file(dialect):
    """Any change of a rendering shows up as a diff of a committed file (PLTV_UPDATE_GOLDEN=1 rewrites)."""
    text = _features(dialect).text("golden: send day 3, population matured")
    text += "\n" + render_event_names(dialect, as_of=AS_OF).text("golden: event names")
    path = GOLDEN / f"features_{dialect}.sql"
    if os.environ.get("PLTV_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_rendering_parses_in_its_own_dialect(dialect):
    """sqlglot reads every rendering back in the dialect it was written for."""
    for rendered in (_features(dialect), render_event_names(dialect, as_of=AS_OF)):
        tree = sqlglot.parse_one(rendered.sql, read=dialect)
        assert tree.find(sqlglot.exp.Select) is not None


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d != "duckdb"])
def test_no_duckdb_only_function_survives_a_rendering(dialect):
    """to_days, epoch, isodow, error(), EXCLUDE, any_value, list() and $params are DuckDB's alone."""
    body = _body(_features(dialect).sql).upper()
    assert [token for token in DUCKDB_ONLY if token in body] == []
    assert "AS DECIMAL(18, 6)" in body or "AS NUMERIC)" in body  # revenue is summed exactly everywhere


def test_bigquery_compares_timestamps_not_datetimes():
    """sqlglot maps DuckDB TIMESTAMP to BigQuery DATETIME, which does not compare with TIMESTAMP columns."""
    sql = _features("bigquery").sql
    assert "DATETIME" not in sql and "CAST(@as_of AS TIMESTAMP)" in sql


def test_rendering_lists_every_bound_parameter_with_its_value():
    """The header names each parameter the query uses, with its value, in the dialect's own marker."""
    rendered = _features("spark")
    assert rendered.params["event_3"] == "add_to_cart" and rendered.params["send_day"] == 3
    text = rendered.text("t")
    assert "--   as_of TIMESTAMP = '2026-11-01 00:00:00'" in text
    assert ":event_3" in rendered.sql and ":as_of" in rendered.sql


@pytest.fixture(scope="module")
def sample():
    with open_source(SAMPLE) as src:
        yield src


@pytest.mark.parametrize(("send_day", "population"), [(3, "matured"), (0, "all"), (7, "reached")])
def test_duckdb_rendering_computes_the_library_features(sample, send_day, population):
    """The sqlglot-regenerated DuckDB SQL gives exactly build_features' raw result on the sample."""
    as_of = default_as_of(sample.quality.data_end)
    names = ["session", "view_item"]
    expected = build_features(
        sample.con, send_day=send_day, as_of=as_of, population=population, event_names=names
    )
    rendered = render_features(
        "duckdb", send_day=send_day, as_of=as_of, population=population, event_names=names
    )
    raw = sample.con.execute(rendered.sql, rendered.params).df()
    assert len(raw) == len(expected)
    pd.testing.assert_series_equal(raw["user_id"], expected["user_id"], check_dtype=False)
    for col in (
        "early_net_revenue",
        "hours_to_first_purchase",
        "signup_weekday",
        "hours_since_last_activity",
    ):
        pd.testing.assert_series_equal(raw[col].astype(float), expected[col], check_names=False)


def test_signup_weekday_is_the_iso_weekday(sample):
    """The portable weekday formula equals DuckDB's isodow on every user (and on pre-1970 instants)."""
    as_of = default_as_of(sample.quality.data_end)
    frame = build_features(sample.con, send_day=0, as_of=as_of, population="all", event_names=[])
    iso = pd.to_datetime(frame["signup_at"]).dt.day_of_week + 1
    assert (frame["signup_weekday"] == iso).all()
    got = sample.con.execute(
        "SELECT (CAST(floor(CAST(epoch_us(t) AS DOUBLE) / 1000000 / 86400) AS BIGINT) % 7 + 10) % 7 + 1, isodow(t) "
        "FROM (SELECT TIMESTAMP '1969-12-31 23:59:59' + to_days(CAST(i AS INTEGER)) AS t FROM range(-10, 10) r(i))"
    ).fetchall()
    assert all(a == b for a, b in got)


def test_cli_prints_the_sql_for_a_dialect_and_refuses_unknown_ones(tmp_path):
    """`pltv sql` prints a parseable rendering; an unknown dialect is exit 2 with the list of dialects."""
    runner = CliRunner()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"}
    result = runner.invoke(
        app, ["sql", "--dialect", "snowflake", "--send-day", "1", "--event-names", "session", "--as-of",
              "2026-11-01"], env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "DATEADD(DAY" in result.output and "-- dialect: snowflake" in result.output
    sqlglot.parse_one(_body(result.output), read="snowflake")
    bad = runner.invoke(app, ["sql", "--dialect", "oracle", "--send-day", "1"], env=env)
    assert bad.exit_code == 2 and "bigquery" in bad.output
