"""The one raw transport to Redis of the fast paths: commands framed in the Redis protocol by
the caller, written at once on one pooled connection, replies read in order and parsed by
redis-py's parser (hiredis when installed) without decoding.

redis-py builds and parses one command at a time; a read of 600 hashes or a write of 20,000
rows would pay that per entity. Framing here and writing everything in one send lets Redis
answer while Python is still encoding, and a single nested reply is parsed in C.

On a Redis Cluster each command goes to the node owning its key's slot (redis-py's slot map,
read from CLUSTER SLOTS), still pipelined: every node's commands are written before any reply is
read, so the nodes answer in parallel. A MOVED or ASK reply (slots moved since the map was read)
refreshes the map and the whole round trip is sent again: callers send only reads, or writes
that may be repeated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

from core.errors import ServiceUnavailableError
from core.stores.cluster import RedisClient, key_slot

_T = TypeVar("_T")
ATTEMPTS = 3  # round trips tried while the cluster's slots move
# Replies saying the slot map changed or is changing: read it again and send again.
RESHARDED = (MovedError, AskError, TryAgainError, ClusterDownError)


def bulk(value: bytes) -> bytes:
    """One bulk string of the Redis protocol."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*parts: bytes) -> bytes:
    """One command framed in the Redis protocol."""
    return b"*%d\r\n%s" % (len(parts), b"".join(map(bulk, parts)))


def _same(reply: Any) -> Any:
    return reply


@dataclass(frozen=True)
class Read:
    """One read of a round trip shared by several callers (`read_all`): its framed command,
    the key it reads (which picks the node on a cluster) and what makes its raw reply a value."""

    command: bytes
    key: bytes
    parse: Callable[[Any], Any] = _same


def read_all(client: RedisClient, reads: Sequence[Read]) -> list[Any]:
    """Every read in one round trip, each reply parsed by its read, in order."""
    replies = round_trip(client, [r.command for r in reads], [r.key for r in reads])
    return [read.parse(reply) for read, reply in zip(reads, replies, strict=True)]


class RawConnection:
    """A connection of the client's pool, held for raw pipelined commands (`with` block).

    Connection errors become ServiceUnavailableError; on any error the connection is dropped
    rather than handed back with unread replies on its socket."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None

    def __enter__(self) -> RawConnection:
        try:
            self._connection = self._pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise ServiceUnavailableError("redis", str(e)) from e
        return self

    def send(self, payloads: Sequence[bytes]) -> None:
        """Write framed commands, each payload holding any number of them, without waiting."""
        self._connection.send_packed_command(payloads)

    def reply(self) -> Any:
        """The next reply, as raw bytes (nested lists for arrays, None for nil)."""
        return self._connection.read_response(disable_decoding=True)

    def replies(self, count: int) -> list[Any]:
        """The next `count` replies, in order."""
        read = self._connection.read_response
        return [read(disable_decoding=True) for _ in range(count)]

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if error is not None:
                self._connection.disconnect()
                if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
                    raise ServiceUnavailableError("redis", str(error)) from error
        finally:
            self._pool.release(self._connection)


def round_trip(
    client: RedisClient, commands: Sequence[bytes], keys: Sequence[bytes] | None = None
) -> list[Any]:
    """Write every framed command at once, then read their replies in order.

    On a cluster `keys` names each command's key (one slot per command), which picks its node."""
    if not commands:
        return []
    if isinstance(client, RedisCluster):
        if keys is None or len(keys) != len(commands):
            raise ValueError("a cluster round trip needs one key per command")
        return retry_resharded(client, lambda: _cluster_round_trip(client, commands, keys))
    with RawConnection(client) as connection:
        connection.send([b"".join(commands)])
        return connection.replies(len(commands))


def retry_resharded(client: RedisCluster, attempt: Callable[[], _T]) -> _T:
    """`attempt()`, run again on a fresh slot map while the cluster answers MOVED/ASK."""
    for n in range(ATTEMPTS):
        try:
            return attempt()
        except RESHARDED as error:
            if n + 1 == ATTEMPTS:
                detail = f"cluster slots keep moving: {error}"
                raise ServiceUnavailableError("redis", detail) from error
            time.sleep(0.05 * n)
            client.nodes_manager.initialize()
    raise AssertionError("unreachable")


def node_of(client: RedisCluster, key: bytes) -> Any:
    """The primary node owning a key's slot, from the client's slot map (read directly: the
    accessor's lock and argument checks cost more than the lookup, per key)."""
    owners = client.nodes_manager.slots_cache.get(key_slot(key))
    if not owners:
        raise ClusterDownError(f"no node serves the slot of {key!r} in the client's map")
    return owners[0]


def _cluster_round_trip(
    client: RedisCluster, commands: Sequence[bytes], keys: Sequence[bytes]
) -> list[Any]:
    by_node: dict[str, list[int]] = {}
    found: dict[str, Any] = {}
    for i, key in enumerate(keys):
        node = node_of(client, key)
        by_node.setdefault(node.name, []).append(i)
        found[node.name] = node
    out: list[Any] = [None] * len(commands)
    with ExitStack() as stack:
        connections = {
            name: stack.enter_context(RawConnection(client.get_redis_connection(node)))
            for name, node in found.items()
        }
        for name, positions in by_node.items():
            connections[name].send([b"".join(commands[i] for i in positions)])
        for name, positions in by_node.items():
            for i, reply in zip(positions, connections[name].replies(len(positions)), strict=True):
                out[i] = reply
    return out
