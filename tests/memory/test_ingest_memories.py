"""Memories through `engram ingest` and the memory commands: searchable on return, forgettable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import redis
from click.testing import CliRunner
from pymilvus import MilvusClient

from core.settings import Settings, get_settings
from core.stores.online.layout import redis_key
from engram.cli import main
from memory.ingest import TEXT_SIGNAL_TYPES
from memory.store import DEFAULT_COLLECTION, milvus_literal
from pipelines import dead_letter, duck, event_store
from pipelines.batch import run_ingest

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
    {
        "event_id": "a4",
        "user_id": "alice",
        "ts": "2026-05-03T09:00:00Z",
        "type": "search",
        "text": "waterproof tent",
    },
    {
        "event_id": "a5",
        "user_id": "alice",
        "ts": "2026-05-03T09:10:00Z",
        "type": "search",
        "text": "tent footprint",
    },
    {
        "event_id": "a6",
        "user_id": "alice",
        "ts": "2026-05-03T09:20:00Z",
        "type": "search",
        "text": "tent",
    },
    {
        "event_id": "a7",
        "user_id": "alice",
        "ts": "2026-05-03T09:30:00Z",
        "type": "view",
        "item_id": "i1",
    },
    {
        "event_id": "b1",
        "user_id": "bob",
        "ts": "2026-03-01T10:00:00Z",
        "type": "message",
        "text": "I'm a huge fan of jazz",
        "context": {"speaker": "user"},
    },
]
# A record that breaks the contract lands in the dead-letter with alice's id.
BROKEN = '{"event_id": "a9", "user_id": "alice", "ts": "yesterday", "type": "view"}'


@pytest.fixture(scope="module")
def signals_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signals") / "signals.jsonl"
    lines = [json.dumps(signal) for signal in SIGNALS]
    path.write_text("\n".join([*lines, lines[0], BROKEN]) + "\n")  # a duplicate too
    return path


@pytest.fixture(scope="module")
def models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export kept in pytest's cache (as in test_embed): no export per home."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("engram-models")) if cache else tmp_path_factory.mktemp("models")


@pytest.fixture
def home(tmp_path: Path, models_dir: Path, milvus_uri: str, redis_url: str) -> Iterator[Settings]:
    """A fresh ENGRAM_HOME on the session's Milvus and Redis (memories' version numbers live in
    Redis: without it the ingest would start, and leave, the home's own), collection emptied."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(models_dir, target_is_directory=True)
    client = MilvusClient(uri=milvus_uri)
    client.drop_collection(DEFAULT_COLLECTION)
    yield Settings(engram_home=tmp_path / "home", milvus_uri=milvus_uri, redis_url=redis_url)
    client.drop_collection(DEFAULT_COLLECTION)
    client.close()


def rows_of(milvus_uri: str, user_id: str) -> list[str]:
    client = MilvusClient(uri=milvus_uri)
    try:
        rows = client.query(
            DEFAULT_COLLECTION,
            filter=f"user_id == {milvus_literal(user_id)}",
            output_fields=["text"],
            consistency_level="Strong",
        )
        return [row["text"] for row in rows]
    finally:
        client.close()


def test_ingest_remembers_text_signals_and_a_replay_adds_nothing(
    home: Settings, signals_file: Path, milvus_uri: str
) -> None:
    first = run_ingest(home, signals_file, memories=True)
    assert first.memories["signals"] == 7  # text signals, once each: no view, no duplicate
    assert first.memories["superseded"] == 1  # Denver -> Seattle
    assert "Wants to buy a tent" in rows_of(milvus_uri, "alice")
    assert "You should move to Paris!" not in rows_of(milvus_uri, "alice")
    again = run_ingest(home, signals_file, memories=True)
    replay: dict[str, Any] = again.memories
    assert again.new == 0
    assert replay["known"] == replay["extracted"] > 0
    assert replay["written"] == 0


def test_without_memories_ingest_needs_no_milvus(tmp_path: Path, signals_file: Path) -> None:
    settings = Settings(
        engram_home=tmp_path / "home", milvus_uri="http://127.0.0.1:9", redis_url=None
    )
    summary = run_ingest(settings, signals_file)
    assert summary.memories == {} and summary.new == len(SIGNALS)


