"""Candidates kept in Redis and the follower that rewrites them: a user's new contact on the
signals stream reaches their candidates within seconds; budget; forget (real Redis)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster

from pipelines.stream.producer import produce
from pipelines.stream.tombstones import mark_forgotten
from ranking import candidate_store, precomputed
from ranking.candidate_store import RECENT, CandidateStore, user_key
from ranking.candidates import (
    DEFAULT_LIMITS,
    EmbeddingSource,
    ModelSource,
    Source,
    UserCandidates,
    generate_contacts,
    generate_user,
)
from ranking.follow import FollowConfig, Followed, Follower, parse_contact
from ranking.history import UserHistory
from ranking.item_vectors import ItemVectors
from tests.ranking.test_baselines import clustered_log
from tests.ranking.test_forget import fitted
from tests.ranking.test_precomputed import AT, assert_same

World = tuple[list[Source], UserHistory, pd.Index]
VERSION = "v20261206-120000"
USER = "a0"


@pytest.fixture(scope="module")
def world() -> World:
    """The serving sources over the two-taste log, and its catalog."""
    log = clustered_log()
    history = UserHistory(log)
    items = pd.Index(sorted(set(log["item_id"])))
    rng = np.random.default_rng(0)
    vectors = ItemVectors(np.asarray(items, dtype=object), rng.random((len(items), 8), "float32"))
    sources: list[Source] = [ModelSource(name, m) for name, m in fitted(log).items()]
    sources.append(EmbeddingSource(vectors, history))
    return sources, history, items


def test_candidates_from_given_contacts_are_those_of_the_fitted_log(world: World) -> None:
    sources, history, items = world
    micros = int(AT.value // 1000)
    for user in history.users:
        expected = generate_user(sources, user, AT, items, history.before(user, micros).items)
        assert_same(
            generate_contacts(sources, user, history.before(user, 2**62), AT, items), expected
        )


def test_a_record_reads_back_as_the_candidates_written(world: World) -> None:
    sources, history, items = world
    found = generate_contacts(sources, USER, history.before(USER, 2**62), AT, items)
    record = candidate_store.decode(candidate_store.encode(VERSION, AT, len(items), found, items))
    assert (record.version, record.at, record.catalog_size) == (VERSION, AT, len(items))
    limits = [DEFAULT_LIMITS.get(s.name, 100) for s in sources]
    assert_same(record.candidates(np.asarray(items, dtype=object), found.names, limits), found)


def test_contacts_read_from_the_stream() -> None:
    record = {
        "user_id": "u",
        "item_id": "i",
        "type": "rate",
        "value": 5,
        "ts": "2026-12-01T00:00:00Z",
    }
    contact = parse_contact("1-0", json.dumps(record))
    assert contact is not None and contact.weight == 3.0 and contact.item_id == "i"
    assert contact.ts == int(pd.Timestamp("2026-12-01", tz="UTC").value // 1000)
    for other in ({"type": "message"}, {"ts": "yesterday"}, {"item_id": ""}, {"user_id": 7}):
        assert parse_contact("1-0", json.dumps({**record, **other})) is None
    assert parse_contact("1-0", b"{not json") is None


@pytest.fixture(params=["redis", "cluster"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """One Redis, or a 3-master Redis Cluster (REDIS_CLUSTER=true): the store uses no
    multi-key transaction."""
    if request.param == "redis":
        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as one:
            yield one
        return
    with RedisCluster.from_url(request.getfixturevalue("redis_cluster_url")) as cluster:
        yield cluster  # type: ignore[misc]


def test_the_budget_keeps_the_users_written_last(client: redis.Redis) -> None:
    store = CandidateStore(client, 3 * candidate_store.bytes_per_user(5))
    for n in range(5):
        evicted = store.write(f"u{n}", b"record", 5, written_ms=1_000 + n)
        assert evicted == ([] if n < 3 else [f"u{n - 3}"])
    assert sorted(k.decode() for k in client.scan_iter(match=candidate_store.PREFIX + "*")) == [
        user_key(f"u{n}") for n in (2, 3, 4)
    ]
    assert store.forget_users(["u3"]) == 1 and client.zscore(RECENT, "u3") is None


def test_publishing_writes_a_versions_candidates_except_the_forgotten(
    world: World, client: redis.Redis
) -> None:
    sources, history, items = world
    stored = precomputed.compute(sources, history, items, AT, budget_bytes=2**30)
    store = CandidateStore(client, 2**30)
    store.write("stale", b"record", 5, written_ms=1)  # a user the version does not hold
    mark_forgotten(client, USER)  # forgotten after the candidates were computed
    assert store.claim(VERSION) and not store.claim(VERSION)
    store.release(VERSION)  # a publish that failed gives its claim back
    assert store.claim(VERSION)
    assert store.publish(VERSION, stored) == len(stored.users) - 1
    assert store.read(USER) is None and store.read("stale") is None
    record = store.read("b0")
    assert record is not None and record.version == VERSION
    expected = stored.get("b0")
    assert expected is not None
    assert_same(
        record.candidates(np.asarray(items, dtype=object), expected.names, stored.limits), expected
    )


def follower(client: redis.Redis, world: World) -> Follower:
    sources, history, items = world
    now_ms = int(time.time() * 1000)
    followed = Followed(VERSION, sources, history, items, now_ms - 60_000, 0, history.forget_user)
    config = FollowConfig(consumer="test", block_ms=20, version_every_s=3600)
    return Follower(client, CandidateStore(client, 2**30), lambda _: followed, config)


def stored(client: redis.Redis, world: World, user: str) -> UserCandidates | None:
    record = CandidateStore(client, 0).read(user)
    if record is None:
        return None
    sources, _, items = world
    limits = [DEFAULT_LIMITS.get(s.name, 100) for s in sources]
    return record.candidates(np.asarray(items, dtype=object), [s.name for s in sources], limits)


def contact(user: str, item: str, kind: str = "purchase") -> dict[str, str]:
    now = pd.Timestamp.now(tz="UTC").isoformat().replace("+00:00", "Z")
    return {
        "event_id": f"{user}-{item}-{time.time_ns()}",
        "user_id": user,
        "item_id": item,
        "type": kind,
        "ts": now,
    }


def test_a_new_contact_reaches_the_users_candidates_within_two_seconds(
    world: World, client: redis.Redis
) -> None:
    sources, history, items = world
    running = follower(client, world)
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        produce(client, [contact("b1", "b0")])  # another user: gives the follower its start
        deadline = time.monotonic() + 10
        while stored(client, world, "b1") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stored(client, world, "b1") is not None
        before = generate_user(
            sources, USER, pd.Timestamp.now(tz="UTC"), items, history.before(USER, 2**62).items
        )
        target = str(before.item_ids[0])  # a candidate the user now takes
        sent = time.monotonic()
        produce(client, [contact(USER, target)])
        fresh = None
        while time.monotonic() - sent < 2.0:
            fresh = stored(client, world, USER)
            if fresh is not None:
                break
            time.sleep(0.005)
        waited = time.monotonic() - sent
    finally:
        stop.set()
        thread.join(10)
    assert fresh is not None, "the candidates did not change within 2 s"
    assert waited < 2.0 and target not in set(fresh.item_ids)  # taken: no longer a candidate


def test_a_forget_skips_the_users_entries_and_deletes_what_was_written_meanwhile(
    world: World, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = follower(client, world)
    running.reload()
    produce(client, [contact(USER, "b0")])
    mark_forgotten(client, USER)  # the entry was accepted before the forget: not theirs now
    assert running.step().skipped == 1 and stored(client, world, USER) is None
    # A forget that lands while a batch is being written: the record goes again.
    produce(client, [contact("b2", "a0")])
    write = running._write

    def forgotten_meanwhile(followed: Followed, users: list[str]) -> None:
        write(followed, users)
        assert stored(client, world, "b2") is not None
        mark_forgotten(client, "b2")

    monkeypatch.setattr(running, "_write", forgotten_meanwhile)
    assert running.step().users == 1
    assert stored(client, world, "b2") is None and client.zscore(RECENT, "b2") is None
    assert "b2" not in running._new
