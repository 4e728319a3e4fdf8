"""The ``pltv`` command: parse arguments, build a config, call one library function, print a summary.

No logic lives here; every command delegates to ``pltv`` or ``activation``. Imports of the library
happen inside the commands so that ``pltv --help`` stays instant (no MLflow/LightGBM at startup).
This module is the one place allowed to import both packages and to read environment variables.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from pltv.config import Config, resolve_config
from pltv.errors import ConfigError, PltvError

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

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="pltv.toml to read (default: ./pltv.toml when present).")
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source", help="DuckDB file or warehouse-export folder (default: pltv.toml, else data/sample)."
    ),
]


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def parse_date(text: str, flag: str) -> date:
    """``YYYY-MM-DD`` as a date; anything else (``11/01/2026``) a message naming the flag and the format."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError as exc:
        raise ConfigError(f"{flag} must be a date YYYY-MM-DD (UTC), e.g. 2026-11-01; got {text!r}") from exc


def _config(path: Path | None) -> Config:
    """The configuration (file, then MLFLOW_TRACKING_URI); a bad file is a clean error, exit 2."""
    try:
        return resolve_config(path, environ=os.environ)
    except PltvError as exc:
        raise _fail(exc) from exc


EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where features are computed: duckdb (in process) or spark (Spark SQL; needs the [spark] extra, Java 17).",
    ),
]
SparkMasterOpt = Annotated[
    str | None, typer.Option("--spark-master", help="Spark master URL for --engine spark (default local[*]).")
]


def _feature_engine(engine: str, source, spark_master: str | None):
    """``None`` for DuckDB, else a :class:`pltv.spark.SparkEngine` on the source (errors exit 2)."""
    from pltv.errors import ConfigError

    if engine == "duckdb":
        if spark_master is not None:
            raise ConfigError("--spark-master needs --engine spark")
        return None
    if engine != "spark":
        raise ConfigError(f"--engine must be duckdb or spark, got {engine!r}")
    from pltv.spark import SparkEngine

    return SparkEngine(source, master=spark_master)


@app.command("sample-data")
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
        raise _fail(exc) from exc
    typer.echo(
        f"wrote {out}: users={summary['users']:,} transactions={summary['transactions']:,} "
        f"events={summary['events']:,} in {summary['seconds']:.1f}s"
    )


@app.command("inspect")
def inspect(source: SourceOpt = None, config: ConfigOpt = None) -> None:
    """Validate a source against the data contract and print a data-quality summary."""
    from pltv.sources import open_source

    cfg = _config(config).replace("source", path=source)
    try:
        with open_source(cfg.source) as src:
            typer.echo(src.quality.render())
    except PltvError as exc:
        raise _fail(exc) from exc


@app.command("sandbox")
def sandbox(
    port: Annotated[
        int, typer.Option("--port", help="Loopback port to serve (or to query with --show).")
    ] = 8787,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0.0, max=1.0, help="Share of requests that fail (seeded).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Fault-injection seed (same seed, same faults).")] = 0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", min=0, help="Delay of 'latency' faults.")] = 300,
    now: Annotated[
        str | None, typer.Option("--now", help="Sandbox clock start, UTC ISO (replay historical data).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Only accept this access token (default: any non-empty).")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print a running sandbox's summary and exit.")] = False,
) -> None:
    """Serve a local Conversions API sandbox on 127.0.0.1 (Ctrl-C to stop), or --show a running one.

    With META_APP_SECRET set in its environment, the sandbox requires every request's appsecret_proof to
    match it (as Meta does for an app with "Require App Secret")."""
    import json
    import signal

    if show:
        import requests

        try:
            summary = requests.get(f"http://127.0.0.1:{port}/_sandbox/summary", timeout=5).json()
        except requests.RequestException as exc:
            raise _fail(
                RuntimeError(f"no sandbox answering on 127.0.0.1:{port} ({type(exc).__name__})")
            ) from exc
        typer.echo(json.dumps(summary, indent=2))
        return

    from activation.errors import ActivationError
    from activation.sandbox import FaultConfig, Sandbox

    try:
        sb = Sandbox(port=port, faults=FaultConfig(rate=fault_rate, seed=seed, latency_s=latency_ms / 1000),
                     now=now, access_token=token, app_secret=os.environ.get("META_APP_SECRET") or None)  # fmt: skip
    except (ActivationError, ValueError) as exc:
        raise _fail(exc) from exc

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    typer.echo(f"CAPI sandbox on {sb.url} (graph_url for the client); fault rate {fault_rate}, seed {seed}")
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
        typer.echo(f"stopped: {json.dumps(sb.summary()['stats'])}")


