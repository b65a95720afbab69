"""Bulk writes on a 3-master Redis Cluster: rows go to the node of their slot and Feast (redis_type:
redis_cluster) reads them back; a stale slot map is followed (MOVED), not failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from redis.cluster import RedisCluster

from core.stores.cluster import key_slot
from core.stores.online.layout import FeatureRef, ValueKind, ViewRef, redis_keys
from core.stores.online.transport import round_trip
from core.stores.online.write import write_rows
from tests.core.stores.online.test_write import (
    feast_read,
    test_older_rows_never_overwrite_newer_ones,
    test_views_written_together_keep_each_views_newest_row,
)
from tests.toy_feature_repo import NOW, PROJECT, ToyRepo, build_toy_repo

__all__ = [  # the single-Redis tests, run here against the cluster
    "test_older_rows_never_overwrite_newer_ones",
    "test_views_written_together_keep_each_views_newest_row",
]
RECENT = ViewRef(
    "user_recent", "user_id", (FeatureRef("user_recent", "views_1h", ValueKind.INT64),)
)


@pytest.fixture
def client(redis_cluster_url: str) -> Iterator[RedisCluster]:
    with RedisCluster.from_url(redis_cluster_url) as client:
        yield client


@pytest.fixture
def repo(redis_cluster_url: str, tmp_path: Path) -> ToyRepo:
    return build_toy_repo(tmp_path / "repo", redis_cluster_url, cluster=True)


def _rows(users: list[str], value: int) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array([NOW] * len(users), ts),
            "views_1h": [value + i for i in range(len(users))],
        }
    )


def test_rows_of_every_node_are_written_in_chunks_and_read_by_feast(
    repo: ToyRepo, client: RedisCluster
) -> None:
    users = [f"w{i}" for i in range(300)]
    assert write_rows(client, PROJECT, RECENT, _rows(users, 1000), chunk_rows=64) == 300
    assert feast_read(repo, "user_recent", "user_id", users)["views_1h"] == list(range(1000, 1300))


def _stale(client: RedisCluster, key: bytes) -> None:
    """Point the client's slot map for `key` at a node that does not own it."""
    slot = key_slot(key)
    owner = client.nodes_manager.slots_cache[slot][0]
    other = next(n for n in client.get_primaries() if n.name != owner.name)
    client.nodes_manager.slots_cache[slot] = [other]


def test_a_stale_slot_map_is_refreshed_on_moved(repo: ToyRepo, client: RedisCluster) -> None:
    users = [f"m{i}" for i in range(20)]
    keys = redis_keys(PROJECT, "user_id", users)
    _stale(client, keys[0])
    assert write_rows(client, PROJECT, RECENT, _rows(users, 7)) == 20
    _stale(client, keys[1])
    hget = [b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$4\r\n_ts:\r\n" % (len(k), k) for k in keys]
    assert round_trip(client, hget, keys) == [None] * 20  # answered, from the right nodes
    assert feast_read(repo, "user_recent", "user_id", users)["views_1h"] == list(range(7, 27))
