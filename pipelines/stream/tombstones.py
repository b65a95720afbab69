"""Forget tombstones: what orders a forget against the stream and against in-process copies.

`mark_forgotten` runs first in every forget, before any store is cleaned. It records, under a
key named by a hash of the user id (no key names the person), the signals stream's last
generated entry id (the *boundary*) and the Redis server's time. Then:

- a stream entry of the user with an id at or below the boundary was accepted before the forget:
  the consumer drops it, however late it is delivered (a redelivery, a claim, a batch that was
  in hand when the forget came);
- a process that holds the user's data in memory (the ranker's training log, the popularity
  table) and loaded it before `forgotten_at_ms` drops the user before answering for them. When
  every store is clean the forget moves `forgotten_at_ms` to its end (`stamp_forgotten`): a copy
  loaded while the forget ran may have read what it had not deleted yet;
- an entry above the boundary came after the forget: a new start, kept.

A consumer checks the tombstones of a batch's users before it applies the batch and again after
its writes are done; a forget marks before it deletes. So either the consumer's second check
sees the tombstone and removes what it wrote, or its writes were finished before the forget
began deleting and the forget removes them (docs/streaming.md, "Forget").

Tombstones are kept: a hashed id and two numbers per forgotten user. They cannot be undone by
re-sending old entries, and they must outlive any copy of the user's data that a stopped
process might still hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.stores.cluster import RedisClient
from core.stores.online.transport import Read, command
from pipelines.stream.producer import STREAM

# In the stream's hash tag: `mark_forgotten` reads the stream and writes the tombstone in one
# script, which on a Redis Cluster must touch one slot.
PREFIX = STREAM + ":forgotten:"

# KEYS: the stream, the tombstone. Returns {boundary, server time in ms}.
_MARK = """
local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
local boundary = '0-0'
if ok then
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then boundary = info[i + 1] end
  end
end
local now = redis.call('TIME')
local ms = tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('SET', KEYS[2], boundary .. ' ' .. ms)
return {boundary, ms}
"""


# KEYS: the tombstone. Keeps its boundary, sets its time to now; nil when there is none.
_STAMP = """
local value = redis.call('GET', KEYS[1])
if not value then return nil end
local boundary = string.match(value, '^(%S+)')
local now = redis.call('TIME')
local ms = tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('SET', KEYS[1], boundary .. ' ' .. ms)
return {boundary, ms}
"""


@dataclass(frozen=True)
class Tombstone:
    """A user's forget: stream entries at or below `boundary` are theirs no more."""

    boundary: str
    forgotten_at_ms: int

    def covers(self, entry_id: str) -> bool:
        """True when the stream entry was accepted before the forget."""
        return entry_key(entry_id) <= entry_key(self.boundary)

    def after(self, loaded_at_ms: float) -> bool:
        """True when the forget came after data loaded at `loaded_at_ms` (epoch ms)."""
        return self.forgotten_at_ms >= loaded_at_ms


def user_token(user_id: str) -> str:
    """The hash that names a user's tombstone."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def tombstone_key(user_id: str) -> str:
    """The Redis key of the user's tombstone."""
    return PREFIX + user_token(user_id)


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def mark_forgotten(client: RedisClient, user_id: str, *, stream: str = STREAM) -> Tombstone:
    """Record the user's forget at the stream's current end; call before deleting anything."""
    reply: Any = client.eval(_MARK, 2, stream, tombstone_key(user_id))
    boundary, ms = (_text(value) for value in reply)
    return Tombstone(boundary, int(ms))


def stamp_forgotten(client: RedisClient, user_id: str, *, stream: str = STREAM) -> Tombstone:
    """Move the user's tombstone time to now, keeping its boundary; call when the forget has
    cleaned every store (a tombstone gone missing meanwhile is marked again)."""
    reply: Any = client.eval(_STAMP, 1, tombstone_key(user_id))
    if reply is None:
        return mark_forgotten(client, user_id, stream=stream)
    boundary, ms = (_text(value) for value in reply)
    return Tombstone(boundary, int(ms))


def read_tombstones(client: RedisClient, user_ids: Iterable[str]) -> dict[str, Tombstone]:
    """The tombstones of those users that have one (one round trip)."""
    users = list(dict.fromkeys(user_ids))
    if not users:
        return {}
    values: Any = client.mget([tombstone_key(user) for user in users])
    found: dict[str, Tombstone] = {}
    for user, value in zip(users, values, strict=True):
        if value is not None:
            found[user] = _parse(value)
    return found


def tombstone_read(user_id: str) -> Read:
    """The read of one user's tombstone (a Tombstone or None), to send in a round trip with
    other reads (core.stores.online.transport.read_all)."""
    key = tombstone_key(user_id).encode()
    return Read(command(b"GET", key), key, lambda value: None if value is None else _parse(value))


def _parse(value: Any) -> Tombstone:
    boundary, _, ms = _text(value).partition(" ")
    return Tombstone(boundary, int(ms))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
