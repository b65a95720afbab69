"""The fast read on a 3-master Redis Cluster: what Feast (redis_type: redis_cluster) wrote is read
back as Feast's get_online_features reads it, one HMGET per entity on the node of its slot, and
the item cache holds what the live read gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest
from redis.cluster import RedisCluster

from core.stores.online.cache import EntityCache
from core.stores.online.plan import views_from_store
from core.stores.online.read import OnlineFeatureReader
from tests.core.stores.online.test_read import (
    ITEMS,
    test_a_feature_service_reads_like_feast,
    test_hand_built_views_need_no_feature_store,
    test_item_features_equal_feasts,
    test_numeric_matrix_holds_floats_with_nan_for_missing,
    test_ttl_is_not_enforced_by_feast_but_can_be_here,
    test_user_features_equal_feasts_for_every_type,
)
from tests.toy_feature_repo import NOW, PROJECT, ToyRepo, build_toy_repo

__all__ = [  # the single-Redis tests, run here against the cluster
    "test_a_feature_service_reads_like_feast",
    "test_hand_built_views_need_no_feature_store",
    "test_item_features_equal_feasts",
    "test_numeric_matrix_holds_floats_with_nan_for_missing",
    "test_ttl_is_not_enforced_by_feast_but_can_be_here",
    "test_user_features_equal_feasts_for_every_type",
]


@pytest.fixture(scope="module")
def repo(redis_cluster_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToyRepo]:
    """The toy repo, materialized into the cluster by Feast itself."""
    with RedisCluster.from_url(redis_cluster_server) as client:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        toy = build_toy_repo(
            tmp_path_factory.mktemp("feature_repo"), redis_cluster_server, cluster=True
        )
        toy.store.materialize(NOW - timedelta(days=30), NOW)
        yield toy
        client.flushall(target_nodes=RedisCluster.PRIMARIES)


@pytest.fixture
def client(repo: ToyRepo, redis_cluster_server: str) -> Iterator[RedisCluster]:
    with RedisCluster.from_url(redis_cluster_server) as client:
        yield client


def test_feasts_rows_spread_over_every_master(client: RedisCluster) -> None:
    sizes = [client.get_redis_connection(node).dbsize() for node in client.get_primaries()]
    assert len(sizes) == 3 and all(n > 20 for n in sizes)


def test_user_and_items_in_one_round_trip_one_hmget_each(
    repo: ToyRepo, client: RedisCluster
) -> None:
    refs = repo.feature_refs("user_stats") + repo.feature_refs("item_stats")
    reader = OnlineFeatureReader(client, PROJECT, views_from_store(repo.store, refs))
    client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    both = reader.read_many({"user_id": ["u5"], "item_id": ITEMS[:100]})
    stats = client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    hmgets = [node.get("cmdstat_hmget", {}).get("calls", 0) for node in stats.values()]
    assert sum(hmgets) == 101 and all(hmgets)  # every master answered its own keys
    assert not any("cmdstat_eval" in node for node in stats.values())
    assert both["user_id"].values("n_events") == [10]
    assert both["item_id"].values("n_buyers")[:3] == [0, 11, 22]


def test_the_item_cache_holds_what_the_live_read_gives(repo: ToyRepo, client: RedisCluster) -> None:
    reader = OnlineFeatureReader(
        client, PROJECT, views_from_store(repo.store, repo.feature_refs("item_stats"))
    )
    cache = EntityCache(reader, "item_id", ITEMS[:100], max_age_s=60)
    asked = [*ITEMS[::-3], ITEMS[5]]  # any order, a repeat, an id outside the population
    live = reader.read("item_id", asked)
    cached = cache.rows(asked)
    for name in live.names:
        assert cached.values(name) == live.values(name), name
    numeric = ["popularity", "n_buyers"]
    np.testing.assert_array_equal(cached.matrix(numeric), live.matrix(numeric))
    assert cache.refreshes == 1 and cache.size == 100
