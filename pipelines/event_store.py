"""The offline event store: accepted signals as Parquet parts, deduplicated on `event_id`.

Each ingest appends one part holding only events the store has not seen (the runner decides
which with `event_ids.SeenIds`, seeded from `stored_ids`), so ingesting the same input twice
changes nothing. Parts are written to a temporary name and renamed, so a crash never leaves half
a part behind.
"""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engram.settings import Settings
from pipelines.contract import NORMALIZED_SCHEMA

_COLUMNS = ", ".join(NORMALIZED_SCHEMA.names)
# Row groups of this many events: DuckDB reads a part in parallel by row group.
ROW_GROUP_ROWS = 1 << 20
# Dictionary pages only where values repeat (unique event ids and free text gain nothing from
# them), and min/max statistics only on the columns readers filter on: 15% less CPU per part.
_DICTIONARY_COLUMNS = [
    "user_id", "type", "item_id", "context", "session_id", "speaker", "device", "source"
]  # fmt: skip
_STATISTICS_COLUMNS = ["event_id", "user_id", "ts", "type", "item_id", "value", "ingested_at"]


def events_dir(settings: Settings) -> Path:
    """Directory of the event store's Parquet parts."""
    return settings.offline_dir / "events"


def _parts(settings: Settings) -> list[Path]:
    directory = events_dir(settings)
    return sorted(directory.glob("part-*.parquet")) if directory.exists() else []


def scan(con: duckdb.DuckDBPyConnection, settings: Settings) -> duckdb.DuckDBPyRelation:
    """All stored events (an empty relation with the contract's columns when there are none)."""
    parts = _parts(settings)
    if not parts:
        return con.from_arrow(NORMALIZED_SCHEMA.empty_table())
    return con.sql(f"SELECT {_COLUMNS} FROM {_parquet_list(parts)}")


def _parquet_list(paths: list[Path]) -> str:
    quoted = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
    return f"read_parquet([{quoted}])"


def stored_ids(con: duckdb.DuckDBPyConnection, settings: Settings) -> pa.ChunkedArray:
    """The event_id of every stored event (each id once: parts never repeat an id)."""
    parts = _parts(settings)
    if not parts:
        return pa.chunked_array([], pa.string())
    return con.sql(f"SELECT event_id FROM {_parquet_list(parts)}").to_arrow_table().column(0)


class PartWriter:
    """Writes one new part batch by batch, in the background, and renames it into place on
    `commit` if it holds any event (an ingest that adds nothing leaves the store as it was).

    Batches are compressed and written on a worker thread (pyarrow releases the GIL), so the
    runner normalizes the next batch meanwhile; at most one batch waits, which bounds memory.
    """

    def __init__(self, settings: Settings) -> None:
        directory = events_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.path = directory / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        self._temporary = self.path.with_suffix(".tmp")
        self._writer: pq.ParquetWriter | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[None] | None = None
        self.rows = 0

    def write(self, events: pa.Table) -> None:
        """Queue `events` (NORMALIZED_SCHEMA) for the part, after the batches before it."""
        if events.num_rows == 0:
            return
        self._wait()
        self.rows += events.num_rows
        self._pending = self._pool.submit(self._write, events.cast(NORMALIZED_SCHEMA))

    def _write(self, events: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._temporary,
                NORMALIZED_SCHEMA,
                compression="zstd",
                compression_level=1,
                use_dictionary=_DICTIONARY_COLUMNS,
                write_statistics=_STATISTICS_COLUMNS,
            )
        self._writer.write_table(events, row_group_size=ROW_GROUP_ROWS)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def commit(self) -> Path | None:
        """Close the part and move it into place; returns its path (None when it is empty)."""
        try:
            self._wait()
        finally:
            self._pool.shutdown()
        if self._writer is None:
            return None
        self._writer.close()
        self._temporary.rename(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the part: nothing reaches the store."""
        try:
            # The write that failed, if one did, is being dropped anyway.
            with contextlib.suppress(Exception):
                self._wait()
        finally:
            self._pool.shutdown()
            if self._writer is not None:
                self._writer.close()
            self._temporary.unlink(missing_ok=True)


def forget_user(con: duckdb.DuckDBPyConnection, settings: Settings, user_id: str) -> int:
    """Rewrite every part without the user's events; returns how many events were removed."""
    removed = 0
    for part in _parts(settings):
        mine = int(
            con.execute(
                "SELECT count(*) FROM read_parquet(?) WHERE user_id = ?", [str(part), user_id]
            ).fetchall()[0][0]
        )
        if mine == 0:
            continue
        removed += mine
        temporary = part.with_suffix(".tmp")
        rest = con.execute(
            "SELECT * FROM read_parquet(?) WHERE user_id <> ?", [str(part), user_id]
        ).to_arrow_table()
        pq.write_table(rest, temporary, compression="zstd")
        temporary.rename(part)
    return removed
