"""`engram generate`, `engram ingest` and `engram materialize`: synthetic signals, the batch
pipeline, and the feature snapshots loaded into the online store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from core.cli_errors import err_console, handle_errors
from core.settings import Settings
from core.times import parse_time


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["signals", "movielens"]),
    default="signals",
    help="signals: contract v1 as JSONL or Parquet; movielens: a MovieLens directory.",
)
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Item catalog file.")
@click.option("--as-of", help="Time of the serving snapshot (default: now), RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--memories/--no-memories",
    default=True,
    show_default=True,
    help="Remember the text signals (messages, reviews, searches) in Milvus: MILVUS_URI, or the "
    "home's own server, started when text signals arrive.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Recompute every feature from every stored event (default: update what the new events "
    "touch, when the state of an earlier ingest allows).",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where deduplication, enrichment and aggregation run: embedded DuckDB, or Apache Spark "
    "(pip install 'engram[spark]'; SPARK_MASTER, local[2] by default).",
)
@click.pass_obj
@handle_errors
def ingest(
    settings: Settings,
    path: Path,
    input_format: str,
    catalog: Path | None,
    as_of: str | None,
    as_json: bool,
    memories: bool,
    full: bool,
    engine: str,
) -> None:
    """Run the batch pipeline on PATH: normalize, store, enrich, aggregate, and remember the
    text signals as memories (searchable when the command returns)."""
    from pipelines.batch import run_ingest

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json and not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("ingest", total=None)
        summary = run_ingest(
            settings,
            path,
            input_format=input_format,  # type: ignore[arg-type]
            catalog=catalog,
            as_of=parse_time(as_of, "as-of"),
            on_stage=lambda name: progress.update(task, description=f"ingest: {name}"),
            memories=memories,
            full=full,
            engine=engine,  # type: ignore[arg-type]
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    _print_summary(summary.to_dict())


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="ingest", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        table.add_row(key, str(value))
    Console().print(table)


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--preset", type=click.Choice(["small", "demo", "bench"]), default="small")
@click.option("--users", type=int, help="Override the preset's number of users.")
@click.option("--events", type=int, help="Bench preset: total events (default 10M).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--format", "output_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl")
@click.option(
    "--end",
    help="Time of the last signal, RFC 3339 or 'now' (default: a fixed date, so a seed always "
    "gives the same bytes).",
)
@handle_errors
def generate(
    out: Path,
    preset: str,
    users: int | None,
    events: int | None,
    seed: int,
    output_format: str,
    end: str | None,
) -> None:
    """Write synthetic signals, a catalog and their planted truth to OUT."""
    from pipelines.generate import GenerateConfig, write_dataset

    if preset == "bench":
        config = GenerateConfig.bench(events=events or 10_000_000)
    else:
        config = getattr(GenerateConfig, preset)()
    overrides: dict[str, Any] = {"seed": seed, "format": output_format}
    if users is not None:
        overrides["users"] = users
    if end is not None:
        overrides["end"] = datetime.now(UTC) if end == "now" else parse_time(end, "end")
    config = config.replace(**overrides)
    paths = write_dataset(out, config)
    click.echo(json.dumps({k: str(v) for k, v in vars(paths).items()}))


@click.command()
@click.option("--end", help="Materialize rows up to this time (default: now), RFC 3339.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
@handle_errors
def materialize(settings: Settings, end: str | None, as_json: bool) -> None:
    """Apply the feature repo if needed, then load every view's new rows into Redis."""
    from pipelines.materialize import run_materialize

    summary = run_materialize(settings, end=parse_time(end, "end"))
    if as_json:
        click.echo(json.dumps(summary))
        return
    from rich.table import Table

    table = Table(title=f"materialize up to {summary['end']}")
    for column in ("views", "from", "rows read", "rows written", "seconds"):
        table.add_column(column)
    for done in summary["passes"]:
        table.add_row(
            ", ".join(done["views"]),
            done["start"] or "the beginning",
            str(done["rows_read"]),
            str(done["rows_written"]),
            str(done["seconds"]),
        )
    Console().print(table)
    click.echo(f"{summary['views']} views, {summary['seconds']} s")


def sample_user(settings: Settings) -> str:
    """The user of every `--sample` (pipelines.feature_snapshots.sample_user), handed to
    memory's commands (memory sits below the event store)."""
    from pipelines import duck, feature_snapshots

    return feature_snapshots.sample_user(duck.connect(settings), settings)
