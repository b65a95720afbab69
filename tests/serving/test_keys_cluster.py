"""Issued API keys and their rate limits on a 3-master Redis Cluster (REDIS_CLUSTER=true): keys
spread over the masters are all listed, checked, limited and revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis.cluster import RedisCluster

from core.settings import get_settings
from serving import keys
from tests.serving.test_keys import test_keys_commands_create_list_and_revoke

__all__ = ["test_keys_commands_create_list_and_revoke"]  # the single-Redis test, on the cluster


@pytest.fixture
def cli_env(
    tmp_path: Path, redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    monkeypatch.setenv("ENGRAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REDIS_URL", redis_cluster_url)
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_keys_on_every_master_are_listed_checked_limited_and_revoked(
    redis_cluster_url: str,
) -> None:
    with RedisCluster.from_url(redis_cluster_url) as client:
        issued = [keys.create(client, {"read"}, rate_per_second=1) for _ in range(12)]
        nodes = {client.get_node_from_key(keys.RECORD + r.key_id).name for r, _ in issued}
        assert len(nodes) == 3
        assert {r.key_id for r in keys.listed(client)} == {r.key_id for r, _ in issued}
        record, key = issued[0]
        assert keys.check(client, key, now=1_000.2) == record
        with pytest.raises(keys.RateLimited):
            keys.check(client, key, now=1_000.7)
        assert keys.revoke(client, record.key_id)
        assert keys.check(client, key, now=1_002.0) is None
        assert len(keys.listed(client)) == 11
