"""Reading the feature snapshots back: a user's latest row, a sample user."""

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
    """The most active user in the latest snapshot: a good one to show."""
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
