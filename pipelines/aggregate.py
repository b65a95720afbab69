"""Aggregation: enriched signals to timestamped user and item feature snapshots for Feast.

Snapshot semantics (what makes Feast's point-in-time join leak-free):

- One row per (user, UTC calendar day on which the user has at least one signal), timestamped
  at the ts of the user's last signal that day, plus one row per user at `as_of` (the job's run
  time, what online serving reads) when as_of is later than the user's last signal.
- Signals later than `as_of` are ignored: a snapshot as of a time cannot know what came after,
  so every user's latest row is at as_of or at their last signal, whichever is earlier.
- Each row's features are computed over the user's signals with ts <= the row's timestamp, so
  the join, which takes the latest row with timestamp <= the label's time, never sees a later
  signal. Windows are exact and trailing: "7d" is (row_ts - 7 days, row_ts]; a signal exactly 7
  days before the row is out, one at the row's ts is in. "all" is everything up to the row.
- Item rows are built the same way per item, from signals that name an item.
- Weighted sums add integer micro-weights (exact to 1e-6 per signal), so an empty window is
  exactly 0 and equal affinities tie exactly.
- `created` is `as_of` on every row: Feast's tie-breaker between runs.

Method: the signals are read once into integer-coded numpy arrays (`signal_arrays.py`), sorted
by (entity, ts), and every feature is read at the rows from prefix sums, trailing windows being a
difference of two prefix sums found by binary search (`timelines.py`). On 1M synthetic signals
(2 cores) eight windowed user counts alone took 4.0 s as DuckDB cumulative sums + ASOF joins and
4.2 s as DuckDB RANGE-frame windows; this method computes every user and item feature in 1.3 s.

Feature names, types and descriptions are in `pipelines/feature_specs.py`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.aggregate_items import ITEM_SNAPSHOT_SCHEMA, aggregate_items, item_snapshots
from pipelines.aggregate_users import (
    USER_SNAPSHOT_SCHEMA,
    aggregate_users,
    session_gap_micros,
    user_snapshots,
)
from pipelines.history import History
from pipelines.signal_arrays import SignalArrays, read_signals
from pipelines.timelines import as_of_micros


def aggregate_snapshots(
    con: duckdb.DuckDBPyConnection,
    enriched: duckdb.DuckDBPyRelation,
    *,
    as_of: datetime,
    session_gap: timedelta,
) -> tuple[duckdb.DuckDBPyRelation, duckdb.DuckDBPyRelation]:
    """User and item snapshots from one read of the signals, computed side by side."""
    users, items = snapshot_tables(enriched, as_of=as_of, session_gap=session_gap)
    return con.from_arrow(users), con.from_arrow(items)


def snapshot_tables(
    enriched: duckdb.DuckDBPyRelation, *, as_of: datetime, session_gap: timedelta
) -> tuple[pa.Table, pa.Table]:
    """`aggregate_snapshots` as Arrow tables (USER_ and ITEM_SNAPSHOT_SCHEMA)."""
    gap_us = session_gap_micros(session_gap)
    as_of_us = as_of_micros(as_of)
    return snapshots_of(read_signals(enriched, as_of_us), as_of_us, gap_us)


def snapshots_of(
    signals: SignalArrays,
    as_of_us: int,
    session_gap_us: int,
    users_history: History | None = None,
    items_history: History | None = None,
    seen_pairs: np.ndarray | None = None,
) -> tuple[pa.Table, pa.Table]:
    """User and item snapshots of signals already read (all with ts <= as_of_us), given the
    entities' history before them when there is one (`pipelines/history.py`)."""
    # numpy and Arrow release the GIL in their loops, so the two run on two cores. The item
    # side is the shorter, so it also finds the first signal of each (user, item) pair for them.
    with ThreadPoolExecutor(max_workers=2) as pool:
        items = pool.submit(item_snapshots, signals, as_of_us, items_history, seen_pairs)
        users = pool.submit(
            user_snapshots,
            signals,
            as_of_us,
            session_gap_us,
            lambda: items.result().first_pair_signals,
            users_history,
            seen_pairs,
        )
        return users.result(), items.result().table


def write_snapshot(
    con: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation | pa.Table, path: Path
) -> int:
    """Write `rel` to `path` as Parquet (zstd) atomically; returns the rows written."""
    table = rel if isinstance(rel, pa.Table) else _utc(rel.to_arrow_table())
    return write_snapshot_tables([table], table.schema, path)


def write_snapshot_tables(tables: Iterable[pa.Table], schema: pa.Schema, path: Path) -> int:
    """Write `tables`, in order and cast to `schema`, as one Parquet file (zstd) at `path`,
    atomically; returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    rows = 0
    try:
        # pyarrow rather than DuckDB's COPY: 30% less CPU on the same Arrow table (1.4M user
        # rows: 1.4 s against 2.0 s), same size; zstd level 1: a third less CPU than the
        # default level for files ~6% larger.
        with pq.ParquetWriter(temporary, schema, compression="zstd", compression_level=1) as writer:
            for table in tables:
                writer.write_table(table.select(schema.names).cast(schema))
                rows += table.num_rows
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return rows


def _utc(table: pa.Table) -> pa.Table:
    """Instants labelled UTC: DuckDB labels them with the connection's time zone."""
    fields = [
        field.with_type(pa.timestamp(field.type.unit, tz="UTC"))
        if pa.types.is_timestamp(field.type) and field.type.tz is not None
        else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


__all__ = [
    "ITEM_SNAPSHOT_SCHEMA",
    "USER_SNAPSHOT_SCHEMA",
    "aggregate_items",
    "aggregate_snapshots",
    "aggregate_users",
    "snapshot_tables",
    "write_snapshot",
    "write_snapshot_tables",
]
