"""The memory service end to end on a real Milvus and the real model: remember, search, forget."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import redis
from pymilvus import MilvusClient

from core.errors import InvalidInputError
from memory import embed
from memory.added import NewMemory
from memory.extract import RuleExtractor, TextSignal
from memory.records import ScoredMemory
from memory.service import MemoryService, answer_queries
from memory.store import MilvusMemoryStore, milvus_literal
from memory.versions import MemoryVersions

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
INJECTION = 'x" || user_id != "x'


@pytest.fixture(scope="module")
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    connected = MilvusClient(uri=milvus_uri)
    yield connected
    connected.close()


@pytest.fixture(scope="module")
def service(client: MilvusClient, minilm: embed.Embedder) -> Iterator[MemoryService]:
    store = MilvusMemoryStore(
        client, dim=minilm.dim, model=minilm.name, collection=f"t_service_{uuid.uuid4().hex[:8]}"
    )
    store.ensure_collection()
    yield MemoryService(store, embed.CachedEmbedder(minilm), RuleExtractor())
    store.drop_collection()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def says(user_id: str, n: int, text: str, at: datetime, speaker: str = "user") -> TextSignal:
    return TextSignal(
        event_id=f"{user_id}-e{n}",
        user_id=user_id,
        ts=at,
        type="message",
        text=text,
        speaker=speaker,
        session_id=f"{user_id}-s{at.date()}",
    )


def texts(hits: list[ScoredMemory]) -> list[str]:
    return [hit.memory.text for hit in hits]


def test_remembered_facts_are_searchable_with_their_sources(service: MemoryService) -> None:
    me = user()
    summary = service.remember(
        [
            says(me, 1, "I'm vegetarian, just so you know", T0),
            says(me, 2, "Great, noted!", T0 + timedelta(minutes=1), speaker="assistant"),
            says(me, 3, "my dog Nala keeps stealing my socks", T0 + timedelta(minutes=2)),
        ]
    )
    assert summary.signals == 3 and summary.inserted >= 4 and summary.written >= 4
    hits = service.search(me, "any dietary restrictions for this user", k=3)
    assert hits[0].memory.text == "Is vegetarian"
    assert hits[0].memory.source_event_ids == (f"{me}-e1",)
    assert all(hit.score > 0 for hit in hits)
    assert "Great, noted!" not in texts(service.search(me, "noted", k=10))


def test_the_same_fact_in_two_sessions_is_one_memory_with_both_sources(
    service: MemoryService,
) -> None:
    me = user()
    service.remember([says(me, 1, "I really love jazz", T0)])
    service.remember([says(me, 2, "jazz is my favourite thing", T0 + timedelta(days=20))])
    facts = [m for m in service.list(me) if m.kind == "preference"]
    assert [m.text for m in facts] == ["Likes jazz"]
    assert facts[0].source_event_ids == (f"{me}-e1", f"{me}-e2")
    assert facts[0].confidence > 0.9


def test_a_move_supersedes_the_old_city_and_as_of_sees_each_in_its_time(
    service: MemoryService,
) -> None:
    me = user()
    service.remember([says(me, 1, "I live in Denver", T0)])
    moved_at = T0 + timedelta(days=60)
    summary = service.remember([says(me, 2, "We moved to Seattle last week", moved_at)])
    assert summary.superseded == 1
    question = "where does the user live"
    before = [h.memory for h in service.search(me, question, k=5, as_of=T0 + timedelta(days=30))]
    after = [
        h.memory for h in service.search(me, question, k=5, as_of=moved_at + timedelta(days=1))
    ]
    assert "Lives in Denver" in [m.text for m in before]
    assert "Moved to Seattle" not in [m.text for m in before]
    assert "Moved to Seattle" in [m.text for m in after]
    assert "Lives in Denver" not in [m.text for m in after]
    history = {m.text: m for m in service.list(me, kinds=["attribute", "life_event"])}
    denver, seattle = history["Lives in Denver"], history["Moved to Seattle"]
    assert denver.superseded_by == seattle.memory_id
    assert denver.valid_to == seattle.valid_from < moved_at  # "last week"


def test_an_intent_expires(service: MemoryService) -> None:
    me = user()
    service.remember([says(me, 1, "can you help me find a tent?", T0)])
    [intent] = service.list(me, kinds=["intent"])
    assert intent.expires_at is not None
    question = "what is the user shopping for"
    soon = service.search(me, question, k=5, kinds=["intent"], as_of=T0 + timedelta(days=1))
    late = service.search(me, question, k=5, kinds=["intent"], as_of=intent.expires_at)
    assert texts(soon) == [intent.text] and late == []


def test_a_burst_of_searches_becomes_an_intent(service: MemoryService) -> None:
    me = user()
    searches = [
        TextSignal(f"{me}-s{n}", me, T0 + timedelta(minutes=10 * n), "search", text)
        for n, text in enumerate(["waterproof tent", "tent footprint", "tent"])
    ]
    summary = service.remember(searches)
    assert summary.inserted == 1  # no episode: searches are not the user's words to keep
    [intent] = service.list(me)
    assert (intent.kind, intent.text) == ("intent", "Wants to buy a tent")
    assert intent.source_event_ids == tuple(s.event_id for s in searches)


def test_remembering_the_same_signals_again_writes_nothing(service: MemoryService) -> None:
    me = user()
    signals = [says(me, 1, "I work at Contoso", T0), says(me, 2, "hi", T0)]
    first = service.remember(signals)
    again = service.remember(signals)
    assert first.written > 0
    assert (again.known, again.embedded, again.written) == (first.extracted, 0, 0)


def test_forgetting_a_user_leaves_nothing_of_theirs_in_milvus(
    service: MemoryService, client: MilvusClient
) -> None:
    me, neighbour = user(), user()
    service.remember(
        [says(me, 1, "I live in Lisbon", T0), says(neighbour, 1, "I live in Rome", T0)]
    )
    assert service.forget_user(me) >= 2
    rows = client.query(
        service.store.collection, filter=f"user_id == {milvus_literal(me)}", output_fields=["text"]
    )
    assert list(rows) == [] and service.list(me) == []
    assert service.search(me, "where does the user live", k=5) == []
    assert "Lives in Rome" in [m.text for m in service.list(neighbour)]


def test_forgetting_one_memory(service: MemoryService) -> None:
    me, other = user(), user()
    service.remember([says(me, 1, "I'm allergic to peanuts", T0)])
    [fact] = service.list(me, kinds=["attribute"])
    assert not service.forget_memory(other, fact.memory_id)
    assert service.forget_memory(me, fact.memory_id)
    assert service.list(me, kinds=["attribute"]) == []
    assert not service.forget_memory(me, fact.memory_id)


def test_a_filter_injection_in_the_user_id_reaches_nobody(service: MemoryService) -> None:
    victim = user()
    service.remember([says(victim, 1, "I live in Oslo", T0)])
    for call in (
        lambda: service.search(INJECTION, "where does the user live", k=10),
        lambda: service.list(INJECTION),
        lambda: service.forget_user(INJECTION),
    ):
        with pytest.raises(InvalidInputError, match="user_id"):
            call()
    # The batch interface answers the line with an error and no memories of anyone.
    [answer] = answer_queries(
        service, [f'{{"id": 7, "user_id": {milvus_literal(INJECTION)}, "query": "city"}}']
    )
    assert answer["id"] == 7 and "memories" not in answer and "user_id" in answer["error"]
    assert len(service.list(victim)) >= 2


def test_batch_queries_are_answered_in_order_with_ids_echoed(service: MemoryService) -> None:
    me = user()
    service.remember([says(me, 1, "I love hiking", T0)])
    lines = [
        f'{{"id": "a", "user_id": "{me}", "query": "outdoor activities", "k": 2}}',
        "",
        "not json",
        f'{{"user_id": "{me}", "query": "hobbies", "as_of": "2025-01-01T00:00:00Z"}}',
    ]
    answers = list(answer_queries(service, lines))
    assert [a.get("id") for a in answers] == ["a", None, None]
    assert answers[0]["memories"][0]["text"] == "Likes hiking"
    assert len(answers[0]["memories"]) == 2
    assert set(answers[0]["memories"][0]) >= {
        "memory_id",
        "kind",
        "text",
        "score",
        "source_event_ids",
    }
    assert "not JSON" in answers[1]["error"]
    assert answers[2]["memories"] == []  # nothing was known in 2025


def test_lexical_matches_outside_a_full_dense_pool_still_count(
    service: MemoryService,
) -> None:
    me = user()
    service.remember(
        [
            says(me, 1, "I really love jazz", T0),
            says(me, 2, "jazz and blues all day long", T0),
            says(me, 3, "we have a cat at home, his name is Biscuit", T0),
        ]
    )
    question = "which music does the user like, and Biscuit"
    small = MemoryService(service.store, service.embedder, service.extractor, pool=1)
    [nearest] = service.store.search(me, service.embedder.embed([question])[0], limit=1)
    assert "Biscuit" not in nearest[0].memory.text  # the dense pool of one misses the cat
    hits = small.search(me, question, k=3)
    [cat] = [hit for hit in hits if "Biscuit" in hit.memory.text]
    assert cat.parts["lexical"] > 0 and cat.parts["dense"] <= nearest[1]


def test_search_arguments_are_checked(service: MemoryService) -> None:
    with pytest.raises(InvalidInputError, match="query"):
        service.search(user(), "  ", k=3)
    with pytest.raises(InvalidInputError, match="k"):
        service.search(user(), "x", k=0)
    with pytest.raises(InvalidInputError, match="kinds"):
        service.search(user(), "x", k=3, kinds=["opinion"])


def test_a_kept_index_never_answers_what_another_process_changed(service: MemoryService) -> None:
    me = user()
    service.remember(
        [
            says(me, 1, "I really love jazz", T0),
            says(me, 2, "we have a cat at home, his name is Biscuit", T0 + timedelta(minutes=1)),
            says(me, 3, "I moved to Seattle last year", T0 + timedelta(days=2)),
        ]
    )
    # Another process: its own service, and so its own kept indexes, on the same store.
    reader = MemoryService(service.store, service.embedder, service.extractor, pool=1)
    [cat] = [
        hit for hit in reader.search(me, "Biscuit the cat", k=5) if "Biscuit" in hit.memory.text
    ]
    assert service.forget_memory(me, cat.memory.memory_id)
    assert cat.memory.memory_id not in [
        hit.memory.memory_id for hit in reader.search(me, "Biscuit the cat", k=5)
    ]
    service.remember([says(me, 4, "we adopted a parrot called Kiwi", T0 + timedelta(days=3))])
    assert "we adopted a parrot called Kiwi" in texts(reader.search(me, "Kiwi the parrot", k=2))


def test_a_search_in_a_scope_sees_that_scope_and_a_correction_at_once(
    service: MemoryService,
) -> None:
    me = user()
    service.remember([says(me, 1, "I live in Boston", T0)])
    [window] = service.add_memories(me, [NewMemory("Prefers window seats", scope="app-1")], now=T0)
    service.add_memories(me, [NewMemory("Prefers aisle seats", scope="app-2")], now=T0)
    assert texts(service.search(me, "seat preference", k=5, scope="app-1")) == [
        "Prefers window seats"
    ]
    assert len(service.search(me, "seat preference", k=5)) == 4  # every scope: the index is kept
    service.update_memory(me, window, text="Prefers exit rows", now=T0 + timedelta(hours=1))
    assert texts(service.search(me, "seat preference", k=5, scope="app-1")) == ["Prefers exit rows"]


def test_a_kept_index_answers_without_milvus_until_any_process_changes_the_user(
    service: MemoryService, redis_url: str
) -> None:
    me = user()
    client = redis.Redis.from_url(redis_url)
    # Two processes: each its own service and kept indexes; one Redis of version numbers.
    writer = MemoryService(
        service.store, service.embedder, service.extractor, versions=MemoryVersions(client)
    )
    reader = MemoryService(
        service.store, service.embedder, service.extractor, versions=MemoryVersions(client)
    )
    writer.remember([says(me, 1, "we have a cat at home, his name is Biscuit", T0)])
    assert "Biscuit" in texts(reader.search(me, "Biscuit the cat", k=1))[0]

    def no_milvus(*args: object, **kwargs: object) -> None:
        raise AssertionError("searched Milvus")

    store = reader.store
    reader.store = SimpleNamespace(search=no_milvus, fetch=no_milvus)  # type: ignore[assignment]
    assert "Biscuit" in texts(reader.search(me, "Biscuit the cat", k=1))[0]
    reader.store = store
    writer.remember([says(me, 2, "we adopted a parrot called Kiwi", T0 + timedelta(days=1))])
    assert "Kiwi" in texts(reader.search(me, "Kiwi the parrot", k=1))[0]
    writer.forget_user(me, purge_timeout_s=0)
    assert reader.search(me, "Kiwi the parrot", k=1) == []
    assert not any(str(me) in key.decode() for key in client.keys("*"))  # keys name no one
    # Redis gone: the reader checks its index against Milvus instead, and still sees a change.
    writer.remember([says(me, 3, "I moved to Seattle", T0 + timedelta(days=2))])
    reader.versions = MemoryVersions(redis.Redis(port=1, socket_connect_timeout=0.1))
    assert "Seattle" in texts(reader.search(me, "where do I live", k=1))[0]
    client.close()
