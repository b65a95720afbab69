"""The optional model-backed extractor, against a local fake of a chat-completions endpoint.

The fake stands in for a remote model call (the one thing tests may fake): it records each
request and answers with canned replies in order.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.errors import ConfigError, ServiceUnavailableError
from memory.extract import INTENT_TTL, TextSignal
from memory.llm_extract import LLMConfig, LLMExtractor

NOW = datetime(2026, 5, 13, 15, 0, tzinfo=UTC)


@dataclass
class FakeModel:
    """Replies in order: (status, body); the last one repeats."""

    url: str
    replies: list[tuple[int, bytes]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def answer(self, facts: list[Any] | str, status: int = 200) -> None:
        content = facts if isinstance(facts, str) else json.dumps({"facts": facts})
        body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        self.replies.append((status, json.dumps(body).encode()))


@pytest.fixture
def model() -> Iterator[FakeModel]:
    fake = FakeModel(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            fake.requests.append(json.loads(self.rfile.read(length)))
            fake.headers.append({"path": self.path, **dict(self.headers.items())})
            status, body = fake.replies.pop(0) if len(fake.replies) > 1 else fake.replies[0]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def extractor_for(model: FakeModel, **overrides: Any) -> LLMExtractor:
    config = LLMConfig(base_url=model.url, model="tiny", api_key="k-123", backoff_s=0.0)
    return LLMExtractor(LLMConfig(**{**config.__dict__, **overrides}))


def said(text: str, speaker: str | None = "user", event_id: str = "e1") -> TextSignal:
    return TextSignal(event_id, "u1", NOW, "message", text, speaker, "s1", None)


def test_facts_come_from_the_model_and_times_from_engram(model: FakeModel) -> None:
    model.answer(
        [
            {
                "kind": "life_event",
                "text": "moved to Seattle",
                "slot": "location",
                "value": "Seattle",
                "time_phrase": "last week",
                "tense": "past",
                "confidence": 0.9,
            },
            {
                "kind": "intent",
                "text": "Wants to buy a tent",
                "slot": None,
                "value": None,
                "time_phrase": None,
                "tense": "future",
                "confidence": 0.8,
            },
        ]
    )
    memories = extractor_for(model).extract([said("We moved to Seattle last week; need a tent")])
    assert [(m.kind, m.text) for m in memories] == [
        ("episode", "We moved to Seattle last week; need a tent"),
        ("life_event", "Moved to Seattle"),
        ("intent", "Wants to buy a tent"),
    ]
    moved, intent = memories[1], memories[2]
    assert (moved.slot, moved.value) == ("location", "Seattle")
    assert moved.valid_from == datetime(2026, 5, 4, tzinfo=UTC)
    assert intent.expires_at == NOW + INTENT_TTL


def test_the_request_is_an_authorized_chat_completion(model: FakeModel) -> None:
    model.answer([])
    extractor_for(model).extract([said("hello there")])
    [request], [headers] = model.requests, model.headers
    assert headers["path"] == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k-123"
    assert request["model"] == "tiny"
    assert request["response_format"] == {"type": "json_object"}
    assert json.loads(request["messages"][-1]["content"])["text"] == "hello there"


def test_only_the_users_own_words_are_sent(model: FakeModel) -> None:
    model.answer([{"kind": "attribute", "text": "Is vegetarian"}])
    memories = extractor_for(model).extract(
        [said("I'm vegetarian-friendly!", speaker="assistant"), said("hi", event_id="e2")]
    )
    assert len(model.requests) == 1
    assert "vegetarian" not in model.requests[0]["messages"][-1]["content"]
    assert {m.source_event_ids for m in memories} == {("e2",)}


def test_entries_that_break_the_schema_are_skipped(model: FakeModel) -> None:
    model.answer(
        [
            {"kind": "opinion", "text": "Thinks it will rain"},
            {"kind": "preference", "text": ""},
            "not an object",
            {"kind": "preference", "text": "Likes jazz", "confidence": "very"},
            {"kind": "preference", "text": "likes jazz"},
        ]
    )
    facts = [m for m in extractor_for(model).extract([said("I love jazz")]) if m.kind != "episode"]
    assert [(m.text, m.confidence) for m in facts] == [("Likes jazz", 0.7)]


def test_fenced_json_is_accepted(model: FakeModel) -> None:
    model.answer('```json\n{"facts": [{"kind": "dislike", "text": "Dislikes opera"}]}\n```')
    facts = extractor_for(model).extract([said("I hate opera")])
    assert facts[-1].text == "Dislikes opera"


def test_transient_failures_are_retried_then_succeed(model: FakeModel) -> None:
    model.replies.append((503, b"busy"))
    model.replies.append((429, b"slow down"))
    model.answer([{"kind": "preference", "text": "Likes tea"}])
    facts = extractor_for(model, max_retries=2).extract([said("I like tea")])
    assert len(model.requests) == 3
    assert facts[-1].text == "Likes tea"


def test_persistent_failure_is_a_service_error(model: FakeModel) -> None:
    model.replies.append((503, b"busy"))
    with pytest.raises(ServiceUnavailableError, match="3 attempts"):
        extractor_for(model, max_retries=2).extract([said("I like tea")])
    assert len(model.requests) == 3


def test_a_rejected_key_is_a_config_error_without_retries(model: FakeModel) -> None:
    model.replies.append((401, b"no"))
    with pytest.raises(ConfigError, match="llm_api_key"):
        extractor_for(model).extract([said("I like tea")])
    assert len(model.requests) == 1


def test_a_reply_that_is_not_json_is_an_error(model: FakeModel) -> None:
    model.answer("Sure! The user likes tea.")
    with pytest.raises(ServiceUnavailableError, match="not the JSON"):
        extractor_for(model).extract([said("I like tea")])


def test_an_unreachable_endpoint_is_a_service_error() -> None:
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=2)
    with pytest.raises(ServiceUnavailableError):
        LLMExtractor(config).extract([said("I like tea")])


def test_a_model_and_url_are_required() -> None:
    with pytest.raises(ConfigError):
        LLMExtractor(LLMConfig(base_url="", model="m"))


def test_an_intent_with_a_target_expires_after_it(model: FakeModel) -> None:
    model.answer([{"kind": "intent", "text": "Wants to visit Rome", "time_phrase": "next month"}])
    [_, intent] = extractor_for(model).extract([said("I want to visit Rome next month")])
    assert intent.valid_from == NOW
    assert intent.expires_at == datetime(2026, 6, 1, tzinfo=UTC) + timedelta(days=7)
