"""The local redis-server Engram starts when REDIS_URL is unset."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import redis

from core.stores import local_redis


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


def _kill(directory: Path) -> None:
    """kill -9 the directory's server and wait until its port is released."""
    pid = int((directory / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists():  # gone, its threads and sockets with it
        time.sleep(0.01)


def test_a_restart_after_a_stop_or_a_crash_keeps_the_port(tmp_path: Path) -> None:
    url = local_redis.ensure_redis(tmp_path)
    redis.Redis.from_url(url).set("k", "v")
    local_redis.stop_redis(tmp_path)
    assert not local_redis.crashed(tmp_path)  # stopped on purpose
    assert local_redis.ensure_redis(tmp_path) == url
    _kill(tmp_path)
    assert local_redis.crashed(tmp_path)
    assert local_redis.redis_status(tmp_path) is None
    try:
        assert local_redis.ensure_redis(tmp_path) == url
        assert not local_redis.crashed(tmp_path)
        assert redis.Redis.from_url(url).get("k") == b"v"  # the AOF was fsynced within 1 s
    finally:
        local_redis.stop_redis(tmp_path)


def test_a_port_taken_meanwhile_moves_the_server(tmp_path: Path) -> None:
    url = local_redis.ensure_redis(tmp_path)
    port = local_redis.recorded_port(tmp_path)
    assert port is not None
    _kill(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        try:
            moved = local_redis.ensure_redis(tmp_path)
            assert moved != url and local_redis.recorded_url(tmp_path) == moved
            assert redis.Redis.from_url(moved).ping()
        finally:
            local_redis.stop_redis(tmp_path)


def test_another_server_on_the_recorded_port_is_not_taken_for_ours(
    tmp_path: Path, redis_server: str
) -> None:
    (tmp_path / "port").write_text(redis_server.rsplit(":", 1)[1].split("/")[0])
    assert local_redis.redis_status(tmp_path) is None  # it answers, but keeps another directory
