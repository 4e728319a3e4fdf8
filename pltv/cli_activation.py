"""The ``pltv`` shell's activation commands: sandbox, design, score-and-send, status, readout, report.

Like :mod:`pltv.cli` (which registers them on its app), each command parses, builds options, calls one
``activation`` (or ``pltv``) function and prints; imports happen inside the commands so that ``pltv --help``
stays instant. With :mod:`pltv.cli`, the one place allowed to import both packages and read the environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from pltv.cli_options import (
    ConfigOpt,
    EngineOpt,
    LedgerOpt,
    SourceOpt,
    SparkMasterOpt,
    check_engine,
    fail,
    parse_date,
    read_config,
)
from pltv.errors import PltvError


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
            raise fail(
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
        raise fail(exc) from exc

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

    cfg = read_config(config).replace("source", path=source)
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
        raise fail(exc) from exc
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
    ledger: LedgerOpt = None,
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
    engine: EngineOpt = "duckdb",
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The daily job: score users who reached the send day and send their events through CAPI.

    With --engine spark, Spark selects the send window's users and computes their features and scores (a
    Parquet export folder or catalog:<schema>); the ledger, hashing and delivery stay in this process.

    Exit codes: 0 every eligible event sent or skipped for a stated reason; 1 some events failed after
    retries (see `pltv status`); 2 the run could not start (no token, missing spec/model, unreadable or
    broken source, another run on the ledger, bad options or pltv.toml); 3 Meta refused the token,
    permissions, pixel or endpoint mid-run, or redirected it (nothing more was sent; the unsent events stay
    owed to the next run); 4 the ledger could not be written mid-run (disk full): it stays consistent and
    the next run completes it.
    """
    from activation.daily import DailyOptions, run_daily
    from activation.daily_report import exit_code
    from activation.errors import ActivationError, LedgerWriteError, RunStopped
    from activation.redaction import configure_logging
    from pltv.progress import Progress

    token, app_secret = os.environ.get("META_ACCESS_TOKEN"), os.environ.get("META_APP_SECRET")
    cfg = read_config(config).replace("source", path=source)
    cfg = cfg.replace("capi", pixel_id=pixel_id, graph_url=graph_url, ledger=str(ledger) if ledger else None)
    try:
        configure_logging(log_level.upper(), secrets=[s for s in (token, app_secret) if s])
        run_date = parse_date(date, "--date")
        check_engine(engine, spark_master)
    except (ValueError, PltvError) as exc:
        raise fail(exc) from exc
    try:
        options = DailyOptions.from_config(
            cfg, run_date=run_date, spec_path=spec, dry_run=dry_run, access_token=token, app_secret=app_secret,
            test_event_code=test_event_code, replay_now=now, engine=engine, spark_master=spark_master,
        )  # fmt: skip
        with Progress.for_stream(sys.stdout) as progress:
            report = run_daily(options, progress=progress)
    except RunStopped as exc:
        raise fail(exc, code=3) from exc
    except LedgerWriteError as exc:
        raise fail(exc, code=4) from exc
    except (PltvError, ActivationError) as exc:
        raise fail(exc) from exc
    typer.echo(report.render())
    raise typer.Exit(exit_code(report))


def status(
    ledger: LedgerOpt = None,
    days: Annotated[int, typer.Option("--days", min=1, help="How many recent send dates to show.")] = 7,
    config: ConfigOpt = None,
) -> None:
    """Per day and per run: sent / skipped / failed / pending, the last errors, the catch-up backlog, and the
    run history's trend with its warnings (low weekly volume, PSI drift, coverage drops, failures)."""
    from activation.errors import ActivationError
    from activation.status import render_status

    path = Path(ledger or read_config(config).capi.ledger)
    if not path.exists():
        raise fail(RuntimeError(f"no ledger at {path}: run `pltv score-and-send` first (or pass --ledger)"))
    try:
        typer.echo(render_status(path, days=days))
    except ActivationError as exc:
        raise fail(exc) from exc


def _as_of(text: str | None) -> str | None:
    return None if text is None else parse_date(text, "--as-of").isoformat()


readout = typer.Typer(
    name="readout",
    help="Did the signal work? Sent values against realized revenue; the pLTV arm against business as usual.",
    no_args_is_help=True,
)


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

    cfg = read_config(config).replace("source", path=source)
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
        raise fail(exc) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else result.render())


@readout.command("calibration")
def readout_calibration(
    source: SourceOpt = None,
    ledger: LedgerOpt = None,
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

    cfg = read_config(config).replace("source", path=source)
    path = Path(ledger or cfg.capi.ledger)
    try:
        options = CalibrationOptions(horizon_days=cfg.train.horizon_days, as_of=_as_of(as_of))
        result = calibration_readout(cfg.source, path, options)
    except (PltvError, ActivationError) as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2, default=str) if as_json else result.render())


def report(
    source: SourceOpt = None,
    ledger: LedgerOpt = None,
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

    cfg = read_config(config).replace("source", path=source)
    path = Path(ledger or cfg.capi.ledger)
    if not path.exists():
        raise fail(RuntimeError(f"no ledger at {path}: run `pltv score-and-send` first (or pass --ledger)"))
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
        raise fail(exc) from exc
    flags = result.flags()
    typer.echo(f"wrote {written} ({written.stat().st_size / 1e6:.2f} MB): {len(flags)} flag(s)")
    for flag in flags:
        typer.echo(f"  {flag}")
