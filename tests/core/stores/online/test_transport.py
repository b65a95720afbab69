"""The raw transport: pipelined replies come back in order, and a failed batch never leaves
unread replies on a pooled connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import ServiceUnavailableError
from core.stores.online.transport import RawConnection, bulk, round_trip


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n%s" % (len(parts), b"".join(map(bulk, parts)))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_replies_come_back_in_order(client: redis.Redis) -> None:
    writes = [command(b"SET", b"k%d" % i, b"v%d" % i) for i in range(50)]
    reads = [command(b"GET", b"k%d" % i) for i in range(50)]
    assert round_trip(client, writes) == [b"OK"] * 50
    assert round_trip(client, [*reads, command(b"GET", b"absent")]) == [
        *(b"v%d" % i for i in range(50)),
        None,
    ]
    assert round_trip(client, []) == []


def test_an_error_reply_drops_the_connection_and_its_unread_replies(client: redis.Redis) -> None:
    client.set("k", "v")
    with pytest.raises(redis.ResponseError):
        round_trip(client, [command(b"NOSUCHCOMMAND"), command(b"GET", b"k")])
    # The pooled connection answers its own command, not the replies left from the failed batch.
    assert round_trip(client, [command(b"GET", b"k")]) == [b"v"]
    assert client.ping()


def test_an_unreachable_redis_is_a_service_error() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(ServiceUnavailableError), RawConnection(dead) as connection:
        connection.send([command(b"PING")])