@app.command("train")
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
        cfg = _config(config).replace("source", path=source)
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
        raise _fail(exc) from exc
    for item in result.results:
        reg = item.registration
        typer.echo("")
        typer.echo(render_scores(item.scores, title=f"send day {item.send_day} ({item.candidate}):"))
        typer.echo(f"  registry: {reg.name} v{reg.version} -> {reg.alias} ({reg.reason})")
    typer.echo(f"\nMLflow run {result.run_id}; browse with: {ui_command(result.tracking_uri)}")


@app.command("design")
def design(
    source: SourceOpt = None,
    mode: Annotated[
        str, typer.Option("--mode", help="auto | append_value | custom_value | threshold.")
    ] = "auto",
    send_days: Annotated[
        str | None,
        typer.Option(
            "--send-days",
            help="Candidate send days, comma-separated, e.g. 1,3 (default: every day with a champion).",
        ),
    ] = None,
    ad_sets: Annotated[int, typer.Option("--ad-sets", min=1, help="Ad sets sharing the event.")] = 1,
    attribution_window: Annotated[
        int,
        typer.Option(
            "--attribution-window",
            help="The campaign's click attribution window in days: 7 (7-day click, Meta's default) or 1.",
        ),
    ] = 7,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            min=0.0,
            help="Opt in: treat candidates within this future-only Gini of the best as equal and take the "
            "earliest send day (default: the most accurate eligible candidate wins).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the EventSpec JSON.")] = Path(
        "eventspec.json"
    ),
    config: ConfigOpt = None,
) -> None:
    """Design the event Meta optimizes on from the registered models' holdouts; write an EventSpec.

    Exit codes: 0 a spec was written; 1 no candidate satisfies every rule (nothing written; the output
    names the rules and what to change); 2 it could not start (no MLflow store or champion, unreadable
    source, bad options or pltv.toml).
    """
    from activation.design import DesignOptions, render_send_days, render_table
    from activation.design_io import design_from_registry
    from activation.errors import ActivationError
    from pltv.config import parse_send_days

    cfg = _config(config).replace("source", path=source)
    try:
        options = DesignOptions(
            mode=mode,
            send_days=parse_send_days(send_days) if send_days else None,
            ad_sets=ad_sets,
            currency=cfg.source.currency,
            attribution_days=attribution_window,
            tolerance=tolerance,
        )
        result, path = design_from_registry(cfg, options, out=out)
    except (PltvError, ActivationError, ValueError) as exc:
        raise _fail(exc) from exc
    typer.echo(render_table(result))
    typer.echo("")
    typer.echo(render_send_days(result))
    for note in result.notes:
        typer.echo(note)
    typer.echo("")
    typer.echo(result.reason)
    if result.spec is None:
        raise typer.Exit(1)
    spec = result.spec
    typer.echo(
        f"wrote {path}: {spec.spec_id} — {spec.settings.mode} event {spec.settings.event_name!r} on day {spec.settings.send_day}, "
        f"model {spec.model_name} v{spec.model_version}, ~{spec.expected.get('weekly_volume', 0):,.0f} events/week"
    )


