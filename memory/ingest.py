"""Memories of an ingest: the text signals of a batch of events, fed through the memory service.

Called by pipelines.batch.run_ingest after the events are stored. Signals are read in user and
time order and handed over in batches of whole users (about `BATCH_SIGNALS` each), so a user's
conversation and search bursts are seen together and each batch costs one read, one embedding
call and one write barrier. Re-ingesting the same events is cheap: memories whose evidence is
already stored are dropped before embedding (memory.lifecycle.unseen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import duckdb

from memory.extract import TextSignal
from memory.service import MemoryService, WriteSummary

BATCH_SIGNALS = 2_000
# Tags carry no statement by the user (see memory.extract), so they are not read at all.
TEXT_SIGNAL_TYPES = ("message", "review", "search")
_FIELDS = ("event_id", "user_id", "ts", "type", "text", "speaker", "session_id", "item_id")


def text_signal_batches(
    relation: duckdb.DuckDBPyRelation, batch_signals: int = BATCH_SIGNALS
) -> Iterator[list[TextSignal]]:
    """The text signals of `relation` (contract columns, one row per event as the event store
    holds them), in batches of whole users in user and time order."""
    kinds = ", ".join(f"'{kind}'" for kind in TEXT_SIGNAL_TYPES)
    selected = (
        relation.filter(f"type IN ({kinds}) AND text IS NOT NULL")
        .order("user_id, ts, event_id")
        .select(", ".join(_FIELDS))
    )
    reader = selected.to_arrow_reader(batch_size=10_000)
    batch: list[TextSignal] = []
    for record_batch in reader:
        for row in record_batch.to_pylist():
            if len(batch) >= batch_signals and row["user_id"] != batch[-1].user_id:
                yield batch
                batch = []
            batch.append(TextSignal(**row))
    if batch:
        yield batch


def remember_relation(
    service: MemoryService,
    relation: duckdb.DuckDBPyRelation,
    *,
    batch_signals: int = BATCH_SIGNALS,
    on_batch: Callable[[WriteSummary], None] | None = None,
) -> WriteSummary:
    """Remember every text signal of `relation`; the summed summary of all batches."""
    total = WriteSummary()
    for batch in text_signal_batches(relation, batch_signals):
        summary = service.remember(batch)
        total.add(summary)
        if on_batch is not None:
            on_batch(summary)
    return total


def busiest_writer(relation: duckdb.DuckDBPyRelation) -> str | None:
    """The user who wrote the most messages and reviews (a good sample for a demo)."""
    rows = (
        relation.filter("type IN ('message', 'review') AND coalesce(speaker, 'user') = 'user'")
        .aggregate("user_id, count(*) AS written", "user_id")
        .order("written DESC, user_id")
        .limit(1)
        .fetchall()
    )
    return str(rows[0][0]) if rows else None
