"""The model-backed extractor against a local chat-completions server (bench/chat_stub.py).

The stub stands in for the remote model (the one thing tests may fake): a real HTTP server on a
free port that records each request and answers what the test scripts, failures included.
Whatever the model does, no text loses its facts: the rules read what the model cannot.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from bench.chat_stub import ChatStub, Reply, asked_message, facts_reply, rule_answers, scripted
from core.errors import ConfigError, ModelReplyError, ServiceUnavailableError
from core.settings import Settings
from memory.extract import INTENT_TTL, RuleExtractor, TextSignal
from memory.llm_extract import SYSTEM_PROMPT, LLMConfig, LLMExtractor, llm_config, retry_after_s
from memory.records import Memory
from memory.service import build_extractor

NOW = datetime(2026, 5, 13, 15, 0, tzinfo=UTC)
KEY = "sk-test-0123456789"


@pytest.fixture
def stub() -> Iterator[ChatStub]:
    with ChatStub(scripted(facts_reply([]))) as server:
        yield server


def extractor_for(stub: ChatStub, **overrides: Any) -> LLMExtractor:
    """One request at a time, no backoff: the order of requests is the order of the texts."""
    config = LLMConfig(
        base_url=stub.url, model="tiny", api_key=KEY, backoff_s=0.0, timeout_s=2, concurrency=1
    )
    return LLMExtractor(LLMConfig(**{**config.__dict__, **overrides}))


def said(text: str, speaker: str | None = "user", event_id: str = "e1") -> TextSignal:
    return TextSignal(event_id, "u1", NOW, "message", text, speaker, "s1", None)


def facts_of(memories: list[Memory]) -> list[str]:
    return [m.text for m in memories if m.kind != "episode"]


def by_text(answers: dict[str, Reply]) -> Any:
    """An answerer keyed by the text asked about; other texts get the rules' facts."""
    rules = rule_answers()

    def answer(body: dict[str, Any]) -> Reply:
        return answers.get(asked_message(body)["text"]) or rules(body)

    return answer


# --- the protocol ----------------------------------------------------------------------------


def test_the_request_is_an_authorized_chat_completion(stub: ChatStub) -> None:
    extractor_for(stub).extract([said("hello there")])
    [request] = stub.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body["model"] == "tiny"
    assert request.body["temperature"] == 0
    assert request.body["response_format"] == {"type": "json_object"}
    system, user = request.body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert user["role"] == "user"
    assert json.loads(user["content"]) == {
        "text": "hello there",
        "type": "message",
        "event_time": NOW.isoformat(),
    }


def test_without_a_key_no_authorization_is_sent(stub: ChatStub) -> None:
    extractor_for(stub, api_key=None).extract([said("hello there")])
    assert "Authorization" not in stub.requests[0].headers


def test_facts_come_from_the_model_and_times_from_engram(stub: ChatStub) -> None:
    moved = {
        "kind": "life_event",
        "text": "moved to Seattle",
        "slot": "location",
        "value": "Seattle",
        "time_phrase": "last week",
        "tense": "past",
        "confidence": 0.9,
    }
    tent = {"kind": "intent", "text": "Wants to buy a tent", "tense": "future"}
    stub.answer = scripted(facts_reply([moved, tent]))
    memories = extractor_for(stub).extract([said("We moved to Seattle last week; need a tent")])
    assert [(m.kind, m.text) for m in memories] == [
        ("episode", "We moved to Seattle last week; need a tent"),
        ("life_event", "Moved to Seattle"),
        ("intent", "Wants to buy a tent"),
    ]
    assert (memories[1].slot, memories[1].value) == ("location", "Seattle")
    assert memories[1].valid_from == datetime(2026, 5, 4, tzinfo=UTC)
    assert memories[2].expires_at == NOW + INTENT_TTL


def test_an_intent_with_a_target_expires_after_it(stub: ChatStub) -> None:
    stub.answer = scripted(
        facts_reply(
            [{"kind": "intent", "text": "Wants to visit Rome", "time_phrase": "next month"}]
        )
    )
    [_, intent] = extractor_for(stub).extract([said("I want to visit Rome next month")])
    assert intent.valid_from == NOW
    assert intent.expires_at == datetime(2026, 6, 1, tzinfo=UTC) + timedelta(days=7)


