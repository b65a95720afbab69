"""The app's process-wide objects, kept in `app.extensions["engram"]`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from core.settings import Settings
from core.stores.cluster import RedisClient
from pipelines.normalize import RecordNormalizer
from serving.backends import FeatureReader, MemoryHandle, RankService
from serving.breaker import Breaker
from serving.metrics import Metrics
from serving.ports import Producer, SyncProcessor


@dataclass
class Engram:
    """Everything a request may use, built once by the app factory."""

    settings: Settings
    api_keys: dict[bytes, frozenset[str]]
    scopes: dict[str, str]  # endpoint -> the scope its operation states (serving/auth.py)
    redis_url: str
    redis: RedisClient
    redis_breaker: Breaker
    normalizer: RecordNormalizer  # the contract's checks, planned once (thread-safe)
    features: FeatureReader
    memories: MemoryHandle
    ranking: RankService
    produce: Producer
    sync: SyncProcessor
    metrics: Metrics

    def close(self) -> None:
        """Release clients and stop the refresh thread."""
        self.ranking.stop()
        self.memories.close()
        self.redis.close()
        self.normalizer.close()


def engram() -> Engram:
    """The current app's Engram objects."""
    found: Engram = current_app.extensions["engram"]
    return found
