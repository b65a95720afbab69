"""A micro-batch's pure half: normalize and enrich its records, no Redis.

`prepare_batch` runs the batch path's own code (normalize_records: the same SQL rules; enrich:
the same catalog join and weights) and returns a PreparedBatch: the state events (the first copy
of each event_id), the text signals for the memory service, the rejected records, each record's
stream entry id (what a forget tombstone is checked against) and each event's normalized record
as JSON (what the outbox takes to the offline store). The consumer prepares the next batch in a
worker thread while Redis applies this one (process.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInputError
from pipelines import enrich
from pipelines.normalize import normalize_records
from pipelines.signal_arrays import WEIGHT_SCALE, type_code_sql
from pipelines.stream import payload
from pipelines.stream.context import MEMORY_TYPES, BatchResult, RawRecord, StreamContext
from pipelines.stream.state import StateEvent
from pipelines.stream.tombstones import Tombstone, entry_key


@dataclass
class Work:
    """What a batch writes: its events, text signals and rejected records (and their entries)."""

    events: list[StateEvent]
    texts: list[Any]
    rejected: pa.Table  # DEAD_LETTER_SCHEMA
    rejected_entries: list[str | None]

    @property
    def size(self) -> int:
        """Records: events and rejected ones."""
        return len(self.events) + self.rejected.num_rows

    def rejected_users(self) -> list[str | None]:
        """The user of each rejected record (None when it could not be read)."""
        return self.rejected.column("user_id").to_pylist() if self.rejected.num_rows else []

    def without(
        self, tombstones: Mapping[str, Tombstone], entries: Mapping[str, str | None]
    ) -> Work:
        """This work minus the records the tombstones cover (`entries`: event_id -> entry)."""
        if not tombstones:
            return self
        events = [
            e for e in self.events if not covered(tombstones.get(e.user_id), entries[e.event_id])
        ]
        kept = {e.event_id for e in events}
        keep = [
            user is None or not covered(tombstones.get(user), entry)
            for user, entry in zip(self.rejected_users(), self.rejected_entries, strict=True)
        ]
        return Work(
            events,
            [t for t in self.texts if t.event_id in kept],
            self.rejected.filter(pa.array(keep, pa.bool_())) if keep else self.rejected,
            [entry for entry, k in zip(self.rejected_entries, keep, strict=True) if k],
        )


@dataclass
class PreparedBatch:
    """A batch normalized and enriched, not yet applied: `prepare_batch`'s pure half."""

    result: BatchResult
    work: Work
    started: float
    entries: dict[str, str | None] = field(default_factory=dict)  # event_id -> stream entry id
    records: dict[str, bytes] = field(default_factory=dict)  # event_id -> normalized JSON

    @property
    def users(self) -> list[str]:
        """Every user the batch names (its events' and its rejected records')."""
        named = {user for user in self.work.rejected_users() if user is not None}
        return sorted({e.user_id for e in self.work.events} | named)


def covered(tombstone: Tombstone | None, entry_id: str | None) -> bool:
    """True when the tombstone covers the entry (an entry without id is never covered)."""
    return tombstone is not None and entry_id is not None and tombstone.covers(entry_id)


