"""REDIS_CLUSTER=true: the one connect function gives a RedisCluster from any node's URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from core.errors import ConfigError
from core.settings import Settings
from core.stores.services import connect_redis


def test_a_cluster_client_from_any_node_for_commands_and_request_paths(
    tmp_path: Path, redis_cluster_url: str
) -> None:
    settings = Settings(
        engram_home=tmp_path, redis_url=redis_cluster_url + "/0", redis_cluster=True
    )
    for timeout_s in (None, 0.5):
        with connect_redis(settings, timeout_s) as client:
            assert isinstance(client, RedisCluster)
            assert len(client.get_primaries()) == 3
            client.set("k", "v")
            assert client.get("k") == b"v"


def test_a_cluster_needs_its_url_and_database_0(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs REDIS_URL"):
        connect_redis(Settings(engram_home=tmp_path, redis_cluster=True))
    bad = Settings(engram_home=tmp_path, redis_url="redis://127.0.0.1:1/3", redis_cluster=True)
    with pytest.raises(ConfigError, match="database 0 only"):
        connect_redis(bad)
