"""The outbox: every event the stream applied, appended once to the offline event store.

The state script (state.py) appends the *new* events' normalized records to the outbox stream in
the same atomic call that sets their dedup markers, so an event is in the outbox exactly when it
was counted. An outbox entry holds one script call's records (fields `signals`: one JSON record
per line, and `entries`: their stream entry ids, one per line, empty for none). `drain` moves
outbox entries into stream parts of the event store (event_store.py):

1. under a short Redis lock, so two consumers never write overlapping parts;
2. W = the store's stream watermark: the last outbox id in a stream part's name;
3. it reads the entries after W (up to `max_events` records); X = the last one read;
4. it drops the entries of forgotten users (their tombstone covers the entry's stream id) and
   events the store already holds (an `engram ingest` of the same events, or a copy counted
   again once its dedup marker expired);
5. it writes the rest as `part-stream-<first>_<X>.parquet` (temporary file, then rename): the
   commit point;
6. it trims the outbox up to X.

A crash before 5 writes nothing (the entries are read again); between 5 and 6 it leaves entries
at or below the watermark, which the next drain skips and trims. Small parts are compacted
(event_store.compact_stream_parts) under the same lock.

Forget: `forget_user` is what a forget calls for this side of the stream, after
`mark_forgotten`: under the lock, it deletes the user's outbox entries and their events in every
part. A drain in flight when the forget marked finishes before the forget's pass (the lock); a
drain after it drops the user's entries (the tombstone), so no drain writes them back.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis

from core.errors import ServiceUnavailableError
from core.settings import Settings
from core.stores.cluster import RedisClient
from pipelines import duck, event_store
from pipelines.stream import payload
from pipelines.stream.state import OUTBOX, PREFIX
from pipelines.stream.tombstones import Tombstone, read_tombstones

log = logging.getLogger("engram.stream")

OUTBOX_KEY = PREFIX + OUTBOX
LOCK_TTL_MS = 10_000  # a holder renews the lock every third of this; a dead one loses it
MAX_PART_EVENTS = 50_000  # a drain reads outbox entries until it holds this many records
DEFAULT_EVERY_S = 10.0
DEFAULT_MAX_NEW = 20_000
FORGET_WAIT_S = 2 * LOCK_TTL_MS / 1000
_READ_CHUNK = 100  # outbox entries per XRANGE

# Delete or renew the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class DrainLock:
    """The lock that serializes drains, compactions and forgets over the stream parts.

    A holder renews it from a thread while it works, so a long compaction keeps it, and a holder
    killed loses it `LOCK_TTL_MS` later at most.
    """

    def __init__(self, client: RedisClient, key: str = OUTBOX_KEY + ":lock") -> None:
        self.client = client
        self.key = key

    @contextmanager
    def held(self, *, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold the lock inside the block; yields False (and holds nothing) when another
        holder kept it for `wait_s` seconds."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while not self.client.set(self.key, token, nx=True, px=LOCK_TTL_MS):
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(0.05)
        done = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(token, done), daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            done.set()
            renewer.join()
            self.client.eval(_RELEASE, 1, self.key, token)

    def _renew(self, token: str, done: threading.Event) -> None:
        while not done.wait(LOCK_TTL_MS / 3000):
            try:
                self.client.eval(_RENEW, 1, self.key, token, LOCK_TTL_MS)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                log.warning("stream: the drain lock was not renewed (%s)", error)


@dataclass
class DrainResult:
    """What one drain did."""

    read: int = 0  # records read from the outbox
    stored: int = 0  # events written to the new part
    forgotten: int = 0  # entries of users forgotten since they were applied
    duplicates: int = 0  # events the store held already
    part: str | None = None
    compacted: int = 0  # parts merged away
    seconds: float = 0.0


def drain(
    client: RedisClient,
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    *,
    max_events: int = MAX_PART_EVENTS,
    outbox: str = OUTBOX_KEY,
    compact_parts: int = 10,
    wait_s: float = 0.0,
) -> DrainResult | None:
    """Move outbox entries (up to `max_events` records) into one stream part (see the module
    doc); None when another drain held the lock for `wait_s` seconds."""
    with DrainLock(client, outbox + ":lock").held(wait_s=wait_s) as locked:
        if not locked:
            return None
        started = time.perf_counter()
        event_store.remove_redundant(settings)
        watermark = event_store.stream_watermark(settings)
        entries = _read(client, outbox, watermark, max_events)
        result = DrainResult()
        if entries:
            first, last = _text(entries[0][0]), _text(entries[-1][0])
            events = _kept(client, con, settings, entries, result)
            if events.num_rows:
                result.part = event_store.write_stream_part(settings, events, first, last).name
                result.stored = events.num_rows
            client.xtrim(outbox, minid=_next_id(last), approximate=False)
        else:
            # Entries at or below the watermark: stored before a crash, not trimmed then.
            client.xtrim(outbox, minid=_next_id(watermark), approximate=False)
        result.compacted = event_store.compact_stream_parts(settings, min_parts=compact_parts)
        result.seconds = round(time.perf_counter() - started, 4)
        return result


def drain_all(
    client: RedisClient, settings: Settings, con: duckdb.DuckDBPyConnection, **options: Any
) -> list[DrainResult]:
    """Drain what the outbox holds now (entries appended meanwhile may stay), unless another
    drain holds the lock."""
    results: list[DrainResult] = []
    outbox = options.get("outbox", OUTBOX_KEY)
    for _ in range(int(cast(int, client.xlen(outbox))) + 1):
        result = drain(client, settings, con, **options)
        if result is None:
            break
        results.append(result)
        if not result.read:
            break
    return results


def _read(client: RedisClient, outbox: str, after: str, max_events: int) -> list[Any]:
    """Outbox entries after `after`, until they hold `max_events` records or none is left."""
    entries: list[Any] = []
    held = 0
    while held < max_events:
        chunk: Any = client.xrange(outbox, min=f"({after}", max="+", count=_READ_CHUNK)
        for entry in chunk:
            entries.append(entry)
            held += len(_pairs(entry[1]))
            if held >= max_events:
                break
        if len(chunk) < _READ_CHUNK:
            break
        after = _text(entries[-1][0])
    return entries


def _pairs(raw: dict[bytes, bytes]) -> list[tuple[bytes, str]]:
    """An outbox entry's records and their stream entry ids ("" for none)."""
    records = raw.get(b"signals", b"").split(b"\n")
    entries = raw.get(b"entries", b"").decode().split("\n")
    return list(zip(records, entries, strict=True))


