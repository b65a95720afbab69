"""After DELETE /v1/users/{id} the forget audit finds nothing of the user anywhere, and neither
worker nor `engram rank` ranks for them from their old data: their answer is a stranger's.

One live stack: a small generated log plus the user's own signals (a batch ingest), a model
trained on it in the registry, features materialized; two apps on the same stores stand for two
workers; the user then sends signals with a distinctive text through the API.
"""

from __future__ import annotations

import json
import logging
import random
import string
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from flask.testing import FlaskClient
from pymilvus import MilvusClient

from core.settings import Settings, get_settings
from core.stores import feature_store
from engram.cli import main
from forget.audit import audit
from memory.embed import Embedder
from memory.store import DEFAULT_COLLECTION
from pipelines.batch import run_ingest
from pipelines.generate import GenerateConfig, write_dataset
from pipelines.materialize import materialize_incremental
from ranking import candidate_store
from ranking.fit import train_and_save
from tests.embedding_models import link_embedding_models
from tests.feature_home import AS_OF
from tests.serving.conftest import AppFactory, bearer

_TOKEN = "".join(random.choices(string.ascii_lowercase, k=10))
USER = f"fg_{_TOKEN}"
STRANGER = f"st_{_TOKEN}"
TEXT = f"quendor{_TOKEN}"  # the distinctive text: a made-up word
AT = "2026-11-02T01:00:00Z"  # ranking time, an hour after the features were materialized


def user_batch(items: list[str]) -> list[dict[str, Any]]:
    """The user's history in the batch log: item contacts, a message, a record rejected."""
    records: list[dict[str, Any]] = [
        {
            "event_id": f"b-{_TOKEN}-{n}",
            "user_id": USER,
            "ts": f"2026-10-{n + 5:02d}T10:00:00Z",
            "type": "purchase" if n % 3 == 0 else "view",
            "item_id": item,
        }
        for n, item in enumerate(items)
    ]
    records.append(
        {
            "event_id": f"b-{_TOKEN}-m",
            "user_id": USER,
            "ts": "2026-10-20T10:00:00Z",
            "type": "message",
            "text": f"My cat is called {TEXT}.",
            "context": {"speaker": "user"},
        }
    )
    records.append(
        {
            "event_id": f"b-{_TOKEN}-x",
            "user_id": USER,
            "ts": "2026-10-21T10:00:00Z",
            "type": "message",
            "text": f"{TEXT} again",
            "context": "not an object",
        }
    )
    return records


def api_signals(items: list[str]) -> list[dict[str, Any]]:
    """What the user sends later through the API: views, a message, a record rejected."""
    return [
        {
            "event_id": f"a-{_TOKEN}-1",
            "user_id": USER,
            "ts": "2026-11-01T20:00:00Z",
            "type": "view",
            "item_id": items[0],
        },
        {
            "event_id": f"a-{_TOKEN}-2",
            "user_id": USER,
            "ts": "2026-11-01T20:05:00Z",
            "type": "message",
            "text": f"I live in {TEXT.capitalize()} and {TEXT} is lovely.",
            "context": {"speaker": "user"},
        },
        {
            "event_id": f"a-{_TOKEN}-3",
            "user_id": USER,
            "ts": "2026-11-01T20:06:00Z",
            "type": "rate",
            "item_id": items[1],
            "value": 11,
            "text": TEXT,
        },
    ]


@pytest.fixture
def trained(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    milvus_uri: str,
    minilm: Embedder,
) -> Iterator[Settings]:
    """ENGRAM_HOME (the apps' own) with the log ingested, a model trained and features
    materialized; the Milvus collections it made are dropped afterwards."""
    home = tmp_path / "home"
    link_embedding_models(request, home)
    config = GenerateConfig(users=30, events_per_user=40, items=120, days=30, chat_user_share=0.2)
    paths = write_dataset(tmp_path / "data", config)
    items = [json.loads(line)["item_id"] for line in paths.catalog.read_text().splitlines()]
    signals = tmp_path / "signals.jsonl"  # outside ENGRAM_HOME: the input is not Engram's
    lines = [json.dumps(record) for record in user_batch(items[5:20])]
    signals.write_text(paths.signals.read_text() + "\n".join(lines) + "\n")
    settings = Settings(engram_home=home, redis_url=redis_url, milvus_uri=milvus_uri)
    run_ingest(settings, signals, catalog=paths.catalog, as_of=AS_OF)
    collection = f"items_{uuid.uuid4().hex[:8]}"
    milvus = MilvusClient(uri=milvus_uri)
    had_memories = milvus.has_collection(DEFAULT_COLLECTION)  # `engram rank` makes it
    train_and_save(settings, embedder=minilm, collection=collection)
    store = feature_store.open_store(settings, redis_url)
    feature_store.apply_repo(store, settings)
    with redis.Redis.from_url(redis_url) as client:
        materialize_incremental(store, client, AS_OF)
    yield settings
    for name in [collection] + ([] if had_memories else [DEFAULT_COLLECTION]):
        if milvus.has_collection(name):
            milvus.drop_collection(name)
    milvus.close()


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[Path]:
    """The apps' log records (logger `engram`, INFO) in a file, as a server's log would be."""
    path = tmp_path / "server.log"
    handler = logging.FileHandler(path)
    logger = logging.getLogger("engram")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield path
    logger.removeHandler(handler)
    handler.close()
    logger.setLevel(level)


