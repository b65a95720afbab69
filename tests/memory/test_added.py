"""Memories an application adds and corrects: how the rules read them (pure), and a collection
made before scopes and history, used as it is and then migrated (real Milvus)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pymilvus import MilvusClient

from core.errors import InvalidInputError
from memory import embed
from memory.added import NewMemory, added_memory, edited, first_person
from memory.extract import RuleExtractor, TextSignal
from memory.service import MemoryService
from memory.store import (
    MilvusMemoryStore,
    OutdatedCollectionError,
    _schema,
    ensure_vector_collection,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
RULES = RuleExtractor()


@pytest.mark.parametrize(
    ("said", "first"),
    [
        ("Lives in Boston", "I live in Boston"),
        ("The user is vegan", "I am vegan"),
        ("User has a dog", "I have a dog"),
        ("Watches anime", "I watch anime"),
        ("Studies law", "I study law"),
        ("Moved to Seattle", "I moved to Seattle"),
    ],
)
def test_third_person_statements_are_read_as_the_user_would_say_them(said: str, first: str) -> None:
    assert first_person(said) == first


@pytest.mark.parametrize(
    ("text", "kind", "slot", "value"),
    [
        ("Lives in Boston", "attribute", "location", "Boston"),
        ("I am vegetarian", "attribute", "diet", "vegetarian"),
        ("Works at Acme", "attribute", "employer", "Acme"),
        ("Prefers window seats", "preference", None, None),
        ("Sister is Anna", "relationship", None, None),
        ("Collects stamps from 1920", "attribute", None, None),  # not read: an attribute
    ],
)
def test_added_memories_carry_the_kind_slot_and_value_the_rules_read(
    text: str, kind: str, slot: str | None, value: str | None
) -> None:
    memory = added_memory("ana", NewMemory(text), source_id="added:1", now=NOW, rules=RULES)
    assert (memory.kind, memory.slot, memory.value) == (kind, slot, value)
    assert memory.text == text and memory.confidence == 1.0
    assert (memory.valid_from, memory.created_at) == (NOW, NOW)
    assert memory.source_event_ids == ("added:1",)


def test_a_given_kind_wins_and_intents_expire() -> None:
    told = NewMemory("Lives in Boston", kind="life_event", scope="app-1")
    memory = added_memory("ana", told, source_id="added:2", now=NOW, rules=RULES)
    assert (memory.kind, memory.slot, memory.scope) == ("life_event", "location", "app-1")
    wish = added_memory(
        "ana", NewMemory("Wants to buy a tent"), source_id="added:3", now=NOW, rules=RULES
    )
    assert wish.kind == "intent" and wish.expires_at == NOW + timedelta(days=14)
    episode = added_memory(
        "ana", NewMemory("I live in Boston", kind="episode"), source_id="a:4", now=NOW, rules=RULES
    )
    assert episode.slot is None
    with pytest.raises(InvalidInputError):
        added_memory("ana", NewMemory("  \n"), source_id="added:5", now=NOW, rules=RULES)


def test_a_correction_changes_what_it_names_and_nothing_else() -> None:
    memory = added_memory(
        "ana", NewMemory("Lives in Boston"), source_id="a:1", now=NOW, rules=RULES
    )
    later = NOW + timedelta(days=1)
    moved = edited(memory, now=later, rules=RULES, text="Lives in Denver")
    assert (moved.text, moved.value, moved.updated_at) == ("Lives in Denver", "Denver", later)
    assert moved.memory_id == memory.memory_id and moved.valid_from == memory.valid_from
    assert edited(memory, now=later, rules=RULES, text=" Lives  in Boston") == memory
    closed = edited(memory, now=later, rules=RULES, valid_to=later)
    reopened = edited(closed.evolve(superseded_by="m-x"), now=later, rules=RULES, valid_to=None)
    assert (reopened.valid_to, reopened.superseded_by) == (None, None)
    with pytest.raises(InvalidInputError):
        edited(memory, now=later, rules=RULES, valid_to=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    connected = MilvusClient(uri=milvus_uri)
    yield connected
    connected.close()


def test_an_old_collection_works_as_it_is_then_migrates(
    client: MilvusClient, minilm: embed.Embedder
) -> None:
    name = f"t_old_{uuid.uuid4().hex[:8]}"
    ensure_vector_collection(
        client,
        name,
        minilm.name,
        lambda: _schema(minilm.dim, minilm.name, versioned=False),
        what="memory collection",
        remedy="",
        num_partitions=4,
    )
    store = MilvusMemoryStore(client, dim=minilm.dim, model=minilm.name, collection=name)
    service = MemoryService(store, embed.CachedEmbedder(minilm), RuleExtractor())
    try:
        assert not store.versioned
        said = TextSignal("e1", "ana", NOW, "message", "I live in Boston and I am vegan.", "user")
        service.remember([said])
        [added] = service.add_memories("ana", [NewMemory("Prefers window seats")], now=NOW)
        before = {m.memory_id: m for m in service.list("ana")}
        assert added in before and len(before) == 4  # episode, location, diet, added
        assert service.search("ana", "where does she live", k=1, as_of=NOW)[0].memory.slot

        for refused in (
            lambda: service.add_memories("ana", [NewMemory("Likes jazz", scope="s")]),
            lambda: service.list("ana", scope="s"),
            lambda: service.update_memory("ana", added, text="Prefers aisle seats"),
            lambda: service.history("ana", added),
        ):
            with pytest.raises(OutdatedCollectionError, match="engram memories migrate"):
                refused()

        assert store.migrate() == 4
        assert store.versioned and store.migrate() == 0
        assert {m.memory_id: m for m in service.list("ana")} == before
        service.update_memory("ana", added, text="Prefers aisle seats", now=NOW)
        assert [v.memory.text for v in service.history("ana", added)] == [
            "Prefers window seats",
            "Prefers aisle seats",
        ]
        assert service.forget_memory("ana", added) and store.count("ana") == 3  # history too
    finally:
        for leftover in (name, f"{name}_migrating"):
            if client.has_collection(leftover):
                client.drop_collection(leftover)
