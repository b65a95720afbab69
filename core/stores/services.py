"""Where the backing services are: the configured URLs, or local servers Engram starts itself.

Two kinds of callers. Commands and batch jobs `resolve_*` an address, which starts this home's
local server when none runs, and connect without time limits. Request paths (the API's workers)
pass `timeout_s` to `connect_redis` / `connect_milvus`: their clients never start a server (the
supervisor of `engram serve` keeps the local ones alive, core/stores/supervisor.py), bound every
call by the timeout, reconnect by themselves after a server restarts, and look the local
server's recorded address up again when it moved to another port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from core.errors import ConfigError, ServiceUnavailableError
from core.settings import Settings
from core.stores import local_redis
from core.stores.cluster import RedisClient

MAX_CONNECTIONS = 64  # per Redis pool of a request path
# Creating a collection is several calls server-side (create, index, load); cut halfway it
# would leave a collection without an index, so it gets this bound instead of the request's.
SETUP_TIMEOUT_S = 60.0


def resolve_redis_url(settings: Settings) -> str:
    """REDIS_URL when set; otherwise the URL of the local server, started if needed."""
    if settings.redis_url:
        return settings.redis_url
    if settings.redis_cluster:
        raise ConfigError("REDIS_CLUSTER", "needs REDIS_URL (any node of the cluster)")
    return local_redis.ensure_redis(settings.services_dir / "redis")


def resolve_milvus_uri(settings: Settings) -> str:
    """MILVUS_URI when set; otherwise the URI of the local embedded server, started if needed."""
    if settings.milvus_uri:
        return settings.milvus_uri
    from core.stores import local_milvus  # the embedded server's package is heavy to import

    return local_milvus.ensure_milvus(settings.services_dir / "milvus")


def _not_started(service: str, settings: Settings) -> ServiceUnavailableError:
    variable = "REDIS_URL" if service == "redis" else "MILVUS_URI"
    return ServiceUnavailableError(
        service,
        f"no local {service} server was ever started for {settings.engram_home} "
        f"(run `engram services start`, or set {variable})",
    )


def locate_redis_url(settings: Settings) -> str:
    """REDIS_URL, or the local server's recorded URL, up or not; starts nothing."""
    url = settings.redis_url or local_redis.recorded_url(settings.services_dir / "redis")
    if url is None:
        raise _not_started("redis", settings)
    return url


def locate_milvus_uri(settings: Settings) -> str:
    """MILVUS_URI, or the local server's recorded URI, up or not; starts nothing."""
    from core.stores import local_milvus

    uri = settings.milvus_uri or local_milvus.recorded_uri(settings.services_dir / "milvus")
    if uri is None:
        raise _not_started("milvus", settings)
    return uri


def connect_redis(settings: Settings, timeout_s: float | None = None) -> RedisClient:
    """A Redis client on REDIS_URL or the local server; a RedisCluster when REDIS_CLUSTER is
    set (REDIS_URL then names any node of the cluster).

    Without `timeout_s` (commands, batch jobs) the local server is started if needed and
    calls wait as long as they take. With it (request paths): pooled connections with that
    socket timeout and no retries, so a hung server fails the call at once (the caller's breaker
    decides what next); the local server is never started, and each new connection dials the
    port it is recorded on now, so a restart on another port is followed."""
    if settings.redis_cluster:
        return connect_cluster(resolve_redis_url(settings), timeout_s)
    if timeout_s is None:
        return redis.Redis.from_url(resolve_redis_url(settings))
    options = _bounded(timeout_s)
    if settings.redis_url:
        return redis.Redis.from_url(settings.redis_url, **options)
    pool = redis.ConnectionPool(
        connection_class=_LocalRedisConnection,
        directory=settings.services_dir / "redis",
        host="127.0.0.1",
        **options,
    )
    return redis.Redis.from_pool(pool)  # closing the client closes its pool


def connect_url(settings: Settings, url: str, **options: Any) -> RedisClient:
    """A client on this URL, of the kind the settings say (a node of a cluster, or a server)."""
    if settings.redis_cluster:
        return connect_cluster(url, **options)
    return redis.Redis.from_url(url, **options)


def connect_cluster(url: str, timeout_s: float | None = None, **options: Any) -> RedisCluster:
    """A RedisCluster client from one node's URL; the slot map is read from that node."""
    parsed = urlparse(url)
    if parsed.path.strip("/") not in ("", "0"):
        raise ConfigError("REDIS_URL", f"a Redis Cluster has database 0 only, got {url!r}")
    url = parsed._replace(path="").geturl()
    if timeout_s is None:
        return RedisCluster.from_url(url, **options)
    # redis-py follows MOVED/ASK within these attempts (it retries a node that does not
    # answer as well: two attempts bound that by twice the timeout).
    return RedisCluster.from_url(url, **{**_bounded(timeout_s), "retry": Retry(NoBackoff(), 1)})


