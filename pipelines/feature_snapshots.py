"""Reading the feature snapshots back: a user's latest row, the CLI's sample user."""

from __future__ import annotations

from typing import Any

import duckdb

from core.errors import UnknownUserError
from core.settings import Settings
from pipelines.batch import USER_FEATURES_FILE, features_dir


def latest_user_row(
    con: duckdb.DuckDBPyConnection, settings: Settings, user_id: str
) -> dict[str, Any]:
    """The user's newest snapshot row from the offline store."""
    path = features_dir(settings) / USER_FEATURES_FILE
    if not path.exists():
        raise UnknownUserError(user_id)
    result = con.execute(
        "SELECT * FROM read_parquet(?) WHERE user_id = ? ORDER BY event_timestamp DESC LIMIT 1",
        [str(path), user_id],
    )
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    if not rows:
        raise UnknownUserError(user_id)
    return dict(zip(columns, rows[0], strict=True))


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