def _kept(
    client: RedisClient,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    entries: list[Any],
    result: DrainResult,
) -> pa.Table:
    """The entries' events but those of forgotten users and those already stored."""
    pairs = [pair for _, raw in entries for pair in _pairs(raw)]
    result.read = len(pairs)
    events = payload.decode(con, [record for record, _ in pairs])
    users = events.column("user_id").to_pylist()
    tombstones = read_tombstones(client, users)
    if tombstones:
        keep = [
            not _covered(tombstones.get(user), stream_id)
            for user, (_, stream_id) in zip(users, pairs, strict=True)
        ]
        events = events.filter(pa.array(keep, pa.bool_()))
    result.forgotten = len(pairs) - events.num_rows
    live = events.num_rows
    if len(pc.unique(events.column("event_id"))) < events.num_rows:
        events = _first_per_event(events)
    stored = event_store.stored_among(con, settings, events.column("event_id").combine_chunks())
    if stored:
        events = events.filter(pc.invert(pc.is_in(events.column("event_id"), pa.array(stored))))
    result.duplicates = live - events.num_rows
    return events


def _first_per_event(events: pa.Table) -> pa.Table:
    seen: set[str] = set()
    keep = []
    for event_id in events.column("event_id").to_pylist():
        keep.append(event_id not in seen)
        seen.add(event_id)
    return events.filter(pa.array(keep))


def _covered(tombstone: Tombstone | None, entry_id: str) -> bool:
    return tombstone is not None and entry_id != "" and tombstone.covers(entry_id)


