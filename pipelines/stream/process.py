"""One micro-batch of raw signals through the whole streaming pipeline.

`process_batch` is what the stream consumer runs per batch and what the API's
`POST /v1/signals?sync=true` runs on its accepted records: normalize (the batch path's
`normalize_records`: the same SQL rules), enrich (the batch path's `enrich`: the same catalog
join and weights), fold into the window state (atomic with the event_id dedup), write the
touched entities' snapshot rows online as Feast's push sources would, and hand the text signals
to the memory service. Effects are idempotent, so running a batch again (a redelivery after a
crash) changes nothing: duplicates are not counted, and the online rows and memories they would
produce are rewritten identically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis

from engram.settings import Settings
from pipelines import catalog_store, dead_letter, duck, enrich
from pipelines.contract import CATALOG_SCHEMA
from pipelines.normalize import RecordNormalizer, normalize_records
from pipelines.signal_arrays import WEIGHT_SCALE, type_code_sql
from pipelines.stream import rows
from pipelines.stream.online import OnlineWriter
from pipelines.stream.state import DEFAULT_DEDUP_TTL_SECONDS, StateEvent, WindowState
from pipelines.stream.views import ITEM_PUSH_SOURCE, USER_PUSH_SOURCE, PushLayout

RawRecord = Mapping[str, Any] | str | bytes
# Tags carry no statement by the user (memory.ingest.TEXT_SIGNAL_TYPES, repeated here so the
# consumer need not import the memory package unless memories are on).
MEMORY_TYPES = ("message", "review", "search")


class MemorySink(Protocol):
    """What the stream needs of the memory service (memory.service.MemoryService.remember)."""

    def remember(self, signals: Sequence[Any]) -> Any: ...


@dataclass
class BatchResult:
    """What one batch did; `read == accepted + rejected.num_rows` always holds."""

    read: int = 0
    accepted: int = 0
    new: int = 0
    duplicates: int = 0  # valid, but their event_id was seen before (in or before this batch)
    users: int = 0
    items: int = 0
    online_rows: int = 0
    memories: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    rejected: pa.Table = field(default_factory=lambda: pa.table({}))  # DEAD_LETTER_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (rejections as field/reason/position)."""
        summary = {k: v for k, v in asdict(self).items() if k != "rejected"}
        summary["rejected"] = self.rejected.num_rows
        summary["rejections"] = (
            self.rejected.select(["position", "field", "reason"]).to_pylist()
            if self.rejected.num_rows
            else []
        )
        return summary


@dataclass
class StreamContext:
    """Everything a batch needs, built once per process by `open_context`."""

    settings: Settings
    client: redis.Redis
    con: duckdb.DuckDBPyConnection
    state: WindowState
    users: OnlineWriter
    items: OnlineWriter
    memory: MemorySink | None = None
    # The checking query planned once for the context (a fresh plan costs 50-90 ms a batch).
    normalizer: RecordNormalizer | None = None
    _catalog: pa.Table | None = None
    _catalog_mtime: float = -1.0

    def catalog(self) -> pa.Table:
        """The item catalog, re-read when its file changes (an ingest can add items)."""
        path: Path = catalog_store.catalog_path(self.settings)
        mtime = path.stat().st_mtime if path.exists() else 0.0
        if self._catalog is None or mtime != self._catalog_mtime:
            if path.exists():
                self._catalog = pq.read_table(path).select(CATALOG_SCHEMA.names)
            else:
                self._catalog = CATALOG_SCHEMA.empty_table()
            self._catalog_mtime = mtime
        return self._catalog


def open_context(
    settings: Settings,
    client: redis.Redis,
    layout: PushLayout,
    *,
    memory: MemorySink | None = None,
    dedup_ttl_seconds: int = DEFAULT_DEDUP_TTL_SECONDS,
) -> StreamContext:
    """A context on this Redis; `layout` from pipelines.stream.views.load_layout."""
    gap = timedelta(minutes=settings.session_gap_minutes) // timedelta(microseconds=1)
    con = duck.connect(settings)
    return StreamContext(
        settings=settings,
        client=client,
        con=con,
        state=WindowState(client, session_gap_micros=gap, dedup_ttl_seconds=dedup_ttl_seconds),
        users=OnlineWriter(client, layout.project, layout.views[USER_PUSH_SOURCE]),
        items=OnlineWriter(client, layout.project, layout.views[ITEM_PUSH_SOURCE]),
        memory=memory,
        normalizer=RecordNormalizer(con),
    )