def ranked(client: FlaskClient, user: str) -> dict[str, Any]:
    """POST /v1/rank at AT, without the user id (to compare two users' answers)."""
    body = {"user_id": user, "k": 10, "context": {"time": AT}}
    answer = client.post("/v1/rank", json=body, headers=bearer("read"))
    assert answer.status_code == 200 and answer.json is not None, answer.data
    return {name: value for name, value in answer.json.items() if name != "user_id"}


def ranked_by_cli(settings: Settings, user: str) -> list[dict[str, Any]]:
    """`engram rank USER --json`'s items, run again if the hour turned meanwhile (the hour of
    day is a feature, and the CLI ranks as of now)."""
    env = {
        "ENGRAM_HOME": str(settings.engram_home),
        "MILVUS_URI": settings.milvus_uri,
        "REDIS_URL": settings.redis_url,
    }
    while True:
        hour = datetime.now(UTC).hour
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(
                main, ["rank", user, "--json"], env=env, catch_exceptions=False
            )
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        if datetime.now(UTC).hour == hour:
            items: list[dict[str, Any]] = json.loads(result.output.splitlines()[-1])["items"]
            return items


def test_after_delete_the_audit_finds_nothing_and_no_one_ranks_from_the_old_data(
    trained: Settings, make_app: AppFactory, server_log: Path
) -> None:
    first, second = make_app(), make_app()  # two workers sharing the stores
    workers = [first.test_client(), second.test_client()]
    items = list(first.extensions["engram"].ranking.model.inputs.items[:2])  # type: ignore[union-attr]
    sent = workers[0].post(
        "/v1/signals?sync=true", json=api_signals(items), headers=bearer("write")
    )
    assert sent.status_code == 200 and sent.json is not None and sent.json["rejected"] == 1
    for worker in workers:  # both rank for the user from their history
        assert ranked(worker, USER) != ranked(worker, STRANGER)
    planted = audit(trained, USER, TEXT, logs=[server_log])
    found = {hit.place for hit in planted.hits}
    assert {"redis", "redis_aof", "milvus", "offline", "dead_letter", "registry"} <= found
    assert {hit.needle for hit in planted.hits if hit.place == "milvus"} == {"user_id", "text"}
    with redis.Redis.from_url(trained.redis_url) as client:  # kept when the workers loaded
        assert client.exists(candidate_store.user_key(USER))

    answer = workers[0].delete(f"/v1/users/{USER}", headers=bearer("admin"))

    assert answer.status_code == 200 and answer.json is not None, answer.data
    removed = answer.json
    assert removed["memories"] >= 1 and removed["events"] >= 15 and removed["dead_letter"] >= 2
    assert removed["model_versions"] == 1 and removed["model_interactions"] >= 15
    assert removed["candidates"] == 1
    # Each worker drops the user from what it loaded before answering for them.
    for worker in workers:
        assert ranked(worker, USER) == ranked(worker, STRANGER)
    assert "a forgotten user left the in-process Ranker" in server_log.read_text()
    # At its next refresh a worker loads the rewritten version, which never held the user.
    ranking = second.extensions["engram"].ranking
    ranking.refresh()
    assert ranking.model is not None and not ranking.model.knows(USER)  # type: ignore[attr-defined]
    assert ranked(workers[1], USER) == ranked(workers[1], STRANGER)
    # `engram rank` reads the rewritten registry.
    assert ranked_by_cli(trained, USER) == ranked_by_cli(trained, STRANGER)

    report = audit(trained, USER, TEXT, logs=[server_log])
    print("\n".join(report.lines()))
    assert not report.hits, report.lines()
    for place in (
        "redis",
        "redis_aof",
        "milvus",
        "offline",
        "dead_letter",
        "registry",
        "home",
        "logs",
    ):
        assert report.place(place).scanned > 0, place
