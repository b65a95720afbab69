"""The user in Redis: the online feature row, the signals stream and its dead-letter stream,
and the stream's window state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.stores.cluster import RedisClient
from core.stores.feature_store import project_name
from core.stores.online.layout import redis_key
from core.stores.online.push import written_key
from pipelines.stream.consumer import ConsumerConfig
from pipelines.stream.producer import STREAM, forget_entries
from pipelines.stream.state import forget_user_state


@dataclass(frozen=True)
class RedisForget:
    """What `forget_in_redis` removed."""

    online: int  # the online feature row (every user view lives in one hash per user)
    stream: int  # entries of the signals stream and of its dead-letter stream
    stream_state: int  # window state keys, and the user's place in items' user sets


def forget_in_redis(client: RedisClient, user_id: str, boundary: str) -> RedisForget:
    """Delete the user's online feature row, window state, their stream entries up to the
    tombstone's `boundary` (later ones came after the forget) and their dead-letter entries."""
    project = project_name()
    deleted: Any = client.delete(redis_key(project, ["user_id"], [user_id]))
    client.delete(written_key(project, "user_id", user_id))
    online = int(deleted)
    stream = forget_entries(client, user_id, STREAM, up_to=boundary)
    stream += forget_entries(client, user_id, ConsumerConfig(stream=STREAM).dead_stream)
    return RedisForget(online, stream, forget_user_state(client, user_id))
