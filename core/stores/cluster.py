"""Redis Cluster beside a single Redis: one client type for both, and where a key lives.

`REDIS_CLUSTER=true` makes `connect_redis` return redis-py's RedisCluster (core/stores/
services.py). Most callers use it as they use a plain client: redis-py routes every command to
the node owning its key's slot and follows MOVED/ASK. What it cannot do is run one Lua script or
transaction over keys of several slots, so Engram's own keys that meet in one script share a
hash tag (`engram:{stream}:...`, `engram:{signals}...`), and keys whose name Feast fixes are
paired with ours through `slot_tag`: a tag that hashes to the same slot as the Feast key.
"""

from __future__ import annotations

import functools
from binascii import crc_hqx

import redis
from redis.cluster import RedisCluster

SLOTS = 16384
RedisClient = redis.Redis | RedisCluster  # what `connect_redis` returns


def is_cluster(client: RedisClient) -> bool:
    """True for a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def key_slot(key: bytes) -> int:
    """The cluster slot of a key (its hash tag's when it has one), as Redis computes it."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS


@functools.cache
def _tags() -> tuple[str, ...]:
    """For every slot, a short tag that hashes to it (found once per process, ~0.5 s)."""
    found: list[str | None] = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        tag = format(n, "x")
        slot = crc_hqx(tag.encode(), 0) % SLOTS
        if found[slot] is None:
            found[slot] = tag
            missing -= 1
        n += 1
    return tuple(t for t in found if t is not None)


def slot_tag(key: bytes) -> str:
    """A hash tag (`{...}`) putting a key of ours in the same slot as `key`."""
    return "{" + _tags()[key_slot(key)] + "}"


def nodes(client: RedisClient) -> list[redis.Redis]:
    """A plain client per primary (a cluster's masters, or the one server): for what is run
    on every server (INFO, BGREWRITEAOF, the forget audit's scan)."""
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]
