"""The outbox takes what the stream applied to the offline event store, once."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from core.settings import Settings
from pipelines import duck, event_store
from pipelines.batch import run_ingest
from pipelines.stream import outbox
from pipelines.stream.process import StreamContext, open_context, process_batch
from pipelines.stream.producer import produce
from pipelines.stream.tombstones import mark_forgotten
from tests.pipelines.stream.conftest import StreamHome

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def signal(n: int, user: str = "ob-user") -> dict[str, Any]:
    return {
        "event_id": f"ob-{n}",
        "user_id": user,
        "ts": 1_790_000_000 + n,
        "type": "view",
        "item_id": f"ob-item-{n % 3}",
    }


@pytest.fixture
def settings(stream_home: StreamHome, tmp_path: Path) -> Settings:
    return stream_home.settings.model_copy(update={"engram_home": tmp_path / "home"})


@pytest.fixture
def ctx(settings: Settings, stream_home: StreamHome, stream_client: redis.Redis) -> StreamContext:
    return open_context(settings, stream_client, stream_home.layout)


def streamed(ctx: StreamContext, records: list[dict[str, Any]]) -> list[str]:
    """Append records and apply them as the consumer does (with their entry ids)."""
    ids = produce(ctx.client, records)
    process_batch(ctx, records, entry_ids=ids)
    return ids


def stored(settings: Settings) -> Counter[str]:
    table = event_store.scan(duck.connect(settings), settings).to_arrow_table()
    return Counter(table.column("event_id").to_pylist())


def waiting(client: redis.Redis) -> list[str]:
    """The event ids of the records the outbox holds, in order."""
    return [
        json.loads(record)["event_id"]
        for _, fields in client.xrange(outbox.OUTBOX_KEY)
        for record in fields[b"signals"].split(b"\n")
    ]


def drain(ctx: StreamContext, **options: Any) -> outbox.DrainResult:
    result = outbox.drain(ctx.client, ctx.settings, duck.connect(ctx.settings), **options)
    assert result is not None
    return result


def test_applied_events_reach_the_offline_store_once(
    ctx: StreamContext, settings: Settings, tmp_path: Path
) -> None:
    records = [signal(n) for n in range(30)]
    ids = streamed(ctx, records)
    process_batch(ctx, records, entry_ids=ids)  # redelivered: counted nothing, added nothing
    assert waiting(ctx.client) == [f"ob-{n}" for n in range(30)]  # one entry per batch
    assert ctx.client.xlen(outbox.OUTBOX_KEY) == 1
    result = drain(ctx)
    assert (result.read, result.stored, result.duplicates) == (30, 30, 0)
    assert ctx.client.xlen(outbox.OUTBOX_KEY) == 0
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(30)})
    [part] = event_store.stream_parts(settings)
    assert part.path.name == f"part-stream-{part.first}_{part.last}.parquet"
    assert drain(ctx).read == 0
    # The batch path sees the stream's events: ingesting the same records adds nothing.
    lines = tmp_path / "same.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = run_ingest(settings, lines, as_of=AS_OF)
    assert (summary.accepted, summary.new) == (30, 0)
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(30)})


class TrimFails:
    """An injected fault: the drain dies between writing its part and trimming the outbox."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def xtrim(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("killed before the trim")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_drain_killed_before_its_trim_writes_nothing_twice(
    ctx: StreamContext, settings: Settings
) -> None:
    streamed(ctx, [signal(n) for n in range(10)])
    with pytest.raises(redis.ConnectionError):
        outbox.drain(TrimFails(ctx.client), settings, duck.connect(settings))  # type: ignore[arg-type]
    assert len(waiting(ctx.client)) == 10  # still there
    assert not ctx.client.exists(outbox.OUTBOX_KEY + ":lock")  # released on the way out
    streamed(ctx, [signal(n) for n in range(10, 15)])
    again = drain(ctx)
    assert (again.read, again.stored) == (5, 5)  # only what came after the watermark
    assert ctx.client.xlen(outbox.OUTBOX_KEY) == 0
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(15)})


def test_events_the_store_holds_already_are_not_stored_again(
    ctx: StreamContext, settings: Settings, tmp_path: Path
) -> None:
    records = [signal(n) for n in range(20)]
    lines = tmp_path / "first.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in records[:12]))
    run_ingest(settings, lines, as_of=AS_OF)  # the batch path first, then the same via the API
    streamed(ctx, records)
    result = drain(ctx)
    assert (result.stored, result.duplicates) == (8, 12)
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(20)})


