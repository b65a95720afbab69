"""Clients of request paths: they start no server, bound every call, and find a restarted
server again, on its old port or on the one it moved to."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from pymilvus.exceptions import MilvusException

from core.errors import ServiceUnavailableError
from core.settings import Settings
from core.stores import local_milvus, local_redis
from core.stores.services import connect_milvus, connect_redis, locate_milvus_uri, locate_redis_url
from tests.conftest import _MILVUS_DIRS, PausableServer

TIMEOUT_S = 0.25


def fails_within(kind: type[Exception], seconds: float, call: Callable[[], Any]) -> None:
    """`call` raises `kind`, and within `seconds`."""
    began = time.monotonic()
    with pytest.raises(kind):
        call()
    assert time.monotonic() - began < seconds


def kill_redis(directory: Path) -> None:
    pid = int((directory / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    while Path(f"/proc/{pid}").exists():  # gone, its threads and sockets with it
        time.sleep(0.01)


def test_a_request_path_redis_client_follows_the_local_server(settings: Settings) -> None:
    directory = settings.services_dir / "redis"
    client = connect_redis(settings, TIMEOUT_S)
    with pytest.raises(ServiceUnavailableError, match="engram services start"):
        locate_redis_url(settings)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert local_redis.recorded_url(directory) is None  # asking started nothing

    url = local_redis.ensure_redis(directory)  # what `engram services start` does
    try:
        assert client.ping() and locate_redis_url(settings) == url

        kill_redis(directory)
        fails_within(redis.ConnectionError, 1.0, client.ping)
        assert local_redis.ensure_redis(directory) == url  # back on its port
        assert client.ping()  # the same client, without a restart of its own

        kill_redis(directory)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = local_redis.ensure_redis(directory)
            assert moved != url
            assert client.ping()  # it dials the recorded port, not the one it knew

        pid = int((directory / "redis.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            fails_within(redis.TimeoutError, TIMEOUT_S + 0.5, client.ping)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert client.ping()
    finally:
        client.close()
        local_redis.stop_redis(directory)


def test_a_request_path_milvus_client_starts_nothing(settings: Settings) -> None:
    client = connect_milvus(settings, TIMEOUT_S)
    with pytest.raises(ServiceUnavailableError, match="engram services start"):
        client.list_collections()
    with pytest.raises(ServiceUnavailableError):
        locate_milvus_uri(settings)
    assert not (settings.services_dir / "milvus").exists()


def test_a_request_path_milvus_client_follows_the_recorded_address(
    milvus_uri: str, tmp_path: Path
) -> None:
    settings = Settings(engram_home=tmp_path / "home", redis_url=None, milvus_uri=None)
    recorded = settings.services_dir / "milvus" / "ports.json"
    recorded.parent.mkdir(parents=True)
    live = json.loads((_MILVUS_DIRS[milvus_uri] / "ports.json").read_text())
    recorded.write_text(json.dumps({**live, "proxy_port": local_redis.free_port()}))
    client = connect_milvus(settings, TIMEOUT_S)
    try:
        fails_within(MilvusException, 2.0, client.list_collections)
        recorded.write_text(json.dumps(live))  # the server "moved" to where it really is
        assert isinstance(client.list_collections(), list)
        assert local_milvus.recorded_uri(settings.services_dir / "milvus") == milvus_uri
    finally:
        client.close()


def test_every_call_of_a_request_path_milvus_client_is_bounded(
    milvus_uri: str, pausable_milvus: PausableServer, tmp_path: Path
) -> None:
    settings = Settings(engram_home=tmp_path, milvus_uri=milvus_uri)
    client = connect_milvus(settings, TIMEOUT_S)
    try:
        assert isinstance(client.list_collections(), list)
        pausable_milvus.pause()
        # has_collection held the API for 7.8 s and 56 s when it had no timeout.
        for name in ("has_collection", "describe_collection", "load_collection"):
            fails_within(MilvusException, TIMEOUT_S + 1.0, partial(getattr(client, name), "x"))
        pausable_milvus.resume()
        assert client.has_collection("x") is False
    finally:
        client.close()