@app.command("score-and-send")
def score_and_send(
    date: Annotated[str, typer.Option("--date", help="Run date YYYY-MM-DD (as_of = its 00:00 UTC).")],
    source: SourceOpt = None,
    spec: Annotated[Path, typer.Option("--spec", help="EventSpec from `pltv design`.")] = Path(
        "eventspec.json"
    ),
    pixel_id: Annotated[str | None, typer.Option("--pixel-id", help="Meta pixel / dataset id.")] = None,
    graph_url: Annotated[
        str | None, typer.Option("--graph-url", help="Graph API base URL (the sandbox's for staging).")
    ] = None,
    test_event_code: Annotated[
        str | None, typer.Option("--test-event-code", help="Meta Test Events code (passed through).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Write the request bodies (no token) to an outbox; send nothing."),
    ] = False,
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", help="Delivery ledger (DuckDB file; default ./pltv_ledger.duckdb)."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now", help="Replay clock (UTC ISO) for staging against the sandbox; refused for Meta."
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="Log events to stderr from this level (DEBUG, INFO, WARNING, ERROR); identifiers and "
            "secrets are redacted.",
        ),
    ] = "WARNING",
    config: ConfigOpt = None,
) -> None:
    """The daily job: score users who reached the send day and send their events through CAPI.

    Exit codes: 0 every eligible event sent or skipped for a stated reason; 1 some events failed after
    retries (see `pltv status`); 2 the run could not start (no token, missing spec/model, unreadable or
    broken source, another run on the ledger, bad options or pltv.toml); 3 Meta refused the token,
    permissions, pixel or endpoint mid-run, or redirected it (nothing more was sent; the unsent events stay
    owed to the next run); 4 the ledger could not be written mid-run (disk full): it stays consistent and
    the next run completes it.
    """
    from activation.daily import DailyOptions, exit_code, run_daily
    from activation.errors import ActivationError, LedgerWriteError, RunStopped
    from activation.redaction import configure_logging

    token, app_secret = os.environ.get("META_ACCESS_TOKEN"), os.environ.get("META_APP_SECRET")
    cfg = _config(config).replace("source", path=source)
    cfg = cfg.replace("capi", pixel_id=pixel_id, graph_url=graph_url, ledger=str(ledger) if ledger else None)
    try:
        configure_logging(log_level.upper(), secrets=[s for s in (token, app_secret) if s])
        run_date = datetime.strptime(date, "%Y-%m-%d").date()
    except ValueError as exc:
        raise _fail(exc) from exc
    try:
        options = DailyOptions.from_config(
            cfg, run_date=run_date, spec_path=spec, dry_run=dry_run, access_token=token, app_secret=app_secret,
            test_event_code=test_event_code, replay_now=now,
        )  # fmt: skip
        report = run_daily(options)
    except RunStopped as exc:
        raise _fail(exc, code=3) from exc
    except LedgerWriteError as exc:
        raise _fail(exc, code=4) from exc
    except (PltvError, ActivationError) as exc:
        raise _fail(exc) from exc
    typer.echo(report.render())
    raise typer.Exit(exit_code(report))


@app.command("status")
def status(
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", help="Delivery ledger (DuckDB file; default ./pltv_ledger.duckdb)."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="How many recent send dates to show.")] = 7,
    config: ConfigOpt = None,
) -> None:
    """Per day and per run: sent / skipped / failed / pending, the last errors, the catch-up backlog, and the
    run history's trend with its warnings (low weekly volume, PSI drift, coverage drops, failures)."""
    from activation.errors import ActivationError
    from activation.status import render_status

    path = Path(ledger or _config(config).capi.ledger)
    if not path.exists():
        raise _fail(RuntimeError(f"no ledger at {path}: run `pltv score-and-send` first (or pass --ledger)"))
    try:
        typer.echo(render_status(path, days=days))
    except ActivationError as exc:
        raise _fail(exc) from exc


def _as_of(text: str | None) -> str | None:
    return None if text is None else parse_date(text, "--as-of").isoformat()


readout = typer.Typer(
    name="readout",
    help="Did the signal work? Sent values against realized revenue; the pLTV arm against business as usual.",
    no_args_is_help=True,
)
app.add_typer(readout)


@readout.command("experiment")
def readout_experiment(
    arm_column: Annotated[str, typer.Option("--arm-column", help="users column naming the acquiring arm.")],
    treatment: Annotated[str, typer.Option("--treatment", help="Its value for the pLTV arm.")],
    control: Annotated[str, typer.Option("--control", help="Its value for the business-as-usual arm.")],
    source: SourceOpt = None,
    spend: Annotated[
        Path | None, typer.Option("--spend", help="Spend per arm: CSV or Parquet with date, arm, spend.")
    ] = None,
    maturity_days: Annotated[
        int, typer.Option("--maturity-days", min=1, help="Realized revenue by this many days after signup.")
    ] = 30,
    target_width: Annotated[
        float,
        typer.Option(
            "--target-width", min=0.001, help="Lift interval width a decision needs (0.2 = 20 points)."
        ),
    ] = 0.20,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Read as of this UTC date (default: the day after the data ends)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (lift, lift_ci, arms, ...).")] = False,
    config: ConfigOpt = None,
) -> None:
    """Lift in revenue per user of the pLTV arm over the BAU arm, with a 95 % bootstrap interval.

    Exit codes: 0 read; 2 bad input (column, arm values, spend file, too few matured users)."""
    import json

    from pltv.experiment import ExperimentOptions, experiment_readout

    cfg = _config(config).replace("source", path=source)
    try:
        options = ExperimentOptions(
            arm_column=arm_column, treatment=treatment, control=control, maturity_days=maturity_days,
            horizon_days=cfg.train.horizon_days, target_width=target_width, as_of=_as_of(as_of),
        )  # fmt: skip
        result = experiment_readout(
            cfg.source, options, tracking_uri=cfg.mlflow.tracking_uri, model_name=cfg.mlflow.model_name,
            spend_path=spend,
        )  # fmt: skip
    except PltvError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else result.render())


