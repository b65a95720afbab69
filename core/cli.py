"""`engram services` and `engram feast-env`: the local Redis and Milvus, and the plain feast
CLI's environment."""

from __future__ import annotations

import json

import click

from core.cli_errors import handle_errors
from core.settings import Settings


@click.command("feast-env")
@click.pass_obj
@handle_errors
def feast_env(settings: Settings) -> None:
    """Print `export` lines for the plain feast CLI: eval "$(engram feast-env)"."""
    import shlex

    from core.stores.feature_store import feast_environment
    from core.stores.services import resolve_redis_url

    for name, value in feast_environment(settings, resolve_redis_url(settings)).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@click.group()
def services() -> None:
    """Local Redis and Milvus servers used when REDIS_URL / MILVUS_URI are unset."""


@services.command("start")
@click.pass_obj
@handle_errors
def services_start(settings: Settings) -> None:
    """Start the local services (no-op for a service whose URL is configured)."""
    from core.stores.services import resolve_milvus_uri, resolve_redis_url

    click.echo(
        json.dumps({"redis": resolve_redis_url(settings), "milvus": resolve_milvus_uri(settings)})
    )


@services.command("stop")
@click.pass_obj
@handle_errors
def services_stop(settings: Settings) -> None:
    """Stop the local services of this ENGRAM_HOME."""
    from core.stores.services import stop_local_services

    click.echo(json.dumps(stop_local_services(settings)))


@services.command("supervise")
@click.pass_obj
@handle_errors
def services_supervise(settings: Settings) -> None:
    """Start the local services and restart any that dies, until Ctrl-C (engram serve runs
    this itself)."""
    from core.stores import supervisor

    supervisor.run(settings)


@services.command("status")
@click.pass_obj
@handle_errors
def services_status(settings: Settings) -> None:
    """Where each service is (null when a local one is not running)."""
    from core.stores.services import local_services_status

    click.echo(json.dumps(local_services_status(settings)))