def test_only_the_users_own_words_are_sent(stub: ChatStub) -> None:
    stub.answer = scripted(facts_reply([{"kind": "attribute", "text": "Is vegetarian"}]))
    memories = extractor_for(stub).extract(
        [said("I'm vegetarian-friendly!", speaker="assistant"), said("hi", event_id="e2")]
    )
    assert [r.asked["text"] for r in stub.requests] == ["hi"]
    assert {m.source_event_ids for m in memories} == {("e2",)}


def test_entries_that_break_the_schema_are_skipped(stub: ChatStub) -> None:
    stub.answer = scripted(
        facts_reply(
            [
                {"kind": "opinion", "text": "Thinks it will rain"},
                {"kind": "preference", "text": ""},
                {"kind": "preference", "text": "x" * 201},
                {"kind": "preference", "text": "Likes jazz", "confidence": "very"},
                {"kind": "preference", "text": "likes jazz"},
            ]
        )
    )
    extractor = extractor_for(stub)
    memories, report = extractor.extract_reported([said("I love jazz")])
    assert [(m.text, m.confidence) for m in memories if m.kind != "episode"] == [
        ("Likes jazz", 0.7)
    ]
    assert (report.by_model, report.by_rules) == (1, 0)


def test_fenced_json_is_accepted(stub: ChatStub) -> None:
    stub.answer = scripted(
        Reply('```json\n{"facts": [{"kind": "dislike", "text": "Dislikes opera"}]}\n```')
    )
    assert facts_of(extractor_for(stub).extract([said("I hate opera")])) == ["Dislikes opera"]


def test_texts_are_asked_concurrently_and_memories_keep_their_order(stub: ChatStub) -> None:
    def answer(body: dict[str, Any]) -> Reply:
        word = asked_message(body)["text"].split()[-1]
        return Reply(
            json.dumps({"facts": [{"kind": "preference", "text": f"Likes {word}"}]}), delay_s=0.3
        )

    stub.answer = answer
    words = ["tea", "jazz", "chess", "rain", "maps", "kale", "opera", "golf"]
    signals = [said(f"I like {word}", event_id=f"e{n}") for n, word in enumerate(words)]
    started = time.monotonic()
    memories = extractor_for(stub, concurrency=4).extract(signals)
    assert time.monotonic() - started < 0.3 * len(words) * 0.75  # 4 in flight: ~0.6 s, not 2.4
    assert facts_of(memories) == [f"Likes {word}" for word in words]


# --- failures: the rules read the text, and it is counted ---------------------------------------


def test_a_reply_that_is_not_json_sends_that_text_to_the_rules(stub: ChatStub) -> None:
    stub.answer = by_text(
        {
            "I like tea": Reply("Sure! The user likes tea."),
            "I hate opera": facts_reply([{"kind": "dislike", "text": "Dislikes opera (model)"}]),
        }
    )
    extractor = extractor_for(stub)
    memories, report = extractor.extract_reported(
        [said("I like tea", event_id="e1"), said("I hate opera", event_id="e2")]
    )
    assert facts_of(memories) == ["Likes tea", "Dislikes opera (model)"]
    assert (report.by_model, report.by_rules) == (1, 1)
    assert list(report.failures) == ["not the JSON asked for (JSONDecodeError)"]
    # One bad answer says nothing about the endpoint: the next text is asked too.
    assert facts_of(extractor.extract([said("I hate opera", event_id="e3")])) == [
        "Dislikes opera (model)"
    ]
    assert len(stub.requests) == 3


@pytest.mark.parametrize("content", ['{"fact": []}', '[{"kind": "preference"}]', '{"facts": 3}'])
def test_a_reply_without_a_facts_list_breaks_the_schema(stub: ChatStub, content: str) -> None:
    stub.answer = scripted(Reply(content))
    memories, report = extractor_for(stub).extract_reported([said("I like tea")])
    assert facts_of(memories) == ["Likes tea"]  # the rules'
    assert list(report.failures) == ['not the schema asked for (no "facts" list)']


