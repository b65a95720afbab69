"""`engram train` and `engram eval`: thin commands over ranking.fit and ranking.evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engram.cli import handle_errors
from engram.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the new version's metadata as JSON.")
@click.pass_obj
@handle_errors
def train(settings: Settings, as_json: bool) -> None:
    """Train the LightGBM ranker on the ingested data and save it as a new registry version."""
    from ranking.fit import train_and_save

    meta = train_and_save(settings)
    if as_json:
        click.echo(json.dumps(meta, default=str))
        return
    metrics = meta["metrics"]
    click.echo(
        f"model {meta['version']}: {len(meta['features'])} features, "
        f"valid NDCG@10 {metrics['valid_ndcg@10']}, {metrics['best_iteration']} trees, "
        f"{meta['seconds']} s"
    )


@click.command("eval")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True,
              help="The data to ingest (a MovieLens directory or a signals file).")  # fmt: skip
@click.option(
    "--format", "input_format", type=click.Choice(["signals", "movielens"]), default="movielens",
    show_default=True, help="Format of --data.",
)  # fmt: skip
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Item catalog file.")
@click.option(
    "--report", "report_dir", type=click.Path(path_type=Path),
    help="Directory of the Markdown report and plots (default: in the run's home).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_obj
@handle_errors
def evaluate(
    settings: Settings,
    data: Path,
    input_format: str,
    catalog: Path | None,
    report_dir: Path | None,
    as_json: bool,
) -> None:
    """Ingest DATA into a fresh home, train the ranker and compare it with the baselines on a
    per-user temporal split; writes a report."""
    from ranking.evaluate import run_eval
    from ranking.report import candidates_table, metrics_table

    result = run_eval(
        settings, data, input_format, catalog=catalog, report_dir=report_dir,
        default_report=True,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    click.echo(metrics_table(result.metrics))
    click.echo()
    click.echo(candidates_table(result.candidates))
    click.echo(f"\nreport: {result.report}")
