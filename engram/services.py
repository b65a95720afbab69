"""Where the backing services are: the configured URLs, or local servers Engram starts itself."""

from __future__ import annotations

import functools
from typing import Any

from engram import local_redis
from engram.errors import ServiceUnavailableError
from engram.settings import Settings


def resolve_redis_url(settings: Settings) -> str:
    """REDIS_URL when set; otherwise the URL of the local server, started if needed."""
    if settings.redis_url:
        return settings.redis_url
    return local_redis.ensure_redis(settings.services_dir / "redis")


def resolve_milvus_uri(settings: Settings) -> str:
    """MILVUS_URI when set; otherwise the URI of the local embedded server, started if needed."""
    if settings.milvus_uri:
        return settings.milvus_uri
    from engram import local_milvus  # the embedded server's package is heavy to import

    return local_milvus.ensure_milvus(settings.services_dir / "milvus")


def connect_milvus(settings: Settings, timeout_s: float | None = None) -> Any:
    """A MilvusClient on MILVUS_URI (or the local server, started if needed).

    With `timeout_s`, each data call (search, query, get, insert, upsert, delete) gets this
    timeout unless it passes its own, so a hung server fails the call (MilvusException) instead
    of holding the caller: the API gives ENGRAM_MILVUS_TIMEOUT_MS, batch jobs give none.
    Creating and loading a collection keeps no limit: it may rightly take seconds."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    uri = resolve_milvus_uri(settings)
    try:
        client = MilvusClient(uri=uri)
    except MilvusException as error:
        raise ServiceUnavailableError("milvus", f"{uri}: {error.message}") from error
    return client if timeout_s is None else _TimedClient(client, timeout_s)


class _TimedClient:
    """A MilvusClient whose calls carry a default timeout (see `connect_milvus`)."""

    TIMED = frozenset({"search", "query", "query_iterator", "get", "insert", "upsert", "delete"})

    def __init__(self, client: Any, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self.TIMED:
            return attribute

        @functools.wraps(attribute)
        def timed(*args: Any, **kwargs: Any) -> Any:
            import grpc
            from pymilvus.exceptions import MilvusException

            kwargs.setdefault("timeout", self._timeout_s)
            try:
                return attribute(*args, **kwargs)
            except grpc.RpcError as error:
                # pymilvus lets a deadline through as grpc's own error; callers handle Milvus's.
                code = error.code().name if isinstance(error, grpc.Call) else "RPC_ERROR"
                raise MilvusException(message=f"{name}: {code}") from error

        return timed


def stop_local_services(settings: Settings) -> dict[str, bool]:
    """Stop the local servers of this ENGRAM_HOME; says which ones were running."""
    from engram import local_milvus

    return {
        "redis": local_redis.stop_redis(settings.services_dir / "redis"),
        "milvus": local_milvus.stop_milvus(settings.services_dir / "milvus"),
    }


def local_services_status(settings: Settings) -> dict[str, str | None]:
    """URL of each service as the settings resolve it now, None when down; starts nothing."""
    from engram import local_milvus

    return {
        "redis": settings.redis_url or local_redis.redis_status(settings.services_dir / "redis"),
        "milvus": settings.milvus_uri
        or local_milvus.milvus_status(settings.services_dir / "milvus"),
    }
