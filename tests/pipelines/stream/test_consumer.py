"""The consumer group loop: acknowledgement, claiming, dead letters, trimming and rejections."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from core.errors import ServiceUnavailableError
from pipelines import dead_letter
from pipelines.normalize import normalize_records
from pipelines.stream.consumer import Consumer, ConsumerConfig
from pipelines.stream.metrics import group_lag
from pipelines.stream.process import StreamContext, open_context
from pipelines.stream.producer import produce, safe_trim_id, trim_processed
from tests.pipelines.stream.conftest import StreamHome

STREAM = "test:signals"


def signal(n: int, user: str = "s-user", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"s-{n}",
        "user_id": user,
        "ts": 1_790_000_000 + n,
        "type": "view",
        "item_id": f"s-item-{n % 3}",
        **extra,
    }


class Poisoned:
    """An injected fault: the memory hand-off fails for one event, as a bug would."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id

    def remember(self, signals: Sequence[Any]) -> dict[str, int]:
        if any(s.event_id == self.event_id for s in signals):
            raise RuntimeError(f"cannot remember {self.event_id}")
        return {}


def context(home: StreamHome, client: redis.Redis, memory: Any = None) -> StreamContext:
    return open_context(home.settings, client, home.layout, memory=memory)


def config(name: str, **changes: Any) -> ConsumerConfig:
    # The offline drain would write into the shared home: test_outbox.py and test_kill.py drain
    # into homes of their own.
    base: dict[str, Any] = {
        "stream": STREAM,
        "consumer": name,
        "batch_size": 50,
        "block_ms": 10,
        "offline": False,
    }
    return ConsumerConfig(**{**base, **changes})


def events_of(client: redis.Redis, user: str) -> int:
    return int(client.hget(f"engram:{{stream}}:u:{user}", "n") or 0)