def process_batch(
    ctx: StreamContext,
    records: Sequence[RawRecord],
    *,
    source: str = "stream",
    keep_rejected: bool = True,
    ingested_at: datetime | None = None,
) -> BatchResult:
    """Run raw signals (mappings, JSON text or bytes) through normalize, enrich, the window
    state, the online store and the memory service; features are readable when this returns.

    Rejected records are returned (DEAD_LETTER_SCHEMA, `position` = index in `records`) and,
    with `keep_rejected`, stored in the dead-letter store under `source`. Safe to repeat, and
    safe from several threads on one context (each call enriches on its own DuckDB cursor, and
    normalizing takes turns on the context's normalizer).
    """
    con = ctx.con.cursor()
    try:
        prepared = prepare_batch(ctx, records, source=source, ingested_at=ingested_at, con=con)
    finally:
        con.close()
    return commit_batch(ctx, prepared, keep_rejected=keep_rejected)


@dataclass
class PreparedBatch:
    """A batch normalized and enriched, not yet applied: `prepare_batch`'s pure half."""

    result: BatchResult
    events: list[StateEvent]
    texts: list[Any]
    started: float


def prepare_batch(
    ctx: StreamContext,
    records: Sequence[RawRecord],
    *,
    source: str = "stream",
    ingested_at: datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> PreparedBatch:
    """Normalize and enrich (no Redis): safe in another thread given its own `con` (a cursor),
    so the consumer prepares the next batch while Redis applies this one."""
    started = time.perf_counter()
    con = con or ctx.con
    ingested_at = ingested_at or datetime.now(UTC)
    normalized = normalize_records(
        records, source=source, ingested_at=ingested_at, con=con, normalizer=ctx.normalizer
    )
    result = BatchResult(read=normalized.read, accepted=normalized.accepted.num_rows)
    result.rejected = normalized.rejected
    accepted = _first_per_event(normalized.accepted)
    events: list[StateEvent] = []
    texts: list[Any] = []
    if accepted.num_rows:
        events, texts = _enriched(ctx, accepted, con)
    return PreparedBatch(result, events, texts, started)


def commit_batch(
    ctx: StreamContext, prepared: PreparedBatch, *, keep_rejected: bool = True
) -> BatchResult:
    """Apply a prepared batch: window state, online rows, memories (and the dead letters)."""
    result, events = prepared.result, prepared.events
    if keep_rejected:
        dead_letter.write(ctx.settings, result.rejected)
    if events:
        flags = ctx.state.apply(events)
        result.new = sum(flags)
        result.duplicates = result.accepted - result.new
        users = sorted({e.user_id for e in events})
        items = sorted({e.item_id for e in events if e.item_id is not None})
        result.users, result.items = len(users), len(items)
        result.online_rows = write_online(ctx, users, items)
        if ctx.memory is not None and prepared.texts:
            summary = ctx.memory.remember(prepared.texts)
            result.memories = summary.to_dict() if hasattr(summary, "to_dict") else {}
    result.seconds = round(time.perf_counter() - prepared.started, 4)
    return result


def write_online(ctx: StreamContext, users: Sequence[str], items: Sequence[str]) -> int:
    """Recompute and write the online rows of these entities from their state."""
    user_states, item_states = ctx.state.read(users, items)
    # No state: an entity forgotten since (`engram forget`), whose old event came again.
    user_states = [s for s in user_states if s.totals]
    item_states = [s for s in item_states if s.totals]
    created = datetime.now(UTC)
    prefix = ctx.state.prefix
    written = ctx.users.write(
        rows.user_rows(user_states, created),
        [f"{prefix}u:{s.entity_id}" for s in user_states],
        [int(s.totals["n"]) for s in user_states],
    )
    written += ctx.items.write(
        rows.item_rows(item_states, created),
        [f"{prefix}i:{s.entity_id}" for s in item_states],
        [int(s.totals["n"]) for s in item_states],
    )
    return written


def _first_per_event(accepted: pa.Table) -> pa.Table:
    """The first copy of each event_id, in input order (as the batch event store keeps)."""
    if accepted.num_rows < 2:
        return accepted
    ids = accepted.column("event_id")
    if pc.count_distinct(ids).as_py() == accepted.num_rows:
        return accepted
    indices = pa.array(range(accepted.num_rows), pa.int64())
    firsts = (
        pa.table({"event_id": ids, "i": indices})
        .group_by("event_id", use_threads=False)
        .aggregate([("i", "min")])
        .column("i_min")
    )
    return accepted.take(pc.take(firsts, pc.sort_indices(firsts)))


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
