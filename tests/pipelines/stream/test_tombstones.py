"""Forget tombstones on a real Redis: the boundary is the stream's end at the forget."""

from __future__ import annotations

import redis

from pipelines.stream.producer import produce
from pipelines.stream.tombstones import (
    entry_key,
    mark_forgotten,
    read_tombstones,
    stamp_forgotten,
    tombstone_key,
)


def test_boundary_is_the_last_entry_accepted_before_the_forget(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before = produce(client, [{"user_id": "u1"}, {"user_id": "u2"}])
    tombstone = mark_forgotten(client, "u1")
    after = produce(client, [{"user_id": "u1"}])

    assert tombstone.boundary == before[-1]
    assert all(tombstone.covers(entry) for entry in before)
    assert not tombstone.covers(after[0])
    assert read_tombstones(client, ["u1", "u2", "u1"]) == {"u1": tombstone}


def test_a_forget_before_any_stream_covers_nothing_sent_later(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    tombstone = mark_forgotten(client, "u1")
    assert tombstone.boundary == "0-0"
    later = produce(client, [{"user_id": "u1"}])
    assert not tombstone.covers(later[0])


def test_the_end_stamp_keeps_the_boundary_and_moves_the_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    produce(client, [{"user_id": "u1"}])
    marked = mark_forgotten(client, "u1")
    during = produce(client, [{"user_id": "u1"}])  # sent while the forget runs: kept
    ended = stamp_forgotten(client, "u1")
    assert ended.boundary == marked.boundary and not ended.covers(during[0])
    assert ended.forgotten_at_ms >= marked.forgotten_at_ms
    assert read_tombstones(client, ["u1"]) == {"u1": ended}
    # A tombstone gone missing meanwhile is marked again, at the stream's end.
    assert stamp_forgotten(client, "u2").boundary == during[0]


def test_the_key_does_not_name_the_user(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    mark_forgotten(client, "alice@example")
    keys = [key.decode() for key in client.keys("*")]
    assert tombstone_key("alice@example") in keys
    assert not any("alice" in key for key in keys)


def test_entry_ids_sort_numerically() -> None:
    assert entry_key("10-0") > entry_key("9-5")
    assert entry_key("9-10") > entry_key("9-9")