def prepare_batch(
    ctx: StreamContext,
    records: Sequence[RawRecord],
    *,
    entry_ids: Sequence[str | None] | None = None,
    source: str = "stream",
    ingested_at: datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> PreparedBatch:
    """Normalize and enrich (no Redis): safe in another thread given its own `con` (a cursor),
    so the consumer prepares the next batch while Redis applies this one."""
    started = time.perf_counter()
    con = con or ctx.con
    ingested_at = ingested_at or datetime.now(UTC)
    ids: Sequence[str | None] = [None] * len(records) if entry_ids is None else entry_ids
    if len(ids) != len(records):
        raise InvalidInputError("entry_ids", f"{len(ids)} ids for {len(records)} records")
    normalized = normalize_records(
        records, source=source, ingested_at=ingested_at, con=con, normalizer=ctx.normalizer
    )
    result = BatchResult(read=normalized.read, accepted=normalized.accepted.num_rows)
    result.rejected = normalized.rejected
    rejected_at = normalized.rejected.column("position").to_pylist()
    skipped = set(rejected_at)
    accepted_entries = [entry for p, entry in enumerate(ids) if p not in skipped]
    accepted, entries = _first_per_event(normalized.accepted, accepted_entries)
    work = Work([], [], normalized.rejected, [ids[p] for p in rejected_at])
    prepared = PreparedBatch(result, work, started, entries)
    if accepted.num_rows:
        work.events, work.texts = _enriched(ctx, accepted, con)
        names = accepted.column("event_id").to_pylist()
        prepared.records = dict(zip(names, payload.encode(accepted), strict=True))
    return prepared


def _first_per_event(
    accepted: pa.Table, entries: list[str | None]
) -> tuple[pa.Table, dict[str, str | None]]:
    """The first copy of each event_id, in input order (as the batch event store keeps), and
    each event's stream entry: the latest of its copies by the same user, so that a copy sent
    again after a forget is not dropped with the one sent before it."""
    ids = accepted.column("event_id").to_pylist()
    if len(set(ids)) == len(ids):
        return accepted, dict(zip(ids, entries, strict=True))
    users = accepted.column("user_id").to_pylist()
    first: dict[str, int] = {}
    latest: dict[str, str | None] = {}
    for index, (event_id, user, entry) in enumerate(zip(ids, users, entries, strict=True)):
        if event_id not in first:
            first[event_id] = index
            latest[event_id] = entry
        elif user == users[first[event_id]]:
            latest[event_id] = _later(latest[event_id], entry)
    return accepted.take(pa.array(sorted(first.values()), pa.int64())), latest


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two entries; an entry without id counts as the latest (never covered)."""
    if a is None or b is None:
        return None
    return a if entry_key(a) >= entry_key(b) else b


def _enriched(
    ctx: StreamContext, accepted: pa.Table, con: duckdb.DuckDBPyConnection
) -> tuple[list[StateEvent], list[Any]]:
    """The state events (the batch aggregates' weights and codes) and the memory signals."""
    gap = timedelta(minutes=ctx.settings.session_gap_minutes)
    events_rel = con.from_arrow(accepted)
    # Only the batch's items: the join's result is the same, without sorting the whole catalog.
    catalog = ctx.catalog()
    items = pc.unique(accepted.column("item_id").drop_null())
    catalog_rel = con.from_arrow(catalog.filter(pc.is_in(catalog.column("item_id"), items)))
    enriched = enrich.enrich(con, events_rel, catalog_rel, session_gap=gap)
    # The same expressions as pipelines.signal_arrays.read_signals.
    table = enriched.project(
        f"""
        event_id, user_id, item_id, category, epoch_us(ts) AS t, {type_code_sql()} AS type_code,
        CAST(round(weight * {WEIGHT_SCALE}) AS BIGINT) AS weight_micros,
        CASE WHEN type = 'rate' THEN value END AS rating
        """
    ).fetchall()
    events = [StateEvent(*row) for row in table]
    texts = _memory_signals(accepted) if ctx.memory is not None else []
    return events, texts


def _memory_signals(accepted: pa.Table) -> list[Any]:
    from memory.extract import TextSignal

    mask = pc.and_(
        pc.is_in(accepted.column("type"), pa.array(MEMORY_TYPES)),
        pc.is_valid(accepted.column("text")),
    )
    chosen = accepted.filter(mask).sort_by(
        [("user_id", "ascending"), ("ts", "ascending"), ("event_id", "ascending")]
    )
    columns = ("event_id", "user_id", "ts", "type", "text", "speaker", "session_id", "item_id")
    return [TextSignal(**row) for row in chosen.select(list(columns)).to_pylist()]
