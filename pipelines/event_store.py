"""The offline event store: accepted signals as Parquet parts, deduplicated on `event_id`.

Each ingest appends one part holding only events the store has not seen, so ingesting the same
input twice changes nothing. Parts are written to a temporary name and renamed, so a crash never
leaves half a part behind.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from engram.settings import Settings
from pipelines.contract import NORMALIZED_SCHEMA

_COLUMNS = ", ".join(NORMALIZED_SCHEMA.names)


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


def append_new(
    con: duckdb.DuckDBPyConnection, settings: Settings, incoming: str
) -> tuple[int, int]:
    """Store the events of table `incoming` not seen before; returns (new, duplicates).

    `incoming` has the contract's columns plus `position` (input order): among copies of one
    event_id the first wins.
    """
    total = int(con.execute(f"SELECT count(*) FROM {incoming}").fetchall()[0][0])
    parts = _parts(settings)
    unseen = (
        f"WHERE NOT EXISTS (SELECT 1 FROM {_parquet_list(parts)} s WHERE s.event_id = a.event_id)"
        if parts
        else ""
    )
    # A hash aggregate finds each id's first copy; cheaper than a window over all columns.
    query = f"""
        SELECT {_COLUMNS} FROM {incoming}
        SEMI JOIN (SELECT min(position) AS position FROM {incoming} a {unseen} GROUP BY event_id)
        USING (position)
    """
    directory = events_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    final = directory / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    temporary = final.with_suffix(".tmp")
    target = str(temporary).replace("'", "''")
    written = int(
        con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)").fetchall()[
            0
        ][0]
    )
    if written:
        temporary.rename(final)
    else:
        temporary.unlink(missing_ok=True)
    return written, total - written


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
