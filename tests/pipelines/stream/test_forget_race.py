"""A forget racing a batch in hand: nothing sent before it comes back, nothing sent after is lost.

Real Redis, Milvus and the memory service. Only the timing is injected: a consumer holds its
batch between preparing and committing it, or inside the commit just before its first write,
while the forget runs (tombstone first, then the deletes: `mark_forgotten`, then
`forget_marked`; or `forget_everywhere`, which does both).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import redis
from pymilvus import MilvusClient

from core.settings import Settings
from core.stores.online.layout import redis_key
from forget.audit import audit
from forget.everywhere import forget_everywhere, forget_marked
from memory.service import MemoryService, build_memory_service
from pipelines import dead_letter, duck, event_store
from pipelines.stream import outbox
from pipelines.stream.consumer import Consumer, ConsumerConfig, StepResult
from pipelines.stream.process import StreamContext, open_context, process_batch
from pipelines.stream.producer import produce
from pipelines.stream.state import StateEvent, WindowState
from pipelines.stream.tombstones import Tombstone, mark_forgotten
from tests.embedding_models import link_embedding_models
from tests.pipelines.stream.conftest import StreamHome

GONE, KEPT = "fr-gone", "fr-kept"
SECRET = "quokkaberries"  # only the forgotten user ever writes this


def signal(n: int, user: str, text: str | None = None) -> dict[str, Any]:
    # Ids that do not hold the user's: the audit below looks for the user id anywhere.
    record: dict[str, Any] = {
        "event_id": f"ev-{n}",
        "user_id": user,
        "ts": f"2026-11-02T10:{n:02d}:00Z",
    }
    if text is None:
        return {**record, "type": "view", "item_id": f"item-{n % 2}"}
    return {
        **record,
        "type": "message",
        "text": text,
        "context": {"speaker": "user", "session_id": f"c-{user}"},
    }


BEFORE = [
    signal(1, GONE),
    signal(2, GONE, f"I am allergic to {SECRET}"),
    signal(3, KEPT),
    signal(4, KEPT, "I live in Porto"),
]


class Gate:
    """Injected timing: the first pass through `wait` blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def wait(self) -> None:
        if not self.opened.is_set():
            self.reached.set()
            assert self.opened.wait(60)


class GatedState(WindowState):
    """The window state, held by the gate just before the batch's first state write."""

    def __init__(self, client: redis.Redis, gap: int, gate: Gate) -> None:
        super().__init__(client, session_gap_micros=gap)
        self.gate = gate

    def apply(self, events: Sequence[StateEvent], *args: Any, **kwargs: Any) -> list[bool]:
        self.gate.wait()
        return super().apply(events, *args, **kwargs)


class GatedConsumer(Consumer):
    """A consumer held by the gate between preparing a batch and committing it."""

    gate: Gate

    def _commit(self, batch: Any) -> Any:
        batch.prepared.result()  # prepared...
        self.gate.wait()  # ...and held
        return super()._commit(batch)


@dataclass
class Race:
    settings: Settings
    client: redis.Redis
    memory: MemoryService
    ctx: StreamContext
    collection: str

    def forget(self, user: str) -> None:
        """The forget: tombstone first, then every store."""
        forget_everywhere(self.settings, user, collection=self.collection)

    def delete(self, user: str, tombstone: Tombstone) -> None:
        """The forget's second half, after its tombstone."""
        forget_marked(self.settings, user, tombstone, collection=self.collection)

    def hold_state(self, gate: Gate) -> None:
        """Hold the batch just before its first state write."""
        gap = timedelta(minutes=self.settings.session_gap_minutes) // timedelta(microseconds=1)
        self.ctx.state = GatedState(self.client, gap, gate)

    def drain(self) -> None:
        outbox.drain_all(self.client, self.settings, duck.connect(self.settings))


@pytest.fixture
def race(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    milvus_uri: str,
    stream_home: StreamHome,
    stream_client: redis.Redis,
) -> Iterator[Race]:
    link_embedding_models(request, tmp_path / "home")
    settings = stream_home.settings.model_copy(
        update={"engram_home": tmp_path / "home", "milvus_uri": milvus_uri}
    )
    collection = f"t_race_{uuid.uuid4().hex[:8]}"
    memory = build_memory_service(settings, collection=collection)
    ctx = open_context(settings, stream_client, stream_home.layout, memory=memory)
    yield Race(settings, stream_client, memory, ctx, collection)
    memory.close()
    client = MilvusClient(uri=milvus_uri)
    client.drop_collection(collection)
    client.close()


def consumer(race: Race, gate: Gate, cls: type[Consumer] = Consumer) -> Consumer:
    config = ConsumerConfig(consumer="c", batch_size=100, block_ms=10, offline=False)
    runner = cls(race.ctx, config)
    if isinstance(runner, GatedConsumer):
        runner.gate = gate
    runner.ensure_group()
    return runner


def in_thread(step: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(step()))
    thread.start()
    return thread, out


