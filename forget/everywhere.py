"""Forget a user everywhere: DELETE /v1/users/{id} and `engram forget` run this.

In order:
1. the tombstone (`mark_forgotten`), before anything is deleted: the stream consumer drops the
   user's entries accepted before it however late they come, and serving processes drop the
   user from the copies they loaded before it (pipelines/stream/tombstones.py);
2. every store: memories (Milvus), stored events, dead-letter records, offline feature
   snapshot rows, the online feature row, the signals stream and its dead-letter stream, the
   stream's window state, the model registry (each version's saved log and candidate sources),
   the user's candidates in Redis (ranking.candidate_store);
3. the logs that cannot be edited in place: the Redis AOF is rewritten and the memory
   collection compacted (core/stores/log_retention.py; Milvus's message log has its own bound);
4. the tombstone's time moves to the end (`stamp_forgotten`): a copy loaded while this ran
   may have read what was not deleted yet, so it counts as loaded before the forget.

Running it again finds nothing left and answers zeros; a run that failed part way (a store
down) is completed by running it again.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from core.stores.cluster import RedisClient
from core.stores.log_retention import rewrite_aof
from core.stores.services import connect_redis, connect_url, resolve_redis_url
from forget.offline import forget_feature_rows
from forget.online import forget_in_redis
from memory.service import PURGE_TIMEOUT_S, connect_store
from memory.store import DEFAULT_COLLECTION, checked_id
from memory.versions import MemoryVersions
from pipelines import dead_letter, duck
from pipelines.stream import outbox
from pipelines.stream.tombstones import Tombstone, mark_forgotten, stamp_forgotten
from ranking import candidate_store, registry

REDIS_TIMEOUT_S = 10.0  # per Redis call: the stream is scanned in chunks, each one short
AOF_TIMEOUT_S = 60.0


def forget_everywhere(
    settings: Settings,
    user_id: str,
    *,
    collection: str = DEFAULT_COLLECTION,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Delete everything held about the user, in every store; returns what each removed.

    `timeout_s` bounds each store call and starts no local server (a request path: the API);
    None starts the local servers if they are down (a command: the tombstone must be written)."""
    checked_id(user_id)
    with _client(settings, timeout_s) as client:
        tombstone = mark_forgotten(client, user_id)
        return forget_marked(
            settings, user_id, tombstone, collection=collection, client=client, timeout_s=timeout_s
        )


def forget_marked(
    settings: Settings,
    user_id: str,
    tombstone: Tombstone,
    *,
    collection: str = DEFAULT_COLLECTION,
    client: RedisClient | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """The forget after its tombstone: every store, the logs, then the tombstone's time."""
    checked_id(user_id)
    if client is None:
        with _client(settings, timeout_s) as own:
            return forget_marked(
                settings, user_id, tombstone, collection=collection, client=own, timeout_s=timeout_s
            )
    removed: dict[str, Any] = {"user_id": user_id}
    store = connect_store(settings, collection=collection, timeout_s=timeout_s)
    versions = MemoryVersions(client)
    try:
        held = store.exists()
        # The version moves before and after the delete: every search process drops its index
        # of the user at its next search (memory.versions).
        versions.bump([user_id])
        removed["memories"] = store.delete_user(user_id) if held else 0
        versions.bump([user_id])
        # Deleted rows stay in the collection's segments until a compaction rewrites them.
        purges = [store.purge(PURGE_TIMEOUT_S)] if held else []
    finally:
        store.close()
    con = duck.connect(settings)
    try:
        # The stream's outbox and the event store, under the outbox's drain lock.
        removed.update(outbox.forget_user(client, settings, user_id, con=con))
    finally:
        con.close()
    removed["dead_letter"] = dead_letter.forget_user(settings, user_id)
    removed["feature_rows"] = forget_feature_rows(settings, user_id)
    in_redis = forget_in_redis(client, user_id, tombstone.boundary)
    removed["online"] = in_redis.online
    removed["stream"] = in_redis.stream
    removed["stream_state"] = in_redis.stream_state
    models = registry.forget_user(settings, user_id)
    removed["model_versions"] = models.versions
    removed["model_interactions"] = models.interactions
    # After the registry: a version loaded from now on no longer holds the user to publish.
    removed["candidates"] = candidate_store.forget_user(client, user_id)
    # The AOF still holds every deleted write until it is rewritten.
    purges.append(rewrite_aof(client, timeout_s=AOF_TIMEOUT_S))
    removed["logs"] = {purge.target: purge.outcome for purge in purges}
    stamp_forgotten(client, user_id)
    return removed


def _client(settings: Settings, timeout_s: float | None) -> RedisClient:
    if timeout_s is None:
        return connect_url(
            settings,
            resolve_redis_url(settings),
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
    return connect_redis(settings, timeout_s)
