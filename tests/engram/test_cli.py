"""The front door: `engram` registers each package's commands, which live beside their code."""

from __future__ import annotations

import click

from engram.cli import main

# Each command, and the cli.py of the package whose code it runs (the lowest layer that sees
# everything the command calls).
OWNERS = {
    "services": "core.cli",
    "feast-env": "core.cli",
    "memories": "memory.cli",
    "generate": "pipelines.cli",
    "ingest": "pipelines.cli",
    "materialize": "pipelines.cli",
    "produce": "pipelines.stream.cli",
    "stream": "pipelines.stream.cli",
    "features": "ranking.cli",
    "training-data": "ranking.cli",
    "train": "ranking.cli",
    "eval": "ranking.cli",
    "rank": "ranking.cli",
    "models": "ranking.cli",
    "candidates": "ranking.cli",
    "forget": "forget.cli",
    "serve": "serving.cli",
    "keys": "serving.cli",
    "loadtest": "loadtest.cli",
}


def _module(command: click.Command) -> str:
    if isinstance(command, click.Group):
        # A group's subcommands are defined in its module (memory.cli builds its group).
        modules = {_module(sub) for sub in command.commands.values()}
        assert len(modules) == 1, modules
        return modules.pop()
    assert command.callback is not None
    return command.callback.__module__


def test_every_command_is_registered_from_its_package() -> None:
    assert {name: _module(command) for name, command in main.commands.items()} == OWNERS


def test_the_front_door_defines_no_command_of_its_own() -> None:
    import engram.cli

    defined_here = [
        name
        for name, value in vars(engram.cli).items()
        if isinstance(value, click.Command)
        and value is not main
        and value.callback is not None
        and value.callback.__module__ == "engram.cli"
    ]
    assert defined_here == []