def test_a_refused_request_sends_only_that_text_to_the_rules(stub: ChatStub) -> None:
    stub.answer = by_text({"I like tea": Reply(status=400, body=b'{"error": "too long"}')})
    _, report = extractor_for(stub).extract_reported(
        [said("I like tea", event_id="e1"), said("I hate opera", event_id="e2")]
    )
    assert (report.by_model, report.by_rules) == (1, 1)
    assert len(stub.requests) == 2  # not retried, and the breaker stayed closed


def test_a_timeout_is_not_retried_and_the_rules_read_the_text(stub: ChatStub) -> None:
    stub.answer = scripted(Reply(delay_s=2.0, content='{"facts": []}'))
    started = time.monotonic()
    memories, report = extractor_for(stub, timeout_s=0.3, max_retries=2).extract_reported(
        [said("I like tea")]
    )
    assert time.monotonic() - started < 1.0
    assert len(stub.requests) == 1
    assert facts_of(memories) == ["Likes tea"]
    assert list(report.failures) == ["no answer within 0.3 s"]


def test_a_rate_limit_is_waited_out_as_the_server_asks(stub: ChatStub) -> None:
    limited = Reply(status=429, body=b'{"error": "slow down"}', headers={"Retry-After": "1"})
    stub.answer = scripted(limited, facts_reply([{"kind": "preference", "text": "Likes tea"}]))
    started = time.monotonic()
    memories, report = extractor_for(stub).extract_reported([said("I like tea")])
    assert time.monotonic() - started >= 1.0
    assert len(stub.requests) == 2
    assert (report.by_model, report.by_rules) == (1, 0)
    assert facts_of(memories) == ["Likes tea"]


def test_a_long_retry_after_fails_over_at_once_and_is_honoured(stub: ChatStub) -> None:
    limited = Reply(status=429, body=b"{}", headers={"Retry-After": "120"})
    stub.answer = scripted(limited, facts_reply([]))
    extractor = extractor_for(stub, max_wait_s=5, cooldown_s=0.1)
    started = time.monotonic()
    _, first = extractor.extract_reported([said("I like tea")])
    assert time.monotonic() - started < 1.0
    assert list(first.failures) == ["HTTP 429, retry after 120 s"]
    time.sleep(0.2)  # past the cool-down, not past the server's 120 s
    memories, later = extractor.extract_reported([said("I hate opera", event_id="e2")])
    assert len(stub.requests) == 1
    assert facts_of(memories) == ["Dislikes opera"]
    assert later.by_rules == 1


def test_server_errors_are_retried_then_the_breaker_sends_the_batch_to_the_rules(
    stub: ChatStub,
) -> None:
    stub.answer = scripted(Reply(status=503, body=b"busy"))
    signals = [
        said(text, event_id=f"e{n}")
        for n, text in enumerate(["I like tea", "I hate opera", "I'm vegan"])
    ]
    memories, report = extractor_for(stub, max_retries=2).extract_reported(signals)
    assert len(stub.requests) == 3  # three attempts for the first text, none for the others
    assert facts_of(memories) == ["Likes tea", "Dislikes opera", "Is vegan"]
    assert (report.by_model, report.by_rules) == (0, 3)
    assert report.failures == {
        "HTTP 503 after 3 attempts": 1,
        "cooling down after an endpoint failure": 2,
    }


def test_after_the_cool_down_one_request_probes_and_its_answer_closes_the_breaker(
    stub: ChatStub,
) -> None:
    stub.answer = scripted(Reply(status=502, body=b"down"), facts_reply([]))
    extractor = extractor_for(stub, max_retries=0, cooldown_s=0.3)
    assert extractor.extract_reported([said("I like tea")])[1].by_rules == 1
    assert extractor.extract_reported([said("I like tea", event_id="e2")])[1].by_rules == 1
    time.sleep(0.35)
    _, report = extractor.extract_reported(
        [said("I like tea", event_id="e3"), said("I hate opera", event_id="e4")]
    )
    assert (report.by_model, report.by_rules) == (2, 0)
    assert len(stub.requests) == 3


