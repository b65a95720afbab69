"""The pieces serving borrows from other packages, found here and nowhere else.

- the model: `ranking.ranker.load_ranker` of the version the registry serves (pinned, else the
  latest), reloaded only when that changes; None while nothing is trained (the app then ranks
  by popularity, flagged degraded "no model");
- the stream: `pipelines.stream.producer.produce` appends accepted signals, normalized and
  redacted (it refuses with 503 when the unprocessed backlog is full: backpressure, not loss);
- ?sync=true: `pipelines.stream.process.process_batch`, the stream consumer's own step, with
  the entries' ids from the append (so a forget's tombstone covers them as it covers the
  consumer's), so the online features and memories are readable on return (the consumer later
  sees the same records on the stream and counts them once: its event_id markers dedupe them);
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from core.errors import EngramError
from core.settings import Settings
from core.stores.cluster import RedisClient
from pipelines.stream import producer
from pipelines.stream.process import MemorySink, StreamContext, open_context, process_batch
from pipelines.stream.views import load_layout
from serving.ports import Ranker

log = logging.getLogger("engram.serving")

SIGNALS_STREAM = producer.STREAM
STREAM_FIELD = producer.FIELD


def load_model(settings: Settings, current: Ranker | None = None) -> Ranker | None:
    """The ranker of the version the registry serves (the pinned one, else the latest):
    `current` when that is the one in use and its sources were not rewritten since (a forget:
    ranking.registry.forget_user), None while nothing is trained."""
    from ranking import registry
    from ranking.ranker import load_ranker

    version = registry.serving_version(settings)
    if version is None:
        return None
    if (
        current is not None
        and getattr(current, "version", None) == version
        and getattr(current, "revision", None) == registry.revision(settings, version)
    ):
        return current
    try:
        ranker: Ranker = load_ranker(
            settings,
            version,
            milvus_timeout_s=settings.engram_milvus_timeout_ms / 1000,
            redis_timeout_s=settings.engram_store_timeout_ms / 1000,
        )
    except EngramError as error:
        log.warning("model %s not loaded: %s", version, error)
        return current
    log.info("model %s loaded", version)
    return ranker


def produce(client: RedisClient, records: Sequence[str]) -> list[str]:
    """Append signals to the signals stream in one round trip; their entry ids."""
    return producer.produce(client, records)


class StreamSync:
    """?sync=true: the accepted records through the stream's batch step, now.

    The context (feature layout, DuckDB connection, window state) is built on first use and
    shared by the process's threads one batch at a time: its DuckDB connection is not
    thread-safe, and sync requests are rare next to plain sends.
    """

    def __init__(
        self, settings: Settings, client: RedisClient, redis_url: str, memory: MemorySink | None
    ) -> None:
        self._settings = settings
        self._client = client
        self._redis_url = redis_url
        self._memory = memory
        self._context: StreamContext | None = None
        self._lock = threading.Lock()

    def __call__(self, records: Sequence[str], entry_ids: Sequence[str]) -> dict[str, Any]:
        if not records:
            return {}
        with self._lock:
            if self._context is None:
                layout = load_layout(self._settings, self._redis_url)
                self._context = open_context(
                    self._settings, self._client, layout, memory=self._memory
                )
            result = process_batch(
                self._context, records, entry_ids=entry_ids, source="api", keep_rejected=False
            )
        return {
            "new": result.new,
            "duplicates": result.duplicates,
            "online_rows": result.online_rows,
            "memories_written": int(result.memories.get("written", 0)),
            "seconds": result.seconds,
        }
