"""The local redis-server Engram starts when REDIS_URL is unset."""

from __future__ import annotations

from pathlib import Path

import redis

from engram import local_redis


def test_start_is_idempotent_and_stop_ends_the_server(tmp_path: Path) -> None:
    url = local_redis.ensure_redis(tmp_path)
    assert local_redis.ensure_redis(tmp_path) == url
    assert redis.Redis.from_url(url).ping()
    assert local_redis.redis_status(tmp_path) == url
    assert local_redis.stop_redis(tmp_path)
    assert local_redis.redis_status(tmp_path) is None
    assert not local_redis.stop_redis(tmp_path)


def test_data_survives_a_restart(tmp_path: Path) -> None:
    url = local_redis.ensure_redis(tmp_path)
    redis.Redis.from_url(url).set("k", "v")
    local_redis.stop_redis(tmp_path)
    url = local_redis.ensure_redis(tmp_path)
    try:
        assert redis.Redis.from_url(url).get("k") == b"v"
    finally:
        local_redis.stop_redis(tmp_path)
