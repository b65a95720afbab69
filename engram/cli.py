"""`engram`, the command-line front door: the group, and each package's commands registered on
it. The commands live beside the code they run (core, pipelines, memory, ranking, forget,
serving, loadtest: each package's cli.py); errors become one line on stderr and an exit code
(core/cli_errors.py)."""

from __future__ import annotations

import click

from core.cli import feast_env, services
from core.settings import get_settings
from forget.cli import forget
from loadtest.cli import loadtest
from memory.cli import memories_group
from pipelines.cli import generate, ingest, materialize, sample_user
from pipelines.stream.cli import produce_command, stream_command
from ranking.cli import candidates, evaluate, features, models, rank, train, training_data
from serving.cli import keys, serve


@click.group()
@click.version_option(package_name="engram")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Engram: user signals to features and memories, ranked and served."""
    ctx.obj = get_settings()


for command in (
    ingest,
    generate,
    materialize,
    produce_command,
    stream_command,
    memories_group(sample_user=sample_user),
    features,
    training_data,
    train,
    evaluate,
    rank,
    models,
    candidates,
    serve,
    keys,
    loadtest,
    forget,
    services,
    feast_env,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