@readout.command("calibration")
def readout_calibration(
    source: SourceOpt = None,
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", help="Delivery ledger (DuckDB file; default ./pltv_ledger.duckdb)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Read as of this UTC date (default: the day after the data ends)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (users, bias, bias_ci, weeks, ...).")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Sent values against the revenue that followed: bias with a 95 % interval, Gini, deciles, per send week.

    The horizon is [train] horizon_days of pltv.toml (default 365). Exit codes: 0 read; 2 bad input."""
    import json

    from activation.errors import ActivationError
    from activation.readout import CalibrationOptions, calibration_readout

    cfg = _config(config).replace("source", path=source)
    path = Path(ledger or cfg.capi.ledger)
    try:
        options = CalibrationOptions(horizon_days=cfg.train.horizon_days, as_of=_as_of(as_of))
        result = calibration_readout(cfg.source, path, options)
    except (PltvError, ActivationError) as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else result.render())


@app.command("report")
def report(
    source: SourceOpt = None,
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", help="Delivery ledger (DuckDB file; default ./pltv_ledger.duckdb)."),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="The EventSpec in force (default: ./eventspec.json when present)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    config: ConfigOpt = None,
) -> None:
    """One self-contained HTML page: signal health, match keys, values, calibration, experiment, models."""
    from activation.errors import ActivationError
    from activation.report_page import ReportOptions, write_report

    cfg = _config(config).replace("source", path=source)
    path = Path(ledger or cfg.capi.ledger)
    if not path.exists():
        raise _fail(RuntimeError(f"no ledger at {path}: run `pltv score-and-send` first (or pass --ledger)"))
    options = ReportOptions(
        source=cfg.source,
        ledger_path=path,
        tracking_uri=cfg.mlflow.tracking_uri,
        spec_path=spec or (Path("eventspec.json") if Path("eventspec.json").exists() else None),
        model_name=cfg.mlflow.model_name,
        send_days=cfg.train.send_days,
        default_region=cfg.capi.default_region,
        experiment=cfg.experiment,
    )
    try:
        result, written = write_report(options, out)
    except (PltvError, ActivationError) as exc:
        raise _fail(exc) from exc
    flags = result.flags()
    typer.echo(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB): {len(flags)} flag(s)")
    for flag in flags:
        typer.echo(f"  {flag}")


@app.command("sql")
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

    cfg = _config(config)
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
        raise _fail(exc) from exc
    except PltvError as exc:
        raise _fail(exc) from exc
    typer.echo(
        rendered.text(f"pLTV features and labels, send day {send_day}, population {population}"), nl=False
    )


def _store_exists(tracking_uri: str) -> bool:
    from pltv.tracking import sqlite_path

    db = sqlite_path(tracking_uri)
    return db is None or db.is_file()


@app.command("score")
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
    from pltv.errors import ConfigError
    from pltv.score import parse_model_ref, score

    cfg = _config(config).replace("source", path=source)
    try:
        if engine not in ("duckdb", "spark"):
            raise ConfigError(f"--engine must be duckdb or spark, got {engine!r}")
        if spark_master is not None and engine != "spark":
            raise ConfigError("--spark-master needs --engine spark")
        when = parse_date(as_of, "--as-of") if as_of else None
        ref = parse_model_ref(model, template=cfg.mlflow.model_name, send_day=send_day)
        if engine == "spark":
            from pltv.spark import check_spark_runtime

            check_spark_runtime()
        result = score(
            cfg.source, send_day=send_day, out=out, tracking_uri=cfg.mlflow.tracking_uri, model=ref,
            as_of=when, engine=engine, spark_master=spark_master,
        )  # fmt: skip
    except ValueError as exc:
        raise _fail(exc) from exc
    except PltvError as exc:
        raise _fail(exc) from exc
    typer.echo(result.render())


def main() -> None:
    """Console entry point."""
    # MLflow's telemetry stays off in the toolkit's own processes.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    app()


if __name__ == "__main__":
    main()
