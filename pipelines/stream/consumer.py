"""The stream consumer: a consumer-group loop with at-least-once delivery and idempotent effects.

Each step reads a micro-batch (first the consumer's own pending entries after a restart, now
and then idle entries of other consumers claimed with XAUTOCLAIM, otherwise new entries with
XREADGROUP), runs it through `process_batch` with the entries' ids (so forget tombstones are
honoured and rejections stored once per entry), and acknowledges the entries only after every
effect is durable. A consumer killed at any instant leaves its entries pending: it re-reads them
when it comes back, or a live consumer claims them once idle, and the event_id dedup makes the
second run count nothing twice. After batches, a background thread drains the outbox of the
events applied into the offline event store (outbox.py).

An entry delivered more than `max_attempts` times (its batch kept failing, or kept killing its
consumer) is moved to the dead-letter stream with its last error, so one poison record cannot
stall the group. A failing batch is retried entry by entry, so only the poison one is held back.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from core.errors import ServiceUnavailableError
from pipelines.stream.metrics import StreamMetrics, group_lag
from pipelines.stream.outbox import DEFAULT_EVERY_S, DEFAULT_MAX_NEW, Drainer, DrainResult
from pipelines.stream.process import (
    BatchResult,
    PreparedBatch,
    StreamContext,
    commit_batch,
    prepare_batch,
    process_batch,
)
from pipelines.stream.producer import FIELD, STREAM, trim_processed

log = logging.getLogger("engram.stream")

GROUP = "engram-features"
Entry = tuple[str, dict[bytes, bytes] | None]
_TRANSIENT = (redis.ConnectionError, redis.TimeoutError, ServiceUnavailableError)


def default_consumer_name() -> str:
    """host-pid: unique among live consumers, so a restart is a new consumer."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumerConfig:
    """How the consumer reads, retries and trims."""

    stream: str = STREAM
    group: str = GROUP
    consumer: str = field(default_factory=default_consumer_name)
    batch_size: int = 1_000
    block_ms: int = 100
    max_attempts: int = 5
    claim_idle_ms: int = 30_000  # pending this long without an ack: its consumer is presumed dead
    claim_every_s: float = 5.0
    trim_every: int = 20  # batches between two trims of processed entries
    offline: bool = True  # drain the outbox into the offline event store
    drain_every_s: float = DEFAULT_EVERY_S
    drain_max_new: int = DEFAULT_MAX_NEW

    @property
    def dead_stream(self) -> str:
        """Where entries that failed `max_attempts` times go, with their reason."""
        return f"{self.stream}:dead"

    @property
    def errors_key(self) -> str:
        """Hash of the last error per pending entry id."""
        return f"{self.stream}:errors"


@dataclass
class StepResult:
    """What one step did."""

    entries: int = 0
    acked: int = 0
    dead: int = 0
    failed: int = 0
    batch: BatchResult | None = None


@dataclass
class _Batch:
    """Entries read together, their records, and their preparation (running or done)."""

    entries: list[Entry]
    redelivered: bool
    gone: list[str] = field(default_factory=list)  # ids whose entry was trimmed or deleted
    dead: int = 0
    ids: list[str] = field(default_factory=list)  # entries to process, in order
    records: list[bytes] = field(default_factory=list)
    prepared: Future[PreparedBatch] | None = None


