"""No email, phone or card number from a signal's text reaches Redis: not the stream, not its
dead-letter stream, not the outbox, not the AOF (its own redis-server, to read its files)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from core.settings import Settings, get_settings
from core.stores import local_redis
from pipelines import dead_letter
from pipelines.stream.consumer import Consumer, ConsumerConfig
from pipelines.stream.process import open_context
from pipelines.stream.producer import STREAM
from tests.pipelines.stream.conftest import StreamHome

SECRETS = ("zed.quux.4471@example.org", "+44 20 7946 0958", "4111 1111 1111 1111")
TEXT = f"write to {SECRETS[0]} or call {SECRETS[1]}; my card is {SECRETS[2]}"


def aof(client: redis.Redis) -> bytes:
    """Every AOF file of the server, as written so far."""
    directory = (
        Path(client.config_get("dir")["dir"]) / client.config_get("appenddirname")["appenddirname"]
    )
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


def everything(client: redis.Redis) -> bytes:
    """Every stream's entries in the database."""
    found = b""
    for key in client.scan_iter(_type="STREAM"):
        found += b"".join(v for _, fields in client.xrange(key) for v in fields.values())
    return found


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    url = local_redis.ensure_redis(tmp_path / "redis")
    client = redis.Redis.from_url(url)
    yield client
    client.close()
    local_redis.stop_redis(tmp_path / "redis")


class Poisoned:
    """An injected fault: remembering the card holder's message fails, so the entry ends up in
    the dead-letter stream."""

    def remember(self, signals: Sequence[Any]) -> dict[str, int]:
        raise RuntimeError("cannot remember")

    def forget_user(self, user_id: str) -> int:
        return 0


def test_produce_and_the_consumer_keep_only_redacted_text(
    stream_home: StreamHome, own_redis: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = own_redis.get_connection_kwargs()
    redis_url = f"redis://{url['host']}:{url['port']}/0"
    settings = Settings(engram_home=tmp_path / "home", redis_url=redis_url, milvus_uri=None)
    lines = tmp_path / "signals.jsonl"
    records = [
        {"event_id": "p1", "user_id": "u1", "ts": 1_790_000_000, "type": "message", "text": TEXT},
        {"event_id": "p2", "user_id": "u1", "ts": 1_790_000_001, "type": "view", "item_id": "i1"},
        {"event_id": "p3", "user_id": "u1", "ts": "yesterday", "type": "message", "text": TEXT},
    ]
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("ENGRAM_HOME", str(settings.engram_home))
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        from engram.cli import main

        result = CliRunner().invoke(main, ["produce", str(lines)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"stream": STREAM, "appended": 2, "rejected": 1}
    [kept] = dead_letter.read(settings).to_pylist()
    assert kept["source"] == "produce" and kept["position"] == 2
    assert not any(secret in kept["raw"] for secret in SECRETS)

    ctx = open_context(settings, own_redis, stream_home.layout, memory=Poisoned())
    config = ConsumerConfig(consumer="c", block_ms=10, max_attempts=1, claim_idle_ms=1)
    consumer = Consumer(ctx, config)
    consumer.run(until_idle=True)
    consumer.close()
    [(_, dead)] = own_redis.xrange(config.dead_stream)
    assert (
        json.loads(dead[b"signal"])["text"] == "write to [EMAIL] or call [PHONE]; my card is [CARD]"
    )
    streams = everything(own_redis)
    log = aof(own_redis)
    assert b"[EMAIL]" in streams and b"[EMAIL]" in log  # the records are there, redacted
    for secret in SECRETS:
        assert secret.encode() not in streams
        assert secret.encode() not in log