def test_entries_are_processed_then_acknowledged(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    produce(stream_client, [signal(n) for n in range(120)], stream=STREAM)
    consumer = Consumer(context(stream_home, stream_client), config("a"))
    consumer.run(until_idle=True)
    assert events_of(stream_client, "s-user") == 120
    assert stream_client.xpending(STREAM, consumer.config.group)["pending"] == 0
    registry = consumer.metrics.registry
    assert registry.get_sample_value("engram_stream_freshness_seconds_count") == 120
    assert registry.get_sample_value("engram_stream_entries_total", {"outcome": "processed"}) == 120


def test_a_dead_consumers_entries_are_claimed_and_counted_once(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    produce(stream_client, [signal(n) for n in range(30)], stream=STREAM)
    dead = Consumer(context(stream_home, stream_client), config("dead"))
    dead.ensure_group()
    # "dead" reads 30 entries and applies them, then dies before acknowledging.
    entries, _ = dead._read()
    dead._process(entries)
    assert stream_client.xpending(STREAM, dead.config.group)["pending"] == 30
    live = Consumer(context(stream_home, stream_client), config("live", claim_idle_ms=1))
    live._own_pending = False
    live.run(until_idle=True)
    assert events_of(stream_client, "s-user") == 30  # not 60
    assert stream_client.xpending(STREAM, live.config.group)["pending"] == 0


def test_a_record_that_keeps_failing_goes_to_the_dead_letter_stream(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    produce(stream_client, [signal(n, type="message", text="hi") for n in range(10)], stream=STREAM)
    ctx = context(stream_home, stream_client, memory=Poisoned("s-4"))
    consumer = Consumer(ctx, config("c", claim_idle_ms=1, claim_every_s=0, max_attempts=3))
    consumer.run(until_idle=True)
    dead = stream_client.xrange(consumer.config.dead_stream)
    assert len(dead) == 1
    fields = dead[0][1]
    assert json.loads(fields[b"signal"])["event_id"] == "s-4"
    assert fields[b"reason"] == b"RuntimeError: cannot remember s-4"
    assert int(fields[b"attempts"]) == 4
    assert events_of(stream_client, "s-user") == 10  # state was applied before the hand-off
    assert stream_client.xpending(STREAM, consumer.config.group)["pending"] == 0


def test_rejections_are_stored_once_however_often_delivered(
    stream_home: StreamHome, stream_client: redis.Redis, tmp_path: Any
) -> None:
    settings = stream_home.settings.model_copy(update={"engram_home": tmp_path / "home"})
    records = [signal(1), '{"event_id": "bad", "user_id": "s-user"}', "not json"]
    produce(stream_client, records, stream=STREAM)
    ctx = open_context(settings, stream_client, stream_home.layout)
    consumer = Consumer(ctx, config("r"))
    consumer.ensure_group()
    entries, _ = consumer._read()
    consumer._process(entries)  # killed before the acknowledgement: delivered again
    consumer._own_pending = True
    consumer.run(until_idle=True)
    stored = dead_letter.read(settings)
    assert sorted(stored.column("field").to_pylist()) == ["$", "ts"]
    assert stored.column("source").to_pylist() == ["stream", "stream"]
    assert int(stream_client.hget("engram:{stream}:totals", "rejected")) == 2


def test_trimming_never_removes_what_a_group_still_needs(stream_client: redis.Redis) -> None:
    ids = produce(stream_client, [signal(n) for n in range(100)], stream=STREAM)
    assert safe_trim_id(stream_client, STREAM) is None  # no group: nothing is known processed
    stream_client.xgroup_create(STREAM, "g", id="0")
    read = stream_client.xreadgroup("g", "c", {STREAM: ">"}, count=60)
    delivered = [i.decode() for i, _ in read[0][1]]
    stream_client.xack(STREAM, "g", *delivered[:20], *delivered[30:])  # 20-29 stay pending
    assert safe_trim_id(stream_client, STREAM) == ids[20]
    trim_processed(stream_client, STREAM)
    left = [i.decode() for i, _ in stream_client.xrange(STREAM)]
    assert set(ids[20:]) <= set(left)  # pending and undelivered entries all kept
    stream_client.xack(STREAM, "g", *delivered[20:30])
    assert safe_trim_id(stream_client, STREAM) == _next(ids[59])


def test_a_full_stream_refuses_records_instead_of_dropping_any(
    stream_client: redis.Redis,
) -> None:
    produce(stream_client, [signal(n) for n in range(10)], stream=STREAM, max_len=10)
    stream_client.xgroup_create(STREAM, "g", id="0")
    with pytest.raises(ServiceUnavailableError, match="unprocessed"):
        produce(stream_client, [signal(11)], stream=STREAM, max_len=10)
    read = stream_client.xreadgroup("g", "c", {STREAM: ">"}, count=10)
    stream_client.xack(STREAM, "g", *[i for i, _ in read[0][1]])
    assert produce(stream_client, [signal(11)], stream=STREAM, max_len=10)  # trimmed, room now
    assert stream_client.xlen(STREAM) <= 10


def _next(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def test_forgetting_a_user_removes_their_stream_state(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    ctx = context(stream_home, stream_client)
    from pipelines.stream.process import process_batch

    process_batch(ctx, [signal(n) for n in range(5)], keep_rejected=False)
    assert events_of(stream_client, "s-user") == 5
    # u, ue, ui (one session, no catalog items) and the user sets of s-item-0, 1, 2.
    assert ctx.state.forget_user("s-user") == 6
    assert stream_client.keys("engram:{stream}:u*:s-user") == []
    assert not stream_client.sismember("engram:{stream}:iu:s-item-0", "s-user")
    again = process_batch(ctx, [signal(n) for n in range(5)], keep_rejected=False)
    assert again.new == 0 and events_of(stream_client, "s-user") == 0  # not brought back


def test_engram_produce_appends_each_line_normalized_and_keeps_rejections(
    stream_home: StreamHome,
    stream_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from click.testing import CliRunner

    from core.settings import get_settings
    from engram.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("ENGRAM_HOME", str(home))
    monkeypatch.setenv("REDIS_URL", stream_home.stream_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["produce", str(stream_home.paths.signals)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = stream_home.paths.signals.read_bytes().split(b"\n")
    records = [line for line in lines if line.strip()]
    truth = normalize_records(records, source="produce", ingested_at=datetime.now(UTC))
    summary = json.loads(result.output)
    assert summary["appended"] == truth.accepted.num_rows > 0
    assert summary["rejected"] == truth.rejected.num_rows > 0
    sent = [json.loads(f[b"signal"]) for _, f in stream_client.xrange("engram:{signals}")]
    assert [r["event_id"] for r in sent] == truth.accepted.column("event_id").to_pylist()
    assert all(r["source"] == "produce" and r["ts"].endswith("Z") for r in sent)
    stored = dead_letter.read(stream_home.settings.model_copy(update={"engram_home": home}))
    assert set(stored.column("source").to_pylist()) == {"produce"}
    # Positions are the file's line numbers.
    numbers = [number for number, line in enumerate(lines) if line.strip()]
    expected = sorted(numbers[p] for p in truth.rejected["position"].to_pylist())
    assert sorted(stored["position"].to_pylist()) == expected


def test_until_idle_ends_when_a_forget_deleted_the_newest_entry(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    produce(stream_client, [signal(n) for n in range(3)], stream=STREAM)
    consumer = Consumer(context(stream_home, stream_client), config("a"))
    consumer.run(until_idle=True)
    _, gone = produce(stream_client, [signal(3), signal(4, user="s-gone")], stream=STREAM)
    stream_client.xdel(STREAM, gone)  # a forget, before the entry was delivered
    assert group_lag(stream_client, STREAM, consumer.config.group) == {"lag": None, "pending": 0}
    runner = threading.Thread(target=consumer.run, kwargs={"until_idle": True})
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "--until-idle did not end"
    info = stream_client.xinfo_groups(STREAM)[0]
    assert info["lag"] is None  # what Redis says: it cannot count past a deleted entry
    assert group_lag(stream_client, STREAM, consumer.config.group) == {"lag": 0, "pending": 0}
    assert events_of(stream_client, "s-user") == 4
