"""`engram forget USER_ID`: delete everything held about a user, in every store."""

from __future__ import annotations

import json

import click

from core.cli_errors import handle_errors
from core.settings import Settings


@click.command()
@click.argument("user_id")
@click.pass_obj
@handle_errors
def forget(settings: Settings, user_id: str) -> None:
    """Delete everything held about USER_ID; prints what each store removed, as JSON."""
    from forget.everywhere import forget_everywhere

    click.echo(json.dumps(forget_everywhere(settings, user_id)))
