"""The ``pltv`` command: parse arguments, build a config, call one library function, print a summary.

No logic lives here; every command delegates to ``pltv`` or ``activation``. Imports of the library
happen inside the commands so that ``pltv --help`` stays instant (no MLflow/LightGBM at startup).
This module and :mod:`pltv.cli_activation` (the activation commands, registered here) are the one place
allowed to import both packages and to read environment variables; :mod:`pltv.cli_options` holds what the
commands share.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pltv import cli_activation as activation_commands
from pltv.cli_options import (
    ConfigOpt,
    EngineOpt,
    SourceOpt,
    SparkMasterOpt,
    check_engine,
    fail,
    parse_date,
    read_config,
)
from pltv.errors import PltvError

app = typer.Typer(
    name="pltv",
    help="Predicted lifetime value: train a model, design the Meta event, score and send it daily.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: flags print as flags (rich's table gives every flag a `<bool>` type column, which
    # reads as if `--dry-run true` were expected) and paragraphs wrap whole at the terminal's width.
    rich_markup_mode=None,
)


def _feature_engine(engine: str, source, spark_master: str | None):
    """``None`` for DuckDB, else a :class:`pltv.spark.SparkEngine` on the source (errors exit 2)."""
    check_engine(engine, spark_master)
    if engine == "duckdb":
        return None
    from pltv.spark import SparkEngine

    return SparkEngine(source, master=spark_master)


def sample_data(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (users/transactions/events).")],
    users: Annotated[int, typer.Option("--users", min=100, help="Number of users.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 1,
    end: Annotated[
        str, typer.Option("--end", help="Data complete before this UTC date (YYYY-MM-DD).")
    ] = "2026-11-01",
    experiment_lift: Annotated[
        float | None,
        typer.Option(
            "--experiment-lift",
            help="Write an acquisition experiment: users.acq_arm = treatment/control for recent paid_social "
            "users, the treatment arm's revenue x (1 + this), e.g. 0.25.",
        ),
    ] = None,
    experiment_days: Annotated[
        int,
        typer.Option("--experiment-days", min=1, help="The experiment's span: the last N days of signups."),
    ] = 120,
) -> None:
    """Write a realistic DTC/subscription warehouse export (Parquet) for demos, tests and benchmarks."""
    from pltv.progress import Progress
    from pltv.sample import Experiment, generate_sample

    try:
        parse_date(end, "--end")
        experiment = (
            None if experiment_lift is None else Experiment(lift=experiment_lift, days=experiment_days)
        )
        with Progress.for_stream(sys.stdout) as progress:
            summary = generate_sample(
                out, n_users=users, seed=seed, end=end, experiment=experiment, progress=progress
            )
    except PltvError as exc:
        raise fail(exc) from exc
    typer.echo(
        f"wrote {out}: users={summary['users']:,} transactions={summary['transactions']:,} "
        f"events={summary['events']:,} in {summary['seconds']:.1f}s"
    )


def inspect(source: SourceOpt = None, config: ConfigOpt = None) -> None:
    """Validate a source against the data contract and print a data-quality summary."""
    from pltv.sources import open_source

    cfg = read_config(config).replace("source", path=source)
    try:
        with open_source(cfg.source) as src:
            typer.echo(src.quality.render())
    except PltvError as exc:
        raise fail(exc) from exc


def train_command(
    source: SourceOpt = None,
    send_days: Annotated[
        str | None,
        typer.Option("--send-days", help="Send days to train, comma-separated, e.g. 0,1,3,7 (the default)."),
    ] = None,
    horizon_days: Annotated[
        int | None, typer.Option("--horizon-days", min=1, help="Label window in days (default 365).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Data complete before this UTC date (default: the day after the data ends)."
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(
            "--model-name", help="Registered model name; {send_day} is replaced (default pltv_d{send_day})."
        ),
    ] = None,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote",
            help="Force or forbid the champion alias (default: champion only if it beats its baseline "
            "and is at least as good as the current champion).",
        ),
    ] = None,
    config: ConfigOpt = None,
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
) -> None:
    """Train one pLTV model per send day, evaluate it out of time, log and register it in MLflow."""
    from pltv.config import parse_send_days
    from pltv.evaluate import render_scores
    from pltv.progress import Progress
    from pltv.tracking import ui_command
    from pltv.train import train

    try:
        cfg = read_config(config).replace("source", path=source)
        days = parse_send_days(send_days) if send_days else cfg.train.send_days
        horizon = horizon_days or cfg.train.horizon_days
        if as_of is not None:
            parse_date(as_of, "--as-of")
        feature_engine = _feature_engine(engine, cfg.source, spark_master)
        with Progress.for_stream(sys.stdout) as progress:
            result = train(
                cfg.source,
                send_days=days,
                horizon_days=horizon,
                as_of=as_of,
                tracking_uri=cfg.mlflow.tracking_uri,
                experiment=cfg.mlflow.experiment,
                model_name=model_name or cfg.mlflow.model_name,
                promote=promote,
                progress=progress,
                feature_engine=feature_engine,
            )
    except PltvError as exc:
        raise fail(exc) from exc
    for item in result.results:
        reg = item.registration
        typer.echo("")
        typer.echo(render_scores(item.scores, title=f"send day {item.send_day} ({item.candidate}):"))
        typer.echo(f"  registry: {reg.name} v{reg.version} -> {reg.alias} ({reg.reason})")
    typer.echo(f"\nMLflow run {result.run_id}; browse with: {ui_command(result.tracking_uri)}")


def sql_command(
    dialect: Annotated[
        str, typer.Option("--dialect", help="duckdb, spark, databricks, bigquery or snowflake.")
    ],
    send_day: Annotated[int, typer.Option("--send-day", min=0, help="Days after signup the features see.")],
    population: Annotated[
        str,
        typer.Option(
            "--population", help="matured (training), reached (scoring), send_window (daily) or all."
        ),
    ] = "matured",
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, help="Label window in days.")] = 365,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Data complete before this UTC date (else bind it yourself)."),
    ] = None,
    event_names: Annotated[
        str | None,
        typer.Option("--event-names", help="Comma-separated event names to count (default: the model's)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="NAME@ALIAS or NAME/VERSION whose event names and columns to use."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Print the feature (and label) SQL for a warehouse or Spark, with the parameters to bind."""
    from pltv.errors import ConfigError
    from pltv.features import CATEGORICALS
    from pltv.sql_render import DIALECTS, render_features

    cfg = read_config(config)
    try:
        if dialect not in DIALECTS:
            raise ConfigError(f"--dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
        when = parse_date(as_of, "--as-of") if as_of else None
        categoricals = tuple(dict.fromkeys((*CATEGORICALS, *cfg.source.extra_categoricals)))
        names = [n.strip() for n in event_names.split(",") if n.strip()] if event_names else []
        if model is not None or not event_names:
            from pltv.registry import load_model
            from pltv.score import parse_model_ref, resolve_version

            ref = parse_model_ref(model, template=cfg.mlflow.model_name, send_day=send_day)
            if model is not None or _store_exists(cfg.mlflow.tracking_uri):
                try:
                    pyfunc = load_model(
                        cfg.mlflow.tracking_uri, ref.name, resolve_version(cfg.mlflow.tracking_uri, ref)
                    )
                except PltvError:
                    if model is not None:
                        raise
                    typer.echo(
                        f"note: no model {ref.uri} in {cfg.mlflow.tracking_uri}: rendering without event-count "
                        "columns (pass --event-names or --model)",
                        err=True,
                    )
                else:
                    names = names or pyfunc.event_names
                    categoricals = tuple(pyfunc.categoricals)
        rendered = render_features(
            dialect, send_day=send_day, as_of=when, horizon_days=horizon_days, population=population,
            event_names=names, categoricals=categoricals,
        )  # fmt: skip
    except ValueError as exc:
        raise fail(exc) from exc
    except PltvError as exc:
        raise fail(exc) from exc
    typer.echo(
        rendered.text(f"pLTV features and labels, send day {send_day}, population {population}"), nl=False
    )


def _store_exists(tracking_uri: str) -> bool:
    from pltv.tracking import sqlite_path

    db = sqlite_path(tracking_uri)
    return db is None or db.is_file()


def score_command(
    send_day: Annotated[int, typer.Option("--send-day", min=0, help="The model's send day.")],
    out: Annotated[Path, typer.Option("--out", help="Parquet to write (a folder of part files with Spark).")],
    source: SourceOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="NAME@ALIAS or NAME/VERSION (default: the send day's champion)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Data complete before this UTC date (default: the day after the data ends)."
        ),
    ] = None,
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score every user who reached the send day; write user_id, predicted_ltv, model_version as Parquet.

    Exit codes: 0 written; 2 nothing written (missing model, source or option).
    """
    from pltv.progress import Progress
    from pltv.score import parse_model_ref, score

    cfg = read_config(config).replace("source", path=source)
    try:
        check_engine(engine, spark_master)
        when = parse_date(as_of, "--as-of") if as_of else None
        ref = parse_model_ref(model, template=cfg.mlflow.model_name, send_day=send_day)
        with Progress.for_stream(sys.stdout) as progress:
            result = score(
                cfg.source, send_day=send_day, out=out, tracking_uri=cfg.mlflow.tracking_uri, model=ref,
                as_of=when, engine=engine, spark_master=spark_master, progress=progress,
            )  # fmt: skip
    except ValueError as exc:
        raise fail(exc) from exc
    except PltvError as exc:
        raise fail(exc) from exc
    typer.echo(result.render())


# The commands in the order ``pltv --help`` lists them.
COMMANDS = {
    "sample-data": sample_data,
    "inspect": inspect,
    "sandbox": activation_commands.sandbox,
    "train": train_command,
    "design": activation_commands.design,
    "score-and-send": activation_commands.score_and_send,
    "status": activation_commands.status,
    "report": activation_commands.report,
    "sql": sql_command,
    "score": score_command,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(activation_commands.readout)


def main() -> None:
    """Console entry point."""
    # MLflow's telemetry stays off in the toolkit's own processes.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    app()


if __name__ == "__main__":
    main()
