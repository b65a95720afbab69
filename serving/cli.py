"""`engram serve`: the API under gunicorn, one app (and one set of clients) per worker.

The local Redis and Milvus (when REDIS_URL / MILVUS_URI are unset) are started and kept alive by
a supervisor process beside gunicorn's master (core/stores/supervisor.py), never by the workers:
they only look the recorded addresses up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, cast

import click

from core.cli_errors import handle_errors
from core.errors import ConfigError, InvalidInputError
from core.settings import Settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Threads per worker; 1 runs sync workers (one request at a time, no keep-alive).",
)
@click.option("--no-auth", is_flag=True, help="No API keys (development; loopback hosts only).")
@click.pass_obj
@handle_errors
def serve(
    settings: Settings, host: str, port: int, workers: int, threads: int, no_auth: bool
) -> None:
    """Serve the HTTP API (docs/api.md) with gunicorn."""
    from gunicorn.app.base import BaseApplication

    from core.stores.services import connect_redis
    from serving import logs
    from serving.app import create_app
    from serving.auth import has_keys, is_loopback, load_keys
    from serving.metrics import across_workers
    from serving.worker import worker_class

    if no_auth and not is_loopback(host):
        raise InvalidInputError("no-auth", f"refused on {host}: bind a loopback address")
    test_config = {"ENGRAM_AUTH": False} if no_auth else None
    configured = load_keys(settings)  # a bad key configuration fails here, not in every worker

    # Store failures the API answers itself (503, degraded rankings) would each be logged by
    # pymilvus with its whole trace, many a second while Milvus restarts.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    if across_workers():  # a directory left by an earlier run would add its counts to ours
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()

    if not no_auth and not configured:
        with connect_redis(settings) as client:  # issued keys live in Redis (started if local)
            found = has_keys(configured, client)
        if not found:
            raise ConfigError(
                "ENGRAM_API_KEYS",
                "no API key is configured: `engram keys create --scopes read,write`, or set "
                "ENGRAM_API_KEYS (or run --no-auth on a loopback host)",
            )
    supervisor = _start_supervisor(settings)

    class Server(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                # Ranking is CPU work under the GIL: threads of one worker only queue behind
                # each other, and a keep-alive connection stays with its (maybe busy) worker.
                # Sync workers take the next request only when free, so the idle one answers.
                "worker_class": worker_class(threads, settings.engram_read_timeout_seconds),
                "timeout": 60,
                "graceful_timeout": 10,
                "keepalive": 5,
                "accesslog": "-",
                "logger_class": logs.GunicornLogger,  # JSON lines with the request id
                "loglevel": settings.engram_log_level,
                # gunicorn 27's control socket is one path per machine user: servers side by
                # side (tests, load runs) would share it. Engram is managed by signals instead.
                "control_socket_disable": True,
                "child_exit": _worker_exited,
                "post_worker_init": _warm_worker,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return create_app(settings, test_config)

    try:
        Server().run()
    finally:
        if supervisor is not None:
            _stop_supervisor(supervisor)


SUPERVISOR_START_S = 180.0  # the first start of Milvus unpacks its binaries: a minute or more


def _start_supervisor(settings: Settings) -> subprocess.Popen[str] | None:
    """The supervisor of this home's local services, once it has started them (None when
    REDIS_URL and MILVUS_URI are both set). It dies with this process, even on SIGKILL."""
    from core.stores import local_milvus
    from core.stores.supervisor import READY_LINE

    if settings.redis_url and settings.milvus_uri:
        return None
    environment = {**os.environ, "ENGRAM_HOME": str(settings.engram_home)}
    for name, value in (("REDIS_URL", settings.redis_url), ("MILVUS_URI", settings.milvus_uri)):
        if value:
            environment[name] = value
    process = subprocess.Popen(
        [sys.executable, "-m", "core.stores.supervisor"],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=local_milvus.die_with_parent(),
    )
    said = cast(IO[str], process.stdout)
    deadline = time.monotonic() + SUPERVISOR_START_S
    line = ""
    while line.strip() != READY_LINE and process.poll() is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break  # serve anyway: the stores answer 503 until they are up
        if select.select([said], [], [], remaining)[0]:
            line = said.readline()
    return process


def _stop_supervisor(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL: the services it started keep running (engram services stop)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _worker_exited(_server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges leave the shared metrics."""
    from serving.metrics import across_workers

    if across_workers():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def _warm_worker(worker: Any) -> None:
    """gunicorn's post_worker_init hook: the embedding model and the memory collection load
    before the worker takes requests, not in its first memory search (about a second); then
    the heap is frozen (serving.backends.freeze_heap)."""
    from core.errors import ServiceUnavailableError
    from serving.backends import freeze_heap

    # Milvus down now: memory requests answer 503 until it is back.
    with contextlib.suppress(ServiceUnavailableError):
        worker.wsgi.extensions["engram"].memories.get()
    freeze_heap()


@click.group()
def keys() -> None:
    """API keys issued into Redis: shown once when created, revocable on every host at once."""


@keys.command("create")
@click.option("--scopes", required=True, help="Comma-separated: read, write, admin.")
@click.option("--tenant", help="Who the key is for (kept with it and named in its log lines).")
@click.option(
    "--rate",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Requests per second before 429 (0: no limit).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"key_id", "key", ...} as JSON.')
@click.pass_obj
@handle_errors
def keys_create(
    settings: Settings, scopes: str, tenant: str | None, rate: int, as_json: bool
) -> None:
    """Issue a key; it is printed once and stored only as a digest."""
    from core.stores.services import connect_redis
    from serving import keys as issued_keys

    wanted = {scope.strip() for scope in scopes.split(",") if scope.strip()}
    with connect_redis(settings) as client:
        record, key = issued_keys.create(client, wanted, tenant, rate)
    if as_json:
        click.echo(json.dumps({**record.to_dict(), "key": key}))
        return
    click.echo(f"key_id {record.key_id} ({', '.join(sorted(record.scopes))})")
    click.echo(f"key    {key}    (shown once: keep it now)")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_obj
@handle_errors
def keys_list(settings: Settings, as_json: bool) -> None:
    """The issued keys' ids, scopes, tenants, limits and creation times (never the keys)."""
    from core.stores.services import connect_redis
    from serving import keys as issued_keys

    with connect_redis(settings) as client:
        records = issued_keys.listed(client)
    for record in records:
        row = record.to_dict()
        if as_json:
            click.echo(json.dumps(row))
        else:
            scopes = ",".join(row["scopes"])
            click.echo(f"{row['key_id']}  {scopes}  {row['tenant'] or '-'}  {row['created_at']}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
@handle_errors
def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key: every host refuses it from its next request."""
    from core.stores.services import connect_redis
    from serving import keys as issued_keys

    with connect_redis(settings) as client:
        if not issued_keys.revoke(client, key_id):
            raise InvalidInputError("key_id", f"no key {key_id}")
    click.echo(f"revoked {key_id}")
