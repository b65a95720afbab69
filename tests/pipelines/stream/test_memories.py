"""The stream hands text signals to the memory service: remembered once, however redelivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pymilvus import MilvusClient

from bench.chat_stub import ChatStub, facts_reply, scripted
from core.settings import Settings
from memory.service import build_memory_service
from memory.store import DEFAULT_COLLECTION
from pipelines.stream.process import open_context, process_batch
from tests.embedding_models import link_embedding_models
from tests.pipelines.stream.conftest import StreamHome

SIGNALS = [
    {
        "event_id": "m1",
        "user_id": "mia",
        "ts": "2026-11-01T10:00:00Z",
        "type": "message",
        "text": "I'm vegetarian, by the way",
        "context": {"speaker": "user", "session_id": "c1"},
    },
    {
        "event_id": "m2",
        "user_id": "mia",
        "ts": "2026-11-01T10:01:00Z",
        "type": "view",
        "item_id": "i1",
    },
]


@pytest.fixture
def home(
    request: pytest.FixtureRequest, tmp_path: Path, milvus_uri: str, stream_home: StreamHome
) -> Iterator[Settings]:
    link_embedding_models(request, tmp_path / "home")
    client = MilvusClient(uri=milvus_uri)
    client.drop_collection(DEFAULT_COLLECTION)
    yield stream_home.settings.model_copy(
        update={"engram_home": tmp_path / "home", "milvus_uri": milvus_uri}
    )
    client.drop_collection(DEFAULT_COLLECTION)
    client.close()


def test_text_signals_become_memories_once(
    home: Settings, stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    service = build_memory_service(home)
    try:
        ctx = open_context(home, stream_client, stream_home.layout, memory=service)
        first = process_batch(ctx, SIGNALS, keep_rejected=False)
        assert first.memories["signals"] == 1 and first.memories["written"] >= 1
        assert any("vegetarian" in m.text.lower() for m in service.list("mia"))
        again = process_batch(ctx, SIGNALS, keep_rejected=False)  # redelivered
        assert again.new == 0 and again.memories["written"] == 0
    finally:
        service.close()


def test_with_a_model_configured_the_stream_remembers_what_it_says(
    home: Settings, stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    said = facts_reply(
        [{"kind": "attribute", "text": "Eats no meat", "slot": "diet", "value": "x"}]
    )
    with ChatStub(scripted(said)) as stub:
        configured = home.model_copy(
            update={"engram_llm_base_url": stub.url, "engram_llm_model": "stub"}
        )
        service = build_memory_service(configured)
        try:
            ctx = open_context(configured, stream_client, stream_home.layout, memory=service)
            result = process_batch(ctx, SIGNALS, keep_rejected=False)
            texts = {m.text for m in service.list("mia")}
        finally:
            service.close()
    assert [r.asked["text"] for r in stub.requests] == ["I'm vegetarian, by the way"]
    assert (result.memories["llm_read"], result.memories["llm_fallbacks"]) == (1, 0)
    assert "Eats no meat" in texts and "Is vegetarian" not in texts