class Consumer:
    """One consumer of the group; `run` loops until stopped, `step` does one batch."""

    def __init__(
        self, ctx: StreamContext, config: ConsumerConfig, metrics: StreamMetrics | None = None
    ) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.config = config
        self.metrics = metrics or StreamMetrics()
        self.drainer = (
            Drainer(
                ctx.client,
                ctx.settings,
                ctx.con,
                every_s=config.drain_every_s,
                max_new=config.drain_max_new,
                on_result=self._drained_offline,
            )
            if config.offline
            else None
        )
        self._own_pending = True  # after a (re)start, first finish what this name left pending
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._batches = 0
        # Normalizing the next batch runs here, on its own DuckDB cursor.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-prepare")
        self._prepare_con = ctx.con.cursor()

    def close(self) -> None:
        """Stop the preparation and drain threads."""
        self._pool.shutdown(wait=True)
        self._prepare_con.close()
        if self.drainer is not None:
            self.drainer.close()

    def ensure_group(self) -> None:
        """Create the group (from the stream's start) and the stream if they do not exist."""
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def run(self, stop: Callable[[], bool] = lambda: False, *, until_idle: bool = False) -> None:
        """Process batches until `stop()` is true (or, with `until_idle`, nothing is left).

        Two batches are in hand at a time: while Redis applies one, the next one is read and
        normalized in a worker thread (DuckDB and socket waits release the GIL).
        """
        self.ensure_group()
        backoff = 0.1
        ahead: _Batch | None = None
        while True:
            try:
                if stop():
                    if ahead is not None:  # read and being prepared: finish it before leaving
                        self._finish(ahead)
                    self._drain_all()
                    return
                batch = ahead or self._take(block=True)
                ahead = None
                if batch is None:
                    if until_idle and self._drained():
                        self._drain_all()
                        return
                    if self.drainer is not None:
                        self.drainer.applied(0)  # idle: drain what the last batches left
                    continue
                if not batch.redelivered and not stop():
                    ahead = self._take(block=False)
                self._finish(batch)
            except _TRANSIENT as e:
                log.warning("stream: %s; retrying in %.1f s", e, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._own_pending = True  # whatever was in hand is still pending: read it again
                ahead = None
                continue
            backoff = 0.1

    def _drained(self) -> bool:
        state = group_lag(self.client, self.config.stream, self.config.group)
        return state["lag"] == 0 and state["pending"] == 0

    def _drain_all(self) -> None:
        if self.drainer is not None:
            self.drainer.finish()

    def _drained_offline(self, result: DrainResult) -> None:
        self.metrics.offline.labels("stored").inc(result.stored)
        self.metrics.offline.labels("forgotten").inc(result.forgotten)
        self.metrics.offline.labels("duplicate").inc(result.duplicates)

    def step(self) -> StepResult:
        """Read one batch (own pending, claimed, or new), process it, acknowledge it."""
        batch = self._take(block=True)
        return StepResult() if batch is None else self._finish(batch)

    def _read(self, *, block: bool = True) -> tuple[list[Entry], bool]:
        c = self.config
        if self._own_pending:
            reply = self.client.xreadgroup(c.group, c.consumer, {c.stream: "0"}, count=c.batch_size)
            entries = _entries(reply)
            if entries:
                return entries, True
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            cursor, claimed, deleted = self._autoclaim()
            self._claim_cursor = cursor
            if cursor == "0-0":
                self._next_claim = time.monotonic() + c.claim_every_s
            if claimed or deleted:
                return claimed + [(d, None) for d in deleted], True
        reply = self.client.xreadgroup(
            c.group,
            c.consumer,
            {c.stream: ">"},
            count=c.batch_size,
            block=c.block_ms if block else None,
        )
        return _entries(reply), False

    def _autoclaim(self) -> tuple[str, list[Entry], list[str]]:
        c = self.config
        reply: Any = self.client.xautoclaim(
            c.stream,
            c.group,
            c.consumer,
            min_idle_time=c.claim_idle_ms,
            start_id=self._claim_cursor,
            count=c.batch_size,
        )
        cursor = _text(reply[0])
        claimed = [(_text(i), f) for i, f in reply[1]]
        deleted = [_text(i) for i in reply[2]] if len(reply) > 2 else []
        return cursor, claimed, deleted

    def _attempts(self, ids: Sequence[str]) -> dict[str, int]:
        c = self.config
        rows: Any = self.client.xpending_range(
            c.stream,
            c.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) * 4 + 100,
            consumername=c.consumer,
        )
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    def _take(self, *, block: bool) -> _Batch | None:
        """Read a batch, dead-letter its entries past max_attempts, start preparing the rest."""
        entries, redelivered = self._read(block=block)
        if not entries:
            return None
        c = self.config
        batch = _Batch(entries=entries, redelivered=redelivered)
        batch.gone = [i for i, fields in entries if fields is None]  # trimmed meanwhile
        live: list[Entry] = [(i, f) for i, f in entries if f is not None]
        if redelivered and live:
            attempts = self._attempts(sorted(i for i, _ in live))
            over = [(i, f) for i, f in live if attempts.get(i, 1) > c.max_attempts]
            if over:
                batch.dead = self._dead_letter(over, attempts)
                live = [(i, f) for i, f in live if attempts.get(i, 1) <= c.max_attempts]
        batch.ids = [i for i, _ in live]
        batch.records = [f.get(FIELD.encode(), b"") for _, f in live]  # type: ignore[union-attr]
        if batch.records:
            batch.prepared = self._pool.submit(
                prepare_batch,
                self.ctx,
                batch.records,
                entry_ids=batch.ids,
                con=self._prepare_con,
            )
        return batch

    def _finish(self, batch: _Batch) -> StepResult:
        """Apply a taken batch, store its rejections, then acknowledge what is done."""
        c = self.config
        step = StepResult(entries=len(batch.entries), dead=batch.dead)
        started = time.perf_counter()
        done_ids, results = self._commit(batch)
        step.batch = results[0] if len(results) == 1 else None
        step.failed = len(batch.ids) - len(done_ids)
        self._ack([*batch.gone, *done_ids])
        step.acked = len(batch.gone) + len(done_ids)
        now_ms = time.time() * 1000
        for entry_id in done_ids:
            self.metrics.freshness.observe(max(now_ms - int(entry_id.split("-")[0]), 0) / 1000)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        forgotten = sum(result.forgotten for result in results)
        self.metrics.entries.labels("processed").inc(len(done_ids) - forgotten)
        self.metrics.entries.labels("forgotten").inc(forgotten)
        self.metrics.entries.labels("rejected").inc(sum(r.dead_lettered for r in results))
        self.metrics.entries.labels("failed").inc(step.failed)
        if self.drainer is not None:
            self.drainer.applied(sum(result.new for result in results))
        self._batches += 1
        if self._batches % c.trim_every == 0:
            trim_processed(self.client, c.stream)
            lag = group_lag(self.client, c.stream, c.group)
            self.metrics.lag.set(lag["lag"] if lag["lag"] is not None else -1)
            self.metrics.pending.set(lag["pending"] or 0)
        return step

    def _commit(self, batch: _Batch) -> tuple[list[str], list[BatchResult]]:
        """Apply a prepared batch (entry by entry if it fails); the entries done, the results."""
        if batch.prepared is None:
            return [], []
        try:
            result = commit_batch(self.ctx, batch.prepared.result())
        except _TRANSIENT:
            raise
        except Exception as error:
            log.warning("stream: batch failed (%s); retrying entry by entry", error)
            return self._one_by_one(batch.ids, batch.records)
        return batch.ids, [result]

    def _process(self, live: Sequence[Entry]) -> tuple[list[str], list[BatchResult]]:
        """Process entries now, without acknowledging them (what a consumer killed before its
        acknowledgement leaves behind)."""
        ids = [i for i, _ in live]
        records = [f.get(FIELD.encode(), b"") for _, f in live]  # type: ignore[union-attr]
        batch = _Batch(entries=list(live), redelivered=False, ids=ids, records=records)
        batch.prepared = self._pool.submit(
            prepare_batch, self.ctx, records, entry_ids=ids, con=self._prepare_con
        )
        return self._commit(batch)

    def _one_by_one(
        self, ids: list[str], records: list[bytes]
    ) -> tuple[list[str], list[BatchResult]]:
        done, results = [], []
        for entry_id, record in zip(ids, records, strict=True):
            try:
                results.append(process_batch(self.ctx, [record], entry_ids=[entry_id]))
            except _TRANSIENT:
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"[:1000]
                self.client.hset(self.config.errors_key, entry_id, reason)
                continue
            done.append(entry_id)
        return done, results

    def _dead_letter(self, over: Sequence[Entry], attempts: dict[str, int]) -> int:
        c = self.config
        reasons: Any = self.client.hmget(c.errors_key, [i for i, _ in over])
        pipe = self.client.pipeline(transaction=True)
        for (entry_id, fields), reason in zip(over, reasons, strict=True):
            text = _text(reason) if reason else "no success recorded (its consumer kept dying?)"
            pipe.xadd(
                c.dead_stream,
                {
                    "id": entry_id,
                    FIELD: (fields or {}).get(FIELD.encode(), b""),
                    "reason": text,
                    "attempts": attempts.get(entry_id, 0),
                },
            )
            pipe.xack(c.stream, c.group, entry_id)
            pipe.hdel(c.errors_key, entry_id)
        pipe.execute()
        self.metrics.entries.labels("dead").inc(len(over))
        log.warning("stream: %d entries moved to %s", len(over), c.dead_stream)
        return len(over)

    def _ack(self, ids: list[str]) -> None:
        if not ids:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.config.stream, self.config.group, *ids)
        pipe.hdel(self.config.errors_key, *ids)
        pipe.execute()


def _entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    return [(_text(i), f if f else None) for i, f in reply[0][1]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
