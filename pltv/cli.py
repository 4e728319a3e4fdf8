"""The ``pltv`` command: parse arguments, build a config, call one library function, print a summary.

No logic lives here; every command delegates to ``pltv`` or ``activation``. Imports of the library
happen inside the commands so that ``pltv --help`` stays instant (no MLflow/LightGBM at startup).
This module is the one place allowed to import both packages and to read environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pltv.config import Config, load_config
from pltv.errors import PltvError

app = typer.Typer(
    name="pltv",
    help="Predicted lifetime value: train a model, design the Meta event, score and send it daily.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="pltv.toml to read (default: ./pltv.toml when present).")
]
SourceOpt = Annotated[
    str | None,
    typer.Option("--source", help="DuckDB file or warehouse-export folder (default from pltv.toml)."),
]


def _config(path: Path | None) -> Config:
    config = load_config(path)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return config.replace("mlflow", tracking_uri=uri) if uri else config


def _fail(exc: Exception, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (users/transactions/events).")],
    users: Annotated[int, typer.Option("--users", min=100, help="Number of users.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 1,
    end: Annotated[
        str, typer.Option("--end", help="Data complete before this UTC date (YYYY-MM-DD).")
    ] = "2026-11-01",
) -> None:
    """Write a realistic DTC/subscription warehouse export (Parquet) for demos, tests and benchmarks."""
    from pltv.sample import generate_sample

    try:
        summary = generate_sample(out, n_users=users, seed=seed, end=end)
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


def main() -> None:
    """Console entry point."""
    # MLflow's telemetry stays off in the toolkit's own processes.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    app()


if __name__ == "__main__":
    main()