def test_a_rejected_key_is_not_retried_and_never_logged(
    stub: ChatStub, caplog: pytest.LogCaptureFixture
) -> None:
    stub.answer = scripted(Reply(status=401, body=b'{"error": "bad key"}'))
    with caplog.at_level(logging.WARNING, logger="memory.llm_extract"):
        memories, report = extractor_for(stub).extract_reported([said("I like tea")])
    assert len(stub.requests) == 1
    assert facts_of(memories) == ["Likes tea"]
    assert report.by_rules == 1
    assert "engram_llm_api_key" in caplog.text and "HTTP 401" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in repr(LLMConfig(base_url=stub.url, model="tiny", api_key=KEY))


def test_an_unreachable_endpoint_sends_the_texts_to_the_rules() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", backoff_s=0.0)
    memories, report = LLMExtractor(config).extract_reported([said("I like tea")])
    assert facts_of(memories) == ["Likes tea"]
    assert report.by_rules == 1 and "unreachable" in next(iter(report.failures))


def test_facts_raise_for_callers_that_want_the_model_alone(stub: ChatStub) -> None:
    stub.answer = scripted(Reply("Sure! The user likes tea."))
    with pytest.raises(ModelReplyError, match="not the JSON"):
        extractor_for(stub).facts(said("I like tea"))
    stub.answer = scripted(Reply(status=503, body=b"busy"))
    with pytest.raises(ServiceUnavailableError, match="3 attempts"):
        extractor_for(stub, max_retries=2).facts(said("I like tea"))


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_s({"Retry-After": later}) or 0) <= 30
    assert retry_after_s({"Retry-After": "soon"}) is None
    assert retry_after_s({}) is None


# --- settings -------------------------------------------------------------------------------


def test_the_rules_extract_unless_a_url_is_set(tmp_path: Path) -> None:
    assert isinstance(build_extractor(Settings(engram_home=tmp_path)), RuleExtractor)


def test_settings_pick_the_model_and_keep_the_key_secret(tmp_path: Path) -> None:
    settings = Settings(
        engram_home=tmp_path,
        engram_llm_base_url="http://127.0.0.1:8000/v1",
        engram_llm_model="qwen2.5-7b-instruct",
        engram_llm_api_key=KEY,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        engram_llm_timeout_s=12,
        engram_llm_concurrency=8,
    )
    extractor = build_extractor(settings)
    assert isinstance(extractor, LLMExtractor) and extractor.model == "qwen2.5-7b-instruct"
    config = llm_config(settings)
    assert config is not None
    assert (config.api_key, config.timeout_s, config.concurrency) == (KEY, 12, 8)
    assert KEY not in repr(settings) and KEY not in repr(config)


@pytest.mark.parametrize(
    ("url", "model", "setting"),
    [
        ("http://127.0.0.1:8000/v1", None, "engram_llm_model"),
        ("127.0.0.1:8000", "m", "engram_llm_base_url"),
    ],
)
def test_an_incomplete_model_setting_is_a_config_error(
    tmp_path: Path, url: str, model: str | None, setting: str
) -> None:
    settings = Settings(engram_home=tmp_path, engram_llm_base_url=url, engram_llm_model=model)
    with pytest.raises(ConfigError, match=setting):
        build_extractor(settings)


# --- end to end: `engram ingest --memories` with a model configured ------------------------------

SIGNALS: list[dict[str, Any]] = [
    {
        "event_id": "a1",
        "user_id": "alice",
        "ts": "2026-03-01T10:00:00Z",
        "type": "message",
        "text": "I live in Denver and I'm vegetarian",
        "context": {"speaker": "user"},
    },
    {
        "event_id": "a2",
        "user_id": "alice",
        "ts": "2026-03-01T10:01:00Z",
        "type": "message",
        "text": "You should move to Paris!",
        "context": {"speaker": "assistant"},
    },
    {
        "event_id": "a3",
        "user_id": "alice",
        "ts": "2026-05-02T09:00:00Z",
        "type": "message",
        "text": "we moved to Seattle last week",
        "context": {"speaker": "user"},
    },
    *(
        {
            "event_id": f"a{4 + n}",
            "user_id": "alice",
            "ts": f"2026-05-03T09:{10 * n:02d}:00Z",
            "type": "search",
            "text": text,
        }
        for n, text in enumerate(["waterproof tent", "tent footprint", "tent"])
    ),
    {
        "event_id": "b1",
        "user_id": "bob",
        "ts": "2026-03-01T10:00:00Z",
        "type": "message",
        "text": "I'm a huge fan of jazz",
        "context": {"speaker": "user"},
    },
]


