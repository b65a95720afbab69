"""A version number per user's memories, in Redis: what lets a process trust its copy of them.

Every change to a user's memories (a write, an edit, a delete, a forget) increments the user's
counter, before the change and again once the store has applied it. A search process keeps each
user's search index (memory.index) with the counter it read *before* reading the memories; while
the counter still holds that number, no change has begun since, and the index answers without
asking Milvus. One GET per search, whichever process wrote: ingests, the stream consumer, other
API workers and other hosts all bump the same counter. The increment before a change makes an
interrupted writer safe: a copy read during the change carries a number the writer already moved
past.

Keys are named by a hash of the user id, as forget tombstones are (no key names the person),
and a forget bumps the counter rather than deleting it: a deleted counter would read as 0 again
and could match a copy made at 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import redis

from core.errors import ServiceUnavailableError

PREFIX = "engram:memories:version:"


def version_key(user_id: str) -> str:
    """The Redis key of the user's counter (a hash of the id, never the id)."""
    return PREFIX + hashlib.sha256(user_id.encode()).hexdigest()[:32]


class MemoryVersions:
    """The per-user counters on one Redis client (passed in; no I/O here until called)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def read(self, user_id: str) -> int:
        """The user's counter (0 when never changed); ServiceUnavailableError when Redis
        cannot say."""
        try:
            value = self._client.get(version_key(user_id))
        except (redis.RedisError, OSError) as error:
            raise ServiceUnavailableError("redis", str(error)) from error
        return int(value) if value is not None else 0

    def bump(self, user_ids: Iterable[str]) -> None:
        """Increment the users' counters (one round trip); ServiceUnavailableError when Redis
        cannot."""
        keys = sorted({version_key(user_id) for user_id in user_ids})
        if not keys:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(key)
                pipe.execute()
        except (redis.RedisError, OSError) as error:
            raise ServiceUnavailableError("redis", str(error)) from error
