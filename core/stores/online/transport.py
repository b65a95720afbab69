"""The one raw transport to Redis of the fast paths: commands framed in the Redis protocol by
the caller, written at once on one pooled connection, replies read in order and parsed by
redis-py's parser (hiredis when installed) without decoding.

redis-py builds and parses one command at a time; a read of 600 hashes or a write of 20,000
rows would pay that per entity. Framing here and writing everything in one send lets Redis
answer while Python is still encoding, and a single nested reply is parsed in C.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import redis

from core.errors import ServiceUnavailableError


def bulk(value: bytes) -> bytes:
    """One bulk string of the Redis protocol."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


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


def round_trip(client: redis.Redis, commands: list[bytes]) -> list[Any]:
    """Write every framed command at once, then read their replies in order."""
    if not commands:
        return []
    with RawConnection(client) as connection:
        connection.send([b"".join(commands)])
        return connection.replies(len(commands))