def redis_text(client: redis.Redis) -> bytes:
    """Every key and value in the database, as bytes (streams, hashes, sets, sorted sets)."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            parts += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += list(client.zrange(key, 0, -1))
        elif kind == b"stream":
            parts += [v for _, fields in client.xrange(key) for v in fields.values()]
    return b"\n".join(parts)


def assert_no_trace(race: Race, user: str) -> None:
    report = audit(race.settings, user, SECRET, collections=[race.collection])
    assert report.passed, report.lines()
    everything = redis_text(race.client)
    assert user.encode() not in everything
    assert SECRET.encode() not in everything
    online = redis_key(race.ctx.users.project, ["user_id"], [user])
    assert not race.client.exists(online)
    assert race.memory.store.count(user) == 0
    stored = event_store.scan(duck.connect(race.settings), race.settings).to_arrow_table()
    assert user not in stored.column("user_id").to_pylist()
    assert user not in dead_letter.read(race.settings).column("user_id").to_pylist()


def assert_applied(race: Race, user: str, events: int, memory: str) -> None:
    assert int(race.client.hget(f"engram:{{stream}}:u:{user}", "n") or 0) == events
    online = redis_key(race.ctx.users.project, ["user_id"], [user])
    assert race.client.exists(online)
    assert any(memory in m.text for m in race.memory.list(user))
    stored = event_store.scan(duck.connect(race.settings), race.settings).to_arrow_table()
    mine = stored.filter(pc.equal(stored.column("user_id"), user))
    assert mine.num_rows == events


def test_a_forget_during_the_writes_is_undone_by_the_batch(
    race: Race, stream_client: redis.Redis
) -> None:
    """The forget marks after the batch's first tombstone check and deletes before its writes:
    the batch's second check sees the tombstone and removes what it wrote."""
    gate = Gate()
    race.hold_state(gate)
    runner = consumer(race, gate)
    produce(stream_client, BEFORE)
    thread, out = in_thread(runner.step)
    assert gate.reached.wait(60)
    race.forget(GONE)  # the batch has read no tombstone, and has written nothing yet
    gate.opened.set()
    thread.join(60)
    step: StepResult = out[0]
    assert step.acked == 4 and step.batch is not None and step.batch.forgotten == 2
    race.drain()
    assert_no_trace(race, GONE)
    assert_applied(race, KEPT, events=2, memory="Porto")


def test_a_forget_while_a_batch_is_in_hand_keeps_what_was_sent_after_it(
    race: Race, stream_client: redis.Redis
) -> None:
    """The forget marks between signals of one batch and deletes while the batch is held
    between prepare and commit: the signals before it are dropped, the one after it stays."""
    gate = Gate()
    runner = consumer(race, gate, GatedConsumer)
    produce(stream_client, BEFORE)
    tombstone = mark_forgotten(stream_client, GONE)
    after = [signal(5, GONE, "I moved to Lisbon"), signal(6, KEPT)]
    produce(stream_client, after)
    thread, out = in_thread(runner.step)
    assert gate.reached.wait(60)
    race.delete(GONE, tombstone)  # the forget, still deleting while the batch is in hand
    gate.opened.set()
    thread.join(60)
    assert out[0].acked == 6 and out[0].batch.forgotten == 2
    race.drain()
    assert_applied(race, GONE, events=1, memory="Lisbon")
    assert SECRET.encode() not in redis_text(stream_client)
    assert not any(SECRET in m.text for m in race.memory.list(GONE))
    assert_applied(race, KEPT, events=3, memory="Porto")


def test_a_signal_without_a_stream_id_survives_the_undoing(
    race: Race, stream_client: redis.Redis
) -> None:
    """A record given without a stream entry id (a direct call) is not covered by any
    tombstone: when the batch undoes a forgotten user's writes, it applies that one again."""
    gate = Gate()
    race.hold_state(gate)
    sent = produce(stream_client, BEFORE[:2])
    records = [*BEFORE[:2], signal(7, GONE, "I moved to Lisbon")]
    thread, out = in_thread(
        lambda: process_batch(race.ctx, records, entry_ids=[*sent, None], keep_rejected=False)
    )
    assert gate.reached.wait(60)
    race.forget(GONE)
    gate.opened.set()
    thread.join(60)
    assert out[0].forgotten == 2 and out[0].new == 1
    race.drain()
    assert_applied(race, GONE, events=1, memory="Lisbon")
    assert not any(SECRET in m.text for m in race.memory.list(GONE))


def test_a_redelivered_batch_of_a_forgotten_user_brings_nothing_back(
    race: Race, stream_client: redis.Redis
) -> None:
    """Entries delivered, not acknowledged, when the forget marks: the next delivery (the
    consumer restarted) drops them, however late."""
    runner = consumer(race, Gate())
    produce(stream_client, BEFORE)
    runner._read()
    tombstone = mark_forgotten(stream_client, GONE)
    runner._own_pending = True
    step = runner.step()
    assert step.batch is not None and step.batch.forgotten == 2 and step.acked == 4
    assert not stream_client.exists(f"engram:{{stream}}:u:{GONE}")  # nothing applied for them
    race.delete(GONE, tombstone)
    race.drain()
    assert_no_trace(race, GONE)
    assert_applied(race, KEPT, events=2, memory="Porto")
    registry = runner.metrics.registry
    assert registry.get_sample_value("engram_stream_entries_total", {"outcome": "forgotten"}) == 2
