"""The stream on a 3-master Redis Cluster: the consumer group, window state, dedup, rejections,
tombstones and the online writes, with the single-Redis tests' bodies. The batch features stay
in the single Redis (tests/pipelines/stream/conftest.py); the stream writes into the cluster and
both are read through Feast."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from core.stores import feature_store
from pipelines.stream.process import process_batch
from pipelines.stream.producer import STREAM, produce
from pipelines.stream.state import WindowState
from pipelines.stream.tombstones import (
    mark_forgotten,
    read_tombstones,
    stamp_forgotten,
    tombstone_key,
)
from tests.pipelines.stream import test_consumer
from tests.pipelines.stream.conftest import StreamHome
from tests.pipelines.stream.test_agreement import (
    test_replaying_the_events_gives_the_batch_features,
)
from tests.pipelines.stream.test_consumer import (
    test_a_dead_consumers_entries_are_claimed_and_counted_once,
    test_a_full_stream_refuses_records_instead_of_dropping_any,
    test_a_record_that_keeps_failing_goes_to_the_dead_letter_stream,
    test_entries_are_processed_then_acknowledged,
    test_forgetting_a_user_removes_their_stream_state,
    test_rejections_are_stored_once_however_often_delivered,
    test_trimming_never_removes_what_a_group_still_needs,
)
from tests.pipelines.stream.test_state import (
    HOUR_US,
    test_forgetting_leaves_no_key_and_no_membership_of_the_user,
)

__all__ = [  # the single-Redis tests, run here against the cluster
    "test_a_dead_consumers_entries_are_claimed_and_counted_once",
    "test_a_full_stream_refuses_records_instead_of_dropping_any",
    "test_a_record_that_keeps_failing_goes_to_the_dead_letter_stream",
    "test_entries_are_processed_then_acknowledged",
    "test_forgetting_a_user_removes_their_stream_state",
    "test_forgetting_leaves_no_key_and_no_membership_of_the_user",
    "test_rejections_are_stored_once_however_often_delivered",
    "test_replaying_the_events_gives_the_batch_features",
    "test_trimming_never_removes_what_a_group_still_needs",
]


@pytest.fixture(scope="module")
def stream_home(stream_home: StreamHome, redis_cluster_server: str) -> StreamHome:
    """The session's stream home with its stream side on the cluster (REDIS_CLUSTER=true)."""
    settings = stream_home.settings.model_copy(
        update={"redis_url": redis_cluster_server, "redis_cluster": True}
    )
    store = feature_store.open_store(settings, redis_cluster_server)
    return StreamHome(
        settings,
        stream_home.paths,
        stream_home.batch_url,
        redis_cluster_server,
        stream_home.batch_store,
        store,
        stream_home.layout,
    )


@pytest.fixture
def stream_client(stream_home: StreamHome) -> Iterator[RedisCluster]:
    """The cluster, every master emptied before and after the test."""
    with RedisCluster.from_url(stream_home.stream_url) as client:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield client
        client.flushall(target_nodes=RedisCluster.PRIMARIES)


@pytest.fixture
def client(stream_client: RedisCluster) -> RedisCluster:
    """test_state.py's client."""
    return stream_client


@pytest.fixture
def state(client: RedisCluster) -> WindowState:
    """test_state.py's state."""
    return WindowState(client, session_gap_micros=HOUR_US)


@pytest.fixture(autouse=True)
def _tagged_test_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stream, its dead-letter stream and its errors meet in one transaction: one hash tag.
    monkeypatch.setattr(test_consumer, "STREAM", "test:{signals}")


def test_stream_state_and_tombstones_share_one_slot_and_feast_rows_spread(
    stream_home: StreamHome, stream_client: RedisCluster
) -> None:
    ctx = test_consumer.context(stream_home, stream_client)
    lines = stream_home.paths.signals.read_bytes().splitlines()[:300]
    assert process_batch(ctx, lines, keep_rejected=False).new > 0
    produce(stream_client, [test_consumer.signal(1)])
    first = mark_forgotten(stream_client, "s-user")
    produce(stream_client, [test_consumer.signal(2)])
    assert read_tombstones(stream_client, ["s-user", "nobody"]) == {"s-user": first}
    assert stamp_forgotten(stream_client, "s-user").boundary == first.boundary
    state_slot = stream_client.keyslot("engram:{stream}:totals")
    assert stream_client.keyslot(STREAM) == stream_client.keyslot(tombstone_key("s-user"))
    per_node: dict[str, Any] = {}
    for node in stream_client.get_primaries():
        keys = stream_client.get_redis_connection(node).keys("*")
        per_node[node.name] = keys
    feast = {name: [k for k in keys if k.endswith(b"engram")] for name, keys in per_node.items()}
    assert all(feast.values())  # the online rows spread over every master
    ours = [k for keys in per_node.values() for k in keys if k.startswith(b"engram:{stream}:")]
    assert ours and {stream_client.keyslot(k) for k in ours} == {state_slot}
