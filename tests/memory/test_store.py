"""The Milvus adapter against a real server: round trips, server-side filters, escaping, deletes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pymilvus import MilvusClient

from core.errors import ConfigError, InvalidInputError
from memory.records import Memory, MemoryKind
from memory.store import MilvusMemoryStore, memory_filter, milvus_literal

DIM = 8
T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
INJECTION = 'x" || user_id != "x'
NASTY = [
    INJECTION,
    "a\\",
    'a\\" or 1==1 or "',
    "it's",
    "tab\there",
    "new\nline",
    "uni é ✓ 😀",
    '\\"',
    '""',
    "\\u0041",
    "x' || user_id != 'x",
    "%",
    "a_b",
]


@pytest.fixture(scope="module")
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    connected = MilvusClient(uri=milvus_uri)
    yield connected
    connected.close()


@pytest.fixture(scope="module")
def store(client: MilvusClient) -> Iterator[MilvusMemoryStore]:
    """One collection for the module; each test writes its own users."""
    created = MilvusMemoryStore(
        client, dim=DIM, model="test-model", collection=f"t_store_{uuid.uuid4().hex[:8]}"
    )
    created.ensure_collection()
    yield created
    created.drop_collection()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def vectors(n: int, seed: int = 0) -> np.ndarray:
    out = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def memory(
    user_id: str,
    n: int,
    *,
    text: str | None = None,
    kind: MemoryKind = "preference",
    valid_from: datetime = T0,
    valid_to: datetime | None = None,
    expires_at: datetime | None = None,
    created_at: datetime | None = None,
) -> Memory:
    return Memory(
        memory_id=f"m-{user_id}-{n}",
        user_id=user_id,
        kind=kind,
        text=text if text is not None else f"memory {n}",
        confidence=0.75,
        valid_from=valid_from,
        created_at=created_at or valid_from,
        updated_at=(created_at or valid_from) + timedelta(days=1),
        source_event_ids=(f"e{n}", f"e{n}b"),
        slot="location" if n % 2 else None,
        value="Denver" if n % 2 else None,
        valid_to=valid_to,
        expires_at=expires_at,
    )


def test_memories_round_trip_exactly(store: MilvusMemoryStore) -> None:
    me = user()
    written = [
        memory(me, 0),
        memory(me, 1, valid_to=T0 + timedelta(days=3), expires_at=T0 + timedelta(days=9)),
        memory(me, 2, text="x" * 10_000, kind="episode"),
    ]
    store.write(written, vectors(3))
    got = sorted(store.fetch([me], with_vectors=True), key=lambda s: s.memory.memory_id)
    assert [s.memory for s in got] == sorted(written, key=lambda m: m.memory_id)
    np.testing.assert_allclose(np.stack([s.vector for s in got]), vectors(3), atol=1e-6)  # type: ignore[misc]


def test_a_write_is_visible_to_another_client_when_it_returns(
    store: MilvusMemoryStore, milvus_uri: str
) -> None:
    me = user()
    store.write([memory(me, 0)], vectors(1))
    other = MilvusClient(uri=milvus_uri)
    try:
        reader = MilvusMemoryStore(other, dim=DIM, model="test-model", collection=store.collection)
        assert [s.memory.memory_id for s in reader.fetch([me])] == [f"m-{me}-0"]
        [(hit, _)] = reader.search(me, vectors(1)[0], limit=5)
        assert hit.memory.memory_id == f"m-{me}-0"
    finally:
        other.close()


def test_rewriting_a_memory_keeps_it_under_its_user(store: MilvusMemoryStore) -> None:
    # Milvus 2.3.5's upsert files rows under the primary key's partition, where a user filter
    # no longer finds them; the store deletes and inserts instead.
    me = user()
    store.write([memory(me, 0), memory(me, 1)], vectors(2))
    changed = memory(me, 0, text="changed")
    store.write([changed], vectors(1, seed=1), replacing=[changed.memory_id])
    texts = sorted(s.memory.text for s in store.fetch([me]))
    assert texts == ["changed", "memory 1"] and store.count(me) == 2


def test_the_as_of_filter_on_the_server_is_memory_is_true_at(store: MilvusMemoryStore) -> None:
    me = user()
    day = timedelta(days=1)
    written = [
        memory(me, 0),
        memory(me, 1, valid_to=T0 + 5 * day),
        memory(me, 2, valid_from=T0 + 3 * day),
        memory(me, 3, expires_at=T0 + 2 * day),
        memory(me, 4, valid_from=T0, created_at=T0 + 4 * day),  # learnt later than true
        memory(me, 5, valid_from=T0 + 5 * day, valid_to=T0 + 5 * day),  # empty interval
    ]
    store.write(written, vectors(len(written)))
    for offset in (-1, 0, 1, 2, 3, 4, 5, 6):
        at = T0 + offset * day
        got = {s.memory.memory_id for s in store.fetch([me], as_of=at)}
        assert got == {m.memory_id for m in written if m.is_true_at(at)}, offset


def test_kinds_filter_and_unknown_kinds_are_refused(store: MilvusMemoryStore) -> None:
    me = user()
    store.write([memory(me, 0, kind="intent"), memory(me, 2, kind="episode")], vectors(2))
    assert [s.memory.kind for s in store.fetch([me], kinds=["intent"])] == ["intent"]
    with pytest.raises(InvalidInputError):
        store.fetch([me], kinds=["intent", 'x" or kind != "x'])


def test_a_user_id_carrying_an_injection_is_refused_everywhere(store: MilvusMemoryStore) -> None:
    victim = user()
    store.write([memory(victim, 0)], vectors(1))
    calls = [
        lambda: store.fetch([INJECTION]),
        lambda: store.search(INJECTION, vectors(1)[0], limit=10),
        lambda: store.count(INJECTION),
        lambda: store.delete_user(INJECTION),
        lambda: store.delete_memories(INJECTION, [f"m-{victim}-0"]),
        lambda: store.list_user(INJECTION),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="user_id"):
            call()
    assert store.count(victim) == 1


def test_escaped_literals_match_only_themselves_on_the_server(
    store: MilvusMemoryStore, client: MilvusClient
) -> None:
    """Defence in depth: even unvalidated, an escaped string cannot widen a filter."""
    me = user()
    written = [memory(me, n, text=text) for n, text in enumerate(NASTY)]
    store.write(written, vectors(len(written)))
    for item in written:
        expr = f"{memory_filter([me])} and text == {milvus_literal(item.text)}"
        rows = client.query(store.collection, filter=expr, output_fields=["memory_id"])
        assert [row["memory_id"] for row in rows] == [item.memory_id], item.text
    for text in NASTY:  # as a user id, none reaches anybody's rows
        rows = client.query(
            store.collection, filter=f"user_id == {milvus_literal(text)}", output_fields=["text"]
        )
        assert list(rows) == []


def test_deleting_a_user_removes_all_of_theirs_and_nothing_else(store: MilvusMemoryStore) -> None:
    me, neighbour = user(), user()
    store.write([memory(me, n) for n in range(5)] + [memory(neighbour, 0)], vectors(6))
    assert store.delete_user(me) == 5
    assert store.count(me) == 0 and store.fetch([me]) == []
    assert store.count(neighbour) == 1
    assert store.delete_user(me) == 0


def test_deleting_memories_needs_the_owner(store: MilvusMemoryStore) -> None:
    me, other = user(), user()
    store.write([memory(me, 0), memory(me, 1)], vectors(2))
    assert store.delete_memories(other, [f"m-{me}-0"]) == 0
    assert store.delete_memories(me, [f"m-{me}-0", "m-unknown"]) == 1
    assert [s.memory.memory_id for s in store.fetch([me])] == [f"m-{me}-1"]


def test_search_filters_by_user_and_time_on_the_server(store: MilvusMemoryStore) -> None:
    me, other = user(), user()
    mine = [memory(me, 0), memory(me, 1, valid_to=T0 + timedelta(days=1))]
    store.write([*mine, memory(other, 0)], vectors(3))
    query = vectors(3)[2]  # the other user's vector: still only mine come back
    hits = store.search(me, query, limit=10, as_of=T0 + timedelta(days=2))
    assert [stored.memory.memory_id for stored, _ in hits] == [f"m-{me}-0"]
    assert -1.0 <= hits[0][1] <= 1.0


def test_a_collection_of_another_model_is_refused(client: MilvusClient) -> None:
    name = f"t_model_{uuid.uuid4().hex[:8]}"
    MilvusMemoryStore(client, dim=DIM, model="model-a", collection=name).ensure_collection()
    try:
        with pytest.raises(ConfigError, match="model-a"):
            MilvusMemoryStore(client, dim=DIM, model="model-b", collection=name).ensure_collection()
    finally:
        client.drop_collection(name)
