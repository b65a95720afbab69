"""Reading the feature snapshots back: a user's row as of a time, user ids, the CLI's sample user.

The snapshots are the offline store Feast's point-in-time join reads (a FileSource over the same
Parquet), so a user's row as of T here is the row that join would give for T: the newest one
timestamped at or before T.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from core.errors import UnknownUserError
from core.settings import Settings
from pipelines.batch import USER_FEATURES_FILE, features_dir


def latest_user_row(
    con: duckdb.DuckDBPyConnection, settings: Settings, user_id: str
) -> dict[str, Any]:
    """The user's newest snapshot row from the offline store."""
    return user_row_as_of(con, settings, user_id, None)


def user_row_as_of(
    con: duckdb.DuckDBPyConnection, settings: Settings, user_id: str, as_of: datetime | None
) -> dict[str, Any]:
    """The user's snapshot row in effect at `as_of` (the newest at or before it; the newest of
    all when None); UnknownUserError when there is none."""
    path = features_dir(settings) / USER_FEATURES_FILE
    if not path.exists():
        raise UnknownUserError(user_id)
    before = "" if as_of is None else " AND event_timestamp <= ?"
    result = con.execute(
        f"SELECT * FROM read_parquet(?) WHERE user_id = ?{before} "
        "ORDER BY event_timestamp DESC LIMIT 1",
        [str(path), user_id, *([] if as_of is None else [as_of])],
    )
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    if not rows:
        raise UnknownUserError(user_id)
    return dict(zip(columns, rows[0], strict=True))


def find_users(
    con: duckdb.DuckDBPyConnection, settings: Settings, prefix: str, limit: int = 20
) -> list[str]:
    """User ids of the snapshots that start with `prefix` (case as given), in order."""
    path = features_dir(settings) / USER_FEATURES_FILE
    if not path.exists():
        return []
    rows = con.execute(
        "SELECT DISTINCT user_id FROM read_parquet(?) WHERE starts_with(user_id, ?) "
        "ORDER BY user_id LIMIT ?",
        [str(path), prefix, limit],
    ).fetchall()
    return [str(row[0]) for row in rows]


def sample_user(con: duckdb.DuckDBPyConnection, settings: Settings) -> str:
    """The one user every `--sample` of the CLI shows: of the users active in the store's last
    day (their short windows have values), the one who wrote the most messages and reviews (they
    have memories as well as features); else the most active in the snapshot."""
    from memory.ingest import busiest_writer
    from pipelines import event_store

    events = event_store.scan(con, settings)
    events.create_view("_sample_events", replace=True)
    recent = events.filter(
        "user_id IN (SELECT user_id FROM _sample_events"
        " WHERE ts > (SELECT max(ts) FROM _sample_events) - INTERVAL 1 DAY)"
    )
    writer = busiest_writer(recent) or busiest_writer(events)
    if writer is not None:
        return writer
    path = features_dir(settings) / USER_FEATURES_FILE
    if not path.exists():
        raise UnknownUserError("(any)")
    rows = con.execute(
        "SELECT user_id FROM read_parquet(?) ORDER BY events_all DESC, user_id LIMIT 1",
        [str(path)],
    ).fetchall()
    if not rows:
        raise UnknownUserError("(any)")
    return str(rows[0][0])