def forget_entries(
    client: RedisClient,
    user_id: str,
    tombstone: Tombstone | None,
    *,
    events: Collection[str] = (),
    unidentified: bool = False,
    outbox: str = OUTBOX_KEY,
) -> int:
    """Remove from the outbox the user's records that `tombstone` covers (all of the user's
    without one), those of `events`, and with `unidentified` those without a stream entry id;
    how many. An entry left with other records is replaced by one holding only those (a new id:
    a drain that stored the old one meanwhile finds them stored already).

    Records the tombstone does not cover are signals sent after the forget: they stay."""
    removed = 0
    start = "-"
    while True:
        entries: Any = client.xrange(outbox, min=start, max="+", count=_READ_CHUNK)
        for entry_id, raw in entries:
            pairs = _pairs(raw)
            kept = [
                (record, stream_id)
                for record, stream_id in pairs
                if not _doomed(
                    orjson.loads(record), stream_id, user_id, tombstone, events, unidentified
                )
            ]
            if len(kept) == len(pairs):
                continue
            pipe = client.pipeline(transaction=True)
            if kept:
                pipe.xadd(
                    outbox,
                    {
                        "signals": b"\n".join(record for record, _ in kept),
                        "entries": "\n".join(stream_id for _, stream_id in kept),
                    },
                )
            pipe.xdel(outbox, entry_id)
            pipe.execute()
            removed += len(pairs) - len(kept)
        if len(entries) < _READ_CHUNK:
            return removed
        start = "(" + _text(entries[-1][0])


def _doomed(
    record: dict[str, Any],
    stream_id: str,
    user_id: str,
    tombstone: Tombstone | None,
    events: Collection[str],
    unidentified: bool,
) -> bool:
    if record.get("user_id") != user_id:
        return False
    if tombstone is None or _covered(tombstone, stream_id):
        return True
    return record.get("event_id") in events or (unidentified and stream_id == "")


def forget_user(
    client: RedisClient,
    settings: Settings,
    user_id: str,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    wait_s: float = FORGET_WAIT_S,
    outbox: str = OUTBOX_KEY,
) -> dict[str, int]:
    """The forget's step for the offline side of the stream (call it after `mark_forgotten`):
    the user's outbox entries, then their events in every event-store part, under the drain
    lock. Raises ServiceUnavailableError when the lock stays taken for `wait_s` seconds."""
    tombstone = read_tombstones(client, [user_id]).get(user_id)
    with DrainLock(client, outbox + ":lock").held(wait_s=wait_s) as locked:
        if not locked:
            raise ServiceUnavailableError("stream", "the outbox drain lock stayed taken")
        entries = forget_entries(client, user_id, tombstone, unidentified=True, outbox=outbox)
        event_store.remove_redundant(settings)
        events = event_store.forget_user(con or duck.connect(settings), settings, user_id)
    return {"outbox": entries, "events": events}


class Drainer:
    """Runs `drain` in a background thread after batches: once `every_s` seconds have passed
    since the last drain, or once `max_new` new events were applied since then."""

    def __init__(
        self,
        client: RedisClient,
        settings: Settings,
        con: duckdb.DuckDBPyConnection,
        *,
        every_s: float = DEFAULT_EVERY_S,
        max_new: int = DEFAULT_MAX_NEW,
        on_result: Callable[[DrainResult], None] = lambda _result: None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.con = con.cursor()  # the drain thread's own
        self.every_s = every_s
        self.max_new = max_new
        self.on_result = on_result
        self._new = 0
        self._last = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-drain")
        self._running: Future[DrainResult | None] | None = None

    def applied(self, new: int) -> None:
        """Count new events; start a drain when one is due and none is running: `max_new`
        new events, a full part left more behind, or `every_s` seconds passed and the outbox
        holds entries (the API's `?sync=true` and dead consumers fill it too)."""
        self._new += new
        more = False
        if self._running is not None:
            if not self._running.done():
                return
            result = self._collect(self._running)
            self._running = None
            more = result is not None and result.read >= MAX_PART_EVENTS
        now = time.monotonic()
        if not (more or self._new >= self.max_new or now - self._last >= self.every_s):
            return
        self._last = now
        if more or self._new or int(cast(int, self.client.xlen(OUTBOX_KEY))):
            self._new = 0
            self._running = self._pool.submit(drain, self.client, self.settings, self.con)

    def finish(self) -> None:
        """Wait for the running drain, then drain what the outbox holds (waiting out a lock
        that a killed drain left, or another consumer's drain)."""
        if self._running is not None:
            self._collect(self._running)
            self._running = None
        wait_s = LOCK_TTL_MS / 1000 + 1
        for result in drain_all(self.client, self.settings, self.con, wait_s=wait_s):
            self.on_result(result)
        self._new = 0

    def close(self) -> None:
        """Stop the drain thread."""
        self._pool.shutdown(wait=True)
        self.con.close()

    def _collect(self, done: Future[DrainResult | None]) -> DrainResult | None:
        try:
            result = done.result()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            log.warning("stream: outbox drain failed (%s); the next one retries", error)
            return None
        if result is not None:
            self.on_result(result)
        return result


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