def test_the_drain_drops_what_a_forget_covers_and_keeps_what_came_after(
    ctx: StreamContext, settings: Settings
) -> None:
    streamed(ctx, [signal(0, "ob-gone"), signal(1, "ob-kept")])
    mark_forgotten(ctx.client, "ob-gone")
    streamed(ctx, [signal(2, "ob-gone")])
    result = drain(ctx)
    assert (result.read, result.stored, result.forgotten) == (3, 2, 1)
    assert stored(settings) == Counter({"ob-1": 1, "ob-2": 1})


def test_forget_removes_outbox_entries_and_stored_events_under_the_lock(
    ctx: StreamContext, settings: Settings
) -> None:
    streamed(ctx, [signal(n, "ob-gone") for n in range(3)] + [signal(3)])
    drain(ctx)
    streamed(ctx, [signal(4, "ob-gone"), signal(6)])  # one outbox entry, two users
    mark_forgotten(ctx.client, "ob-gone")
    streamed(ctx, [signal(5, "ob-gone")])  # after the forget: kept
    lock = outbox.DrainLock(ctx.client)
    held = threading.Event()

    def drain_in_progress() -> None:
        with lock.held() as locked:
            assert locked
            held.set()
            time.sleep(0.5)

    holder = threading.Thread(target=drain_in_progress)
    holder.start()
    assert held.wait(10)
    began = time.monotonic()
    removed = outbox.forget_user(ctx.client, settings, "ob-gone")
    assert time.monotonic() - began >= 0.3  # waited for the drain in progress
    holder.join()
    assert removed == {"outbox": 1, "events": 3}
    assert waiting(ctx.client) == ["ob-5", "ob-6"]  # ob-6's entry rewritten without ob-4
    drain(ctx)
    assert stored(settings) == Counter({"ob-3": 1, "ob-5": 1, "ob-6": 1})


def test_one_drain_at_a_time(ctx: StreamContext, settings: Settings) -> None:
    streamed(ctx, [signal(0)])
    with outbox.DrainLock(ctx.client).held() as locked:
        assert locked
        assert outbox.drain(ctx.client, settings, duck.connect(settings)) is None
    assert drain(ctx).stored == 1


def test_small_parts_are_compacted_and_a_crash_leftover_is_never_read(
    ctx: StreamContext, settings: Settings
) -> None:
    for n in range(0, 12, 3):
        streamed(ctx, [signal(n + k) for k in range(3)])
        drain(ctx, compact_parts=99)
    parts = event_store.stream_parts(settings)
    assert len(parts) == 4
    leftover = parts[0].path.read_bytes()
    merged = drain(ctx, compact_parts=4).compacted
    assert merged == 3
    [part] = event_store.stream_parts(settings)
    assert (part.first, part.last) == (parts[0].first, parts[-1].last)
    # A compaction killed before it removed its inputs leaves one: contained, so not read.
    parts[0].path.write_bytes(leftover)
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(12)})
    assert event_store.remove_redundant(settings) == 1
    assert not parts[0].path.exists()


def test_the_consumer_drains_on_its_way_out(
    stream_home: StreamHome, settings: Settings, stream_client: redis.Redis
) -> None:
    from pipelines.stream.consumer import Consumer, ConsumerConfig

    # The catalog, so that the drained events are those the batch path would enrich.
    settings.offline_dir.mkdir(parents=True)
    shutil.copy(stream_home.settings.offline_dir / "catalog.parquet", settings.offline_dir)
    produce(stream_client, [signal(n) for n in range(40)])
    ctx = open_context(settings, stream_client, stream_home.layout)
    config = ConsumerConfig(consumer="c", batch_size=15, block_ms=10, drain_every_s=3600)
    runner = Consumer(ctx, config)
    runner.run(until_idle=True)
    runner.close()
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(40)})
    registry = runner.metrics.registry
    assert (
        registry.get_sample_value("engram_stream_offline_events_total", {"outcome": "stored"}) == 40
    )


def test_an_idle_consumer_drains_what_others_applied(
    stream_home: StreamHome, ctx: StreamContext, settings: Settings, stream_client: redis.Redis
) -> None:
    from pipelines.stream.consumer import Consumer, ConsumerConfig

    streamed(ctx, [signal(n) for n in range(5)])  # as the API's ?sync=true does: no consumer
    config = ConsumerConfig(consumer="c", block_ms=10, drain_every_s=0.2)
    runner = Consumer(open_context(settings, stream_client, stream_home.layout), config)
    runner.ensure_group()
    stream_client.xgroup_setid(config.stream, config.group, "$")  # nothing for it to read
    deadline = time.monotonic() + 30
    drained: list[bool] = []

    def stop() -> bool:
        if not stream_client.xlen(outbox.OUTBOX_KEY):
            drained.append(True)  # drained while running, not by the drain on the way out
        return bool(drained) or time.monotonic() > deadline

    runner.run(stop)
    runner.close()
    assert drained
    assert stored(settings) == Counter({f"ob-{n}": 1 for n in range(5)})
