"""One micro-batch of raw signals through the whole streaming pipeline.

`process_batch` is what the stream consumer runs per batch and what the API's
`POST /v1/signals?sync=true` runs on its accepted records: normalize (the batch path's
`normalize_records`: the same SQL rules), enrich (the batch path's `enrich`: the same catalog
join and weights), fold into the window state (atomic with the event_id dedup and the outbox
entry that takes the event to the offline store), write the touched entities' snapshot rows
online as Feast's push sources would, and hand the text signals to the memory service. Effects
are idempotent, so running a batch again (a redelivery after a crash) changes nothing:
duplicates are not counted, and the online rows and memories they would produce are rewritten
identically.

Forget (pipelines/stream/tombstones.py): each record may come with its stream entry id. Before
the writes, the records of users whose tombstone covers their entry are dropped (sent before
the forget). After the writes the tombstones are read again: a forget that marked meanwhile may
have cleaned its stores before these writes landed, so for each such user the batch removes what
it may have written (state, online row, outbox entries, memories, rejected records) and applies
again the user's records the tombstone does not cover. A forget that marks after the second read
began its deletes after these writes, and removes them itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pyarrow as pa

from core.stores.log_retention import rewrite_aof
from pipelines import dead_letter
from pipelines.stream import outbox, rows
from pipelines.stream.context import BatchResult, MemorySink, RawRecord, StreamContext, open_context
from pipelines.stream.prepare import PreparedBatch, Work, prepare_batch
from pipelines.stream.tombstones import Tombstone, read_tombstones


def process_batch(
    ctx: StreamContext,
    records: Sequence[RawRecord],
    *,
    entry_ids: Sequence[str | None] | None = None,
    source: str = "stream",
    keep_rejected: bool = True,
    ingested_at: datetime | None = None,
) -> BatchResult:
    """Run raw signals (mappings, JSON text or bytes) through normalize, enrich, the window
    state, the online store and the memory service; features are readable when this returns.

    `entry_ids` are the records' stream entry ids (None, or a None id: not on the stream, so
    no forget tombstone covers it). Rejected records are returned (DEAD_LETTER_SCHEMA,
    `position` = index in `records`) and, with `keep_rejected`, stored in the dead-letter store
    under `source` (once per stream entry). Safe to repeat, and safe from several threads on one
    context (each call enriches on its own DuckDB cursor, and normalizing takes turns on the
    context's normalizer).
    """
    con = ctx.con.cursor()
    try:
        prepared = prepare_batch(
            ctx, records, entry_ids=entry_ids, source=source, ingested_at=ingested_at, con=con
        )
    finally:
        con.close()
    return commit_batch(ctx, prepared, keep_rejected=keep_rejected)


def commit_batch(
    ctx: StreamContext, prepared: PreparedBatch, *, keep_rejected: bool = True
) -> BatchResult:
    """Apply a prepared batch, honouring forget tombstones (see the module doc): dead letters,
    window state and outbox, online rows, memories."""
    result = prepared.result
    users = prepared.users
    before = read_tombstones(ctx.client, users)
    work = prepared.work.without(before, prepared.entries)
    applied = _write(ctx, prepared, work, result, keep_rejected=keep_rejected)
    after = read_tombstones(ctx.client, users)
    changed = {
        user: tombstone
        for user, tombstone in after.items()
        if before.get(user) != tombstone
        and work.without({user: tombstone}, prepared.entries).size < work.size
    }
    if changed:
        work, applied = _compensate(
            ctx, prepared, work, changed, applied, result, keep_rejected=keep_rejected
        )
    result.forgotten = prepared.work.size - work.size
    result.new = sum(applied.values())
    result.duplicates = result.accepted - result.new - (len(prepared.work.events) - len(applied))
    result.users = len({e.user_id for e in work.events})
    result.items = len({e.item_id for e in work.events if e.item_id is not None})
    result.seconds = round(time.perf_counter() - prepared.started, 4)
    return result


def _write(
    ctx: StreamContext,
    prepared: PreparedBatch,
    work: Work,
    result: BatchResult,
    *,
    keep_rejected: bool,
) -> dict[str, bool]:
    """The batch's writes; per event applied, whether it was new."""
    if keep_rejected:
        result.dead_lettered += _keep_rejected(ctx, work.rejected, work.rejected_entries)
    if not work.events:
        return {}
    flags = ctx.state.apply(work.events, prepared.records, prepared.entries)
    users = sorted({e.user_id for e in work.events})
    items = sorted({e.item_id for e in work.events if e.item_id is not None})
    result.online_rows += write_online(ctx, users, items)
    if ctx.memory is not None and work.texts:
        summary = ctx.memory.remember(work.texts)
        result.memories = summary.to_dict() if hasattr(summary, "to_dict") else {}
    return {e.event_id: flag for e, flag in zip(work.events, flags, strict=True)}


def _keep_rejected(ctx: StreamContext, rejected: pa.Table, entries: list[str | None]) -> int:
    """Store rejected records, once per stream entry when they have entry ids; how many."""
    if rejected.num_rows == 0:
        return 0
    if any(entry is None for entry in entries):
        dead_letter.write(ctx.settings, rejected)
        return rejected.num_rows
    ids = [str(entry) for entry in entries]
    fresh = ctx.marks.unmarked(ids)
    if any(fresh):
        kept = [entry for entry, new in zip(ids, fresh, strict=True) if new]
        dead_letter.write_entries(ctx.settings, rejected.filter(pa.array(fresh)), kept)
    ctx.marks.mark(ids)
    return sum(fresh)


def _compensate(
    ctx: StreamContext,
    prepared: PreparedBatch,
    work: Work,
    changed: Mapping[str, Tombstone],
    applied: dict[str, bool],
    result: BatchResult,
    *,
    keep_rejected: bool,
) -> tuple[Work, dict[str, bool]]:
    """Users forgotten while the batch was written: remove what it may have written for them,
    then apply again their records the new tombstones do not cover (only records without a
    stream entry id can be such: a forget's boundary is the stream's end when it marks).
    Returns the work that stands and its events' new flags."""
    standing = work.without(changed, prepared.entries)
    redo = [e for e in standing.events if e.user_id in changed]
    redone = {e.event_id for e in redo}
    rejected_users = set(work.rejected_users())
    for user, tombstone in changed.items():
        ctx.state.forget_user(user)
        ctx.users.delete([user])
        outbox.forget_entries(ctx.client, user, tombstone, events=redone, outbox=ctx.state.outbox)
        if ctx.memory is not None:
            ctx.memory.forget_user(user)
        if user in rejected_users:
            dead_letter.forget_user(ctx.settings, user)
    # What this batch wrote and deleted again is still in the AOF until it is rewritten.
    rewrite_aof(ctx.client)
    applied = {e.event_id: applied[e.event_id] for e in standing.events if e.user_id not in changed}
    ctx.state.unsee(sorted(redone))
    mask = [user in changed for user in standing.rejected_users()]
    again = Work(
        redo,
        [t for t in standing.texts if t.event_id in redone],
        standing.rejected.filter(pa.array(mask, pa.bool_())) if mask else standing.rejected,
        [entry for entry, m in zip(standing.rejected_entries, mask, strict=True) if m],
    )
    applied |= _write(ctx, prepared, again, result, keep_rejected=keep_rejected)
    return standing, applied


def write_online(ctx: StreamContext, users: Sequence[str], items: Sequence[str]) -> int:
    """Recompute and write the online rows of these entities from their state."""
    user_states, item_states = ctx.state.read(users, items)
    # No state: an entity forgotten since (`engram forget`), whose old event came again.
    user_states = [s for s in user_states if s.totals]
    item_states = [s for s in item_states if s.totals]
    created = datetime.now(UTC)
    written = ctx.users.write(
        rows.user_rows(user_states, created), [int(s.totals["n"]) for s in user_states]
    )
    written += ctx.items.write(
        rows.item_rows(item_states, created), [int(s.totals["n"]) for s in item_states]
    )
    return written


# The step's public names in one place, as before the context and preparation had modules.
__all__ = [
    "BatchResult",
    "MemorySink",
    "PreparedBatch",
    "StreamContext",
    "commit_batch",
    "open_context",
    "prepare_batch",
    "process_batch",
    "write_online",
]
