"""Where the backing services are: the configured URLs, or local servers Engram starts itself."""

from __future__ import annotations

from engram import local_redis
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
