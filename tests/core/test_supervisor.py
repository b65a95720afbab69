"""The supervisor of `engram serve` restarts a local server that died, on its port, and leaves
one stopped on purpose alone. (tests/serving/test_cli.py runs it for real, Milvus included.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.settings import Settings
from core.stores import local_redis
from core.stores.supervisor import local_services, supervise


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Settings]:
    """A home whose local Redis runs under a supervisor thread (Milvus is configured: none)."""
    settings = Settings(engram_home=tmp_path / "home", redis_url=None, milvus_uri="http://h:1")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=supervise, args=(settings, stop, ready.set))
    thread.start()
    assert ready.wait(30)
    yield settings
    stop.set()
    thread.join(10)
    local_redis.stop_redis(settings.services_dir / "redis")


def test_only_unconfigured_services_are_local(tmp_path: Path) -> None:
    both = Settings(engram_home=tmp_path, redis_url=None, milvus_uri=None)
    assert [s.name for s in local_services(both)] == ["redis", "milvus"]
    neither = Settings(engram_home=tmp_path, redis_url="redis://h:1/0", milvus_uri="http://h:2")
    assert local_services(neither) == []


def test_a_killed_redis_comes_back_on_its_port(supervised: Settings) -> None:
    directory = supervised.services_dir / "redis"
    url = local_redis.redis_status(directory)
    assert url is not None
    redis.Redis.from_url(url).set("kept", "yes")
    time.sleep(1.1)  # appendfsync everysec
    os.kill(int((directory / "redis.pid").read_text()), signal.SIGKILL)
    killed = time.monotonic()
    while local_redis.redis_status(directory) != url:
        assert time.monotonic() - killed < 10, "not restarted"
        time.sleep(0.05)
    assert time.monotonic() - killed < 5  # polled every 0.5 s, started in well under a second
    assert redis.Redis.from_url(url).get("kept") == b"yes"


def test_a_redis_stopped_on_purpose_stays_stopped(supervised: Settings) -> None:
    directory = supervised.services_dir / "redis"
    assert local_redis.stop_redis(directory)
    time.sleep(1.5)  # three looks by the supervisor
    assert local_redis.redis_status(directory) is None
