"""What the ``pltv`` shell's commands share: the ``--config``/``--source``/``--ledger``/``--engine`` options,
reading the configuration, dates from flags, and an error turned into a message and an exit code.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from pltv.config import Config, resolve_config
from pltv.errors import ConfigError, PltvError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="pltv.toml to read (default: ./pltv.toml when present).")
]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source", help="DuckDB file or warehouse-export folder (default: pltv.toml, else data/sample)."
    ),
]

LedgerOpt = Annotated[
    Path | None,
    typer.Option("--ledger", help="Delivery ledger (DuckDB file; default ./pltv_ledger.duckdb)."),
]

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


def check_engine(engine: str, spark_master: str | None) -> None:
    """``--engine duckdb|spark`` and ``--spark-master`` only with Spark, else a :class:`ConfigError`; with
    Spark, pyspark and Java 17 are checked here (what to install, before anything is loaded)."""
    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"--engine must be duckdb or spark, got {engine!r}")
    if spark_master is not None and engine != "spark":
        raise ConfigError("--spark-master needs --engine spark")
    if engine == "spark":
        from pltv.spark import check_spark_runtime

        check_spark_runtime()


def fail(exc: Exception, code: int = 2) -> typer.Exit:
    """Print ``error: <exc>`` in red on stderr; the ``typer.Exit`` to raise (exit 2 unless told)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def parse_date(text: str, flag: str) -> date:
    """``YYYY-MM-DD`` as a date; anything else (``11/01/2026``) a message naming the flag and the format."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError as exc:
        raise ConfigError(f"{flag} must be a date YYYY-MM-DD (UTC), e.g. 2026-11-01; got {text!r}") from exc


def read_config(path: Path | None) -> Config:
    """The configuration (file, then MLFLOW_TRACKING_URI); a bad file is a clean error, exit 2."""
    try:
        return resolve_config(path, environ=os.environ)
    except PltvError as exc:
        raise fail(exc) from exc