@pytest.fixture
def home(request: pytest.FixtureRequest, tmp_path: Path, milvus_uri: str) -> Iterator[Path]:
    """A fresh ENGRAM_HOME sharing the test run's ONNX export, on an empty memory collection."""
    from pymilvus import MilvusClient

    from memory.store import DEFAULT_COLLECTION
    from tests.embedding_models import link_embedding_models

    link_embedding_models(request, tmp_path / "home")
    client = MilvusClient(uri=milvus_uri)
    client.drop_collection(DEFAULT_COLLECTION)
    yield tmp_path / "home"
    client.drop_collection(DEFAULT_COLLECTION)
    client.close()


def test_ingest_remembers_what_the_configured_model_says(
    home: Path,
    milvus_uri: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from click.testing import CliRunner

    from core.settings import get_settings
    from engram.cli import main

    signals = home.parent / "signals.jsonl"
    signals.write_text("".join(json.dumps(signal) + "\n" for signal in SIGNALS))
    answers = by_text(
        {
            "I'm a huge fan of jazz": facts_reply(
                [{"kind": "preference", "text": "Likes jazz records"}]
            ),
            "we moved to Seattle last week": Reply("They moved, I think."),  # the rules read it
        }
    )
    env = {
        "ENGRAM_HOME": str(home),
        "MILVUS_URI": milvus_uri,
        "REDIS_URL": redis_url,  # the session's: else the ingest starts (and leaves) the home's own
        "ENGRAM_LLM_MODEL": "stub-model",
        "ENGRAM_LLM_API_KEY": KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    try:
        with ChatStub(answers) as stub:
            monkeypatch.setenv("ENGRAM_LLM_BASE_URL", stub.url)
            get_settings.cache_clear()
            ingest = runner.invoke(main, ["ingest", str(signals), "--memories", "--json"])
            asked = len(stub.requests)
            replay = runner.invoke(main, ["ingest", str(signals), "--memories", "--json"])
        monkeypatch.delenv("ENGRAM_LLM_BASE_URL")
        get_settings.cache_clear()
        listed = {
            user: runner.invoke(main, ["memories", "list", user, "--history", "--json"])
            for user in ("alice", "bob")
        }
    finally:
        get_settings.cache_clear()
    assert ingest.exit_code == 0, ingest.output
    summary = json.loads(ingest.stdout.splitlines()[-1])["memories"]
    assert (summary["llm_read"], summary["llm_fallbacks"]) == (2, 1)
    assert sorted(r.asked["text"] for r in stub.requests) == sorted(
        [
            "I live in Denver and I'm vegetarian",
            "we moved to Seattle last week",
            "I'm a huge fan of jazz",
        ]
    )
    assert {(r.headers["Authorization"], r.body["model"]) for r in stub.requests} == {
        (f"Bearer {KEY}", "stub-model")
    }
    assert asked == len(stub.requests)  # a replay asks the model nothing
    again = json.loads(replay.stdout.splitlines()[-1])["memories"]
    assert (again["llm_read"], again["llm_fallbacks"], again["written"]) == (0, 0, 0)
    assert "the rules read 1 of 3 user texts" in caplog.text
    assert KEY not in ingest.output + ingest.stderr + caplog.text
    texts = {
        user: {m["text"] for m in json.loads(result.stdout)["memories"]}
        for user, result in listed.items()
    }
    assert "Likes jazz records" in texts["bob"] and "Likes jazz" not in texts["bob"]  # the model's
    assert {"Moved to Seattle", "Is vegetarian", "Wants to buy a tent"} <= texts["alice"]