def _bounded(timeout_s: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": MAX_CONNECTIONS,
        "health_check_interval": 30,
    }


class _LocalRedisConnection(redis.Connection):
    """A connection to the local Redis of a directory, on the port recorded there when it
    connects (pooled connections found dead are reconnected by the pool)."""

    def __init__(self, *, directory: Path, **kwargs: Any) -> None:
        self._directory = directory
        super().__init__(port=local_redis.recorded_port(directory) or 0, **kwargs)

    def _connect(self) -> Any:
        port = local_redis.recorded_port(self._directory)
        if port is None:
            raise redis.ConnectionError(f"no local Redis was ever started in {self._directory}")
        self.port = port
        return super()._connect()


def connect_milvus(settings: Settings, timeout_s: float | None = None) -> Any:
    """A MilvusClient on MILVUS_URI or the local server.

    Without `timeout_s` (commands, batch jobs) the local server is started if needed and calls
    keep pymilvus's defaults. With it (request paths) a client that connects on first use, never
    starts a server, gives every call this timeout (creating a collection gets SETUP_TIMEOUT_S),
    raises MilvusException for any failure (grpc's own errors included) and, after a failure,
    looks the server's address up again. pymilvus itself reconnects to the same address."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    _quiet_iterators()
    if timeout_s is not None:
        return _BoundedClient(lambda: locate_milvus_uri(settings), timeout_s)
    uri = resolve_milvus_uri(settings)
    try:
        return MilvusClient(uri=uri)
    except MilvusException as error:
        raise ServiceUnavailableError("milvus", f"{uri}: {error.message}") from error


def _drop_session_ts_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("failed to get mvccTs")


def _quiet_iterators() -> None:
    """Milvus 2.3 (the embedded server) gives query iterators no session timestamp; pymilvus
    then uses its own clock, as it should, but warns on every iterator. Only that line goes."""
    log = logging.getLogger("pymilvus.client.iterator.query_iterator")
    if _drop_session_ts_warning not in log.filters:
        log.addFilter(_drop_session_ts_warning)


class _BoundedClient:
    """A MilvusClient for request paths (see `connect_milvus`)."""

    SETUP = frozenset({"create_collection", "create_index"})

    def __init__(self, locate: Callable[[], str], timeout_s: float) -> None:
        self._locate = locate
        self._timeout_s = timeout_s
        self._client: Any = None
        self._uri: str | None = None
        self._stale = True  # look the address up before the next call
        self._lock = threading.Lock()

    def _current(self) -> Any:
        from pymilvus import MilvusClient

        with self._lock:
            if self._stale:
                uri = self._locate()
                if uri != self._uri and self._client is not None:
                    self._client.close()
                    self._client = None
                self._uri, self._stale = uri, False
            if self._client is None:
                # Dedicated: pymilvus's shared connections probe an idle one for 5 s on reuse.
                self._client = MilvusClient(uri=self._uri, timeout=self._timeout_s, dedicated=True)
            return self._client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def bounded(*args: Any, **kwargs: Any) -> Any:
            import grpc
            from pymilvus.exceptions import MilvusException

            kwargs.setdefault("timeout", SETUP_TIMEOUT_S if name in self.SETUP else self._timeout_s)
            try:
                return getattr(self._current(), name)(*args, **kwargs)
            except grpc.RpcError as error:
                self._stale = True
                # pymilvus lets a deadline through as grpc's own error; callers handle Milvus's.
                code = error.code().name if isinstance(error, grpc.Call) else "RPC_ERROR"
                raise MilvusException(message=f"{name}: {code}") from error
            except MilvusException:
                self._stale = True
                raise

        return bounded

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._stale = True


def stop_local_services(settings: Settings) -> dict[str, bool]:
    """Stop the local servers of this ENGRAM_HOME; says which ones were running."""
    from core.stores import local_milvus

    return {
        "redis": local_redis.stop_redis(settings.services_dir / "redis"),
        "milvus": local_milvus.stop_milvus(settings.services_dir / "milvus"),
    }


def local_services_status(settings: Settings) -> dict[str, str | None]:
    """URL of each service as the settings resolve it now, None when down; starts nothing."""
    from core.stores import local_milvus

    return {
        "redis": settings.redis_url or local_redis.redis_status(settings.services_dir / "redis"),
        "milvus": settings.milvus_uri
        or local_milvus.milvus_status(settings.services_dir / "milvus"),
    }
