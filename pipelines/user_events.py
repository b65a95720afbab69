"""One user's stored events read back: activity per day, and events by id (the provenance of a
memory). Reads the offline event store only: events still in the stream's outbox show once
they are drained to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import duckdb

from core.settings import Settings
from pipelines.event_store import parts_source

MAX_EVENTS = 200  # events read back by id: a memory's provenance, shown to a person


def daily_activity(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    user_id: str,
    since: datetime,
    until: datetime,
) -> list[tuple[date, int]]:
    """The user's signals per UTC day with since <= ts <= until, days without any left out."""
    source = parts_source(settings)
    if source is None:
        return []
    rows = con.execute(
        f"SELECT CAST(ts AS DATE) AS day, count(*) FROM {source} "
        "WHERE user_id = ? AND ts >= ? AND ts <= ? GROUP BY day ORDER BY day",
        [user_id, since, until],
    ).fetchall()
    return [(row[0], int(row[1])) for row in rows]


def events_by_id(
    con: duckdb.DuckDBPyConnection, settings: Settings, user_id: str, event_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The user's stored events among `event_ids` (at most MAX_EVENTS of them), oldest first:
    event_id, ts, type, item_id, value, text (as stored: PII redacted)."""
    source = parts_source(settings)
    wanted = list(dict.fromkeys(event_ids))[:MAX_EVENTS]
    if source is None or not wanted:
        return []
    result = con.execute(
        f"SELECT event_id, ts, type, item_id, value, text FROM {source} "
        "WHERE user_id = ? AND list_contains(?, event_id) ORDER BY ts, event_id",
        [user_id, wanted],
    )
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]
