"""`engram loadtest`: a load run against the API with SLO checks, or a soak with memory checks.

Registered on `engram` by engram/cli.py; the stack it starts runs `engram` in child processes,
so nothing here imports the front door.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from core.cli_errors import handle_errors
from core.settings import Settings
from loadtest.config import parse_duration

_SOAK_DEFAULT_S = 600
err_console = Console(stderr=True)


@click.command("loadtest")
@click.option("--duration", help="Run time: 60, 90s, 10m (default 60 s; 10 min with --soak).")
@click.option("--users", type=int, default=20, show_default=True, help="Concurrent locust users.")
@click.option("--spawn-rate", type=float, default=20.0, show_default=True, help="Users started/s.")
@click.option(
    "--rate",
    type=float,
    default=100.0,
    show_default=True,
    help="Total requests/s aimed at; 0: as fast as the users can.",
)
@click.option(
    "--arrivals",
    type=click.Choice(["poisson", "constant"]),
    default="poisson",
    show_default=True,
    help="Request start times: a Poisson stream at --rate, or every user "
    "once per period in step (bursts of --users requests).",
)
@click.option("--workers", type=int, default=2, show_default=True, help="Server workers.")
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="Threads per server worker (1: sync workers).",
)
@click.option(
    "--soak", is_flag=True, help="Also sample server RSS and Redis memory; fail on growth."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output dir (default under ENGRAM_HOME)."
)
@click.option(
    "--slo",
    "slo_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Traffic mix and SLOs (default loadtest/slo.yaml).",
)
@click.option(
    "--preset",
    type=click.Choice(["small", "demo"]),
    default="demo",
    show_default=True,
    help="Data generated when ENGRAM_HOME has none.",
)
@click.option(
    "--warmup",
    default="10s",
    show_default=True,
    help="Same traffic before the measured run, not counted (0: none).",
)
@click.option(
    "--train/--no-train",
    default=True,
    show_default=True,
    help="When preparing data, train the ranker.",
)
@click.option("--url", help="Load a server already running here instead of starting one.")
@click.option("--api-key", envvar="ENGRAM_LOADTEST_API_KEY", help="Key for --url.")
@click.option("--markdown", is_flag=True, help="Also print the figures as Markdown tables.")
@click.pass_obj
@handle_errors
def loadtest(settings: Settings, **options: Any) -> None:
    """Start the stack if needed, run locust headless, write the HTML report and CSVs, check SLOs.

    Exits 1 and names every broken SLO (or memory growth past its limit in a soak).
    """
    _loadtest(settings, **options)


def _loadtest(
    settings: Settings,
    duration: str | None,
    users: int,
    spawn_rate: float,
    rate: float,
    arrivals: str,
    workers: int,
    threads: int,
    soak: bool,
    out: Path | None,
    slo_path: Path | None,
    preset: str,
    train: bool,
    warmup: str,
    url: str | None,
    api_key: str | None,
    markdown: bool,
) -> None:
    from loadtest import report
    from loadtest.runner import LoadOptions, run_load

    seconds = parse_duration(duration) if duration else (_SOAK_DEFAULT_S if soak else 60)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    options = LoadOptions(
        out=out or settings.engram_home / "loadtest" / stamp,
        duration_s=seconds,
        users=users,
        spawn_rate=spawn_rate,
        rate=rate or None,
        arrivals=arrivals,
        workers=workers,
        threads=threads,
        soak=soak,
        config_path=slo_path,
        preset=preset,
        train=train,
        warmup_s=0 if warmup.strip() in ("0", "0s") else parse_duration(warmup),
        url=url,
        api_key=api_key,
    )
    result = run_load(settings, options, say=lambda line: err_console.print(line, highlight=False))
    click.echo(report.endpoint_table(result.summary))
    if result.summary.get("memory"):
        click.echo(report.memory_table(result.summary))
    if markdown:
        click.echo("\n" + report.markdown(result.summary))
    click.echo(f"report: {result.out / 'report.html'}")
    for line in result.failures:
        err_console.print(line, style="red", markup=False, highlight=False)
    if not result.ok:
        sys.exit(1)
    click.echo("all SLOs held" + (", memory stable" if result.growth else ""))