@pytest.fixture
def cli(home: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CLI runner whose settings are `home`'s, with the session's Redis."""
    monkeypatch.setenv("ENGRAM_HOME", str(home.engram_home))
    monkeypatch.setenv("MILVUS_URI", home.milvus_uri or "")
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_search_list_batch_and_forget(
    cli: CliRunner,
    home: Settings,
    signals_file: Path,
    milvus_uri: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    invoke(cli, "ingest", str(signals_file), "--json")

    found = json.loads(
        invoke(cli, "memories", "search", "alice", "where does the user live", "--json")
    )
    assert found["memories"][0]["text"] == "Moved to Seattle"
    assert found["memories"][0]["source_event_ids"] == ["a3"]
    earlier = json.loads(
        invoke(
            cli,
            "memories",
            "search",
            "alice",
            "where does the user live",
            "--k",
            "3",
            "--as-of",
            "2026-04-01T00:00:00Z",
            "--json",
        )
    )
    assert "Lives in Denver" in [m["text"] for m in earlier["memories"]]
    assert len(earlier["memories"]) <= 3

    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"id": "q1", "user_id": "bob", "query": "music taste", "k": 1}\n'
        '{"user_id": "alice", "query": "diet", "k": 2}\n'
    )
    answers = [
        json.loads(line)
        for line in invoke(cli, "memories", "search", "--queries", str(queries)).splitlines()
    ]
    assert [a.get("id") for a in answers] == ["q1", None]
    assert [m["text"] for m in answers[0]["memories"]] == ["Likes jazz"]
    assert answers[1]["user_id"] == "alice" and len(answers[1]["memories"]) == 2

    listed = json.loads(invoke(cli, "memories", "list", "alice", "--json"))["memories"]
    sample = json.loads(invoke(cli, "memories", "list", "--sample", "--json"))
    assert sample["user_id"] == "alice"  # wrote the most
    assert [m["text"] for m in sample["memories"]] == [m["text"] for m in listed]
    history = json.loads(invoke(cli, "memories", "list", "alice", "--history", "--json"))[
        "memories"
    ]
    assert "Lives in Denver" not in [m["text"] for m in listed]
    assert "Lives in Denver" in [m["text"] for m in history]

    project_key = redis_key("engram", ["user_id"], ["alice"])
    online = redis.Redis.from_url(redis_url)
    online.hset(project_key, "f", "1")  # type: ignore[arg-type]  # an online feature row
    removed = json.loads(invoke(cli, "forget", "alice"))
    assert removed["user_id"] == "alice"
    assert removed["memories"] == len(history)
    assert removed["events"] == len([s for s in SIGNALS if s["user_id"] == "alice"])
    assert removed["dead_letter"] == 1 and removed["online"] == 1
    # Nothing of alice is left anywhere; bob is untouched.
    assert rows_of(milvus_uri, "alice") == []
    con = duck.connect(home)
    assert event_store.scan(con, home).filter("user_id = 'alice'").aggregate(
        "count(*)"
    ).fetchall() == [(0,)]
    assert dead_letter.read(home).to_pylist() == []
    features = pq.read_table(home.offline_dir / "features" / "user_features.parquet")
    assert "alice" not in features.column("user_id").to_pylist()
    assert not online.exists(project_key)
    assert rows_of(milvus_uri, "bob") != []


def test_cli_ingest_without_text_starts_no_milvus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memories are on by default; a source with no text signal needs neither Milvus nor a model."""
    views = tmp_path / "views.jsonl"
    views.write_text(
        "\n".join(
            json.dumps(signal) for signal in SIGNALS if signal["type"] not in TEXT_SIGNAL_TYPES
        )
        + "\n"
    )
    monkeypatch.setenv("ENGRAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MILVUS_URI", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["ingest", str(views), "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["accepted"] > 0 and summary["memories"]["signals"] == 0
    assert not (tmp_path / "home" / "services" / "milvus").exists()


def test_cli_refuses_an_injected_user_id(cli: CliRunner) -> None:
    result = cli.invoke(main, ["memories", "search", 'x" || user_id != "x', "city", "--json"])
    assert result.exit_code == 2 and "user_id" in result.output
    result = cli.invoke(main, ["forget", 'x" || user_id != "x'])
    assert result.exit_code == 2
