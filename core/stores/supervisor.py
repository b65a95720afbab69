"""Keeps this ENGRAM_HOME's local Redis and Milvus alive while `engram serve` runs.

`engram serve` runs this as a process of its own beside gunicorn's master (`python -m
core.stores.supervisor`; `engram services supervise` runs it alone): first it starts the local
servers that are not running, then it restarts one whenever it dies, on the ports it had, so the
API's workers, which only ever look addresses up, find it where they left it. A server stopped
on purpose (`engram services stop`) is left stopped, and a hung one (a stopped process) is left
alone: the workers' timeouts and /readyz cover it. Milvus exits by itself when it comes back
from a pause longer than its etcd session ttl; that exit is a death like any other here.

Its own process, not a thread of gunicorn's master: the master forks workers at any time
(a fork copies no thread, and gunicorn reaps any child of the master), and the supervisor talks
gRPC to Milvus, which must not happen in a process that forks afterwards.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from core.errors import ServiceUnavailableError
from core.settings import Settings, get_settings
from core.stores import local_redis

log = logging.getLogger("core.stores.supervisor")

POLL_S = 0.5  # how often each server's process is looked at
RETRY_S = 5.0  # wait after a start that failed
READY_LINE = "ready"  # printed on stdout once the first starts are done


@dataclass(frozen=True)
class LocalService:
    """A local server and how to tell that it died and to start it."""

    name: str
    directory: Path
    crashed: Callable[[Path], bool]
    start: Callable[[Path], str]


def local_services(settings: Settings) -> list[LocalService]:
    """The servers Engram runs itself for these settings (none when both URLs are set)."""
    from core.stores import local_milvus

    services = []
    if not settings.redis_url:
        services.append(
            LocalService(
                "redis",
                settings.services_dir / "redis",
                local_redis.crashed,
                local_redis.ensure_redis,
            )
        )
    if not settings.milvus_uri:
        services.append(
            LocalService(
                "milvus",
                settings.services_dir / "milvus",
                local_milvus.crashed,
                local_milvus.ensure_milvus,
            )
        )
    return services


def start(service: LocalService) -> str | None:
    """Start (or find) the server; its address, or None when it could not start (logged)."""
    began = time.monotonic()
    try:
        address = service.start(service.directory)
    except ServiceUnavailableError as error:
        log.error("%s did not start: %s", service.name, error.reason)
        return None
    log.info("%s at %s (%.1f s)", service.name, address, time.monotonic() - began)
    return address


def keep_alive(service: LocalService, stop: threading.Event, poll_s: float = POLL_S) -> None:
    """Restart the server each time it dies, until `stop` is set."""
    while not stop.wait(poll_s):
        if not service.crashed(service.directory):
            continue
        log.warning("%s died: restarting it", service.name)
        if start(service) is None:
            stop.wait(RETRY_S)


def supervise(settings: Settings, stop: threading.Event, ready: Callable[[], None]) -> None:
    """Start the local servers, call `ready`, then keep them alive until `stop` is set."""
    services = local_services(settings)
    for service in services:
        start(service)
    ready()
    watchers = [
        threading.Thread(target=keep_alive, args=(service, stop), name=f"keep-{service.name}")
        for service in services
    ]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()


def run(settings: Settings) -> None:
    """Supervise these settings' local services until SIGTERM or SIGINT, logging to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [supervisor] %(message)s")
    # A server that is starting refuses calls: pymilvus would log each refusal with its trace.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    stop = threading.Event()

    def finish(_signal: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    supervise(settings, stop, lambda: print(READY_LINE, flush=True))


if __name__ == "__main__":
    run(get_settings())
