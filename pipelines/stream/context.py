"""What every micro-batch of the stream needs, built once per process: `open_context`.

A StreamContext holds the Redis client, the DuckDB connection (and the contract's checking
query planned once on it), the window state, the online writers of the two push sources, the
marks that store each rejected stream entry once, and the memory service when memories are on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from core.contract import CATALOG_SCHEMA
from core.settings import Settings
from core.stores.cluster import RedisClient
from core.stores.online.push import OnlineWriter
from pipelines import catalog_store, duck
from pipelines.normalize import RecordNormalizer
from pipelines.stream.state import DEFAULT_DEDUP_TTL_SECONDS, RejectionMarks, WindowState
from pipelines.stream.views import ITEM_PUSH_SOURCE, USER_PUSH_SOURCE, PushLayout

RawRecord = Mapping[str, Any] | str | bytes
# Tags carry no statement by the user (memory.ingest.TEXT_SIGNAL_TYPES, repeated here so the
# consumer need not import the memory package unless memories are on).
MEMORY_TYPES = ("message", "review", "search")


class MemorySink(Protocol):
    """What the stream needs of the memory service (memory.service.MemoryService)."""

    def remember(self, signals: Sequence[Any]) -> Any: ...

    def forget_user(self, user_id: str) -> Any: ...


@dataclass
class BatchResult:
    """What one batch did; `read == accepted + rejected.num_rows` always holds."""

    read: int = 0
    accepted: int = 0
    new: int = 0
    duplicates: int = 0  # valid, but their event_id was seen before (in or before this batch)
    forgotten: int = 0  # records of users forgotten after they were sent: dropped
    dead_lettered: int = 0  # rejected records stored by this call (once per stream entry)
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
    client: RedisClient
    con: duckdb.DuckDBPyConnection
    state: WindowState
    users: OnlineWriter
    items: OnlineWriter
    marks: RejectionMarks
    memory: MemorySink | None = None
    # The checking query planned once for the context: planning it for every batch is costly.
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
    client: RedisClient,
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
        marks=RejectionMarks(client),
        memory=memory,
        normalizer=RecordNormalizer(con),
    )
