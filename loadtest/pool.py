"""The pool a load run draws from: real user ids, item ids and queries from ENGRAM_HOME's data.

Nothing is hard-coded: users come from the latest user feature snapshot (so they have online
features once materialized), users with memories are those who wrote messages or reviews,
items come from the catalog. The runner writes the pool as JSON for the locustfile, which runs
in locust's own (gevent-patched) process and must not import the project.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InvalidInputError
from core.settings import Settings

# Asked of users with memories when the data set brings no queries of its own.
DEFAULT_QUERIES = (
    "where does the user live",
    "what does the user like",
    "what does the user dislike",
    "who is in the user's family",
    "what is the user planning to buy",
    "recent life events",
)


@dataclass(frozen=True)
class Pool:
    """Ids and settings the locust users draw from; serialized to the pool file."""

    users: list[str]
    memory_users: list[str]
    items: list[str]
    queries: list[str]
    api_key: str | None = None
    weights: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    rate_per_user: float = 0.0  # requests/s of each locust user; 0: as fast as it can
    arrivals: str = "poisson"  # or "constant": users in step (see locustfile.ApiUser)
    seed: int = 7


def _column(con: Any, sql: str, params: list[Any]) -> list[str]:
    return [str(row[0]) for row in con.execute(sql, params).fetchall()]


def read_ids(
    settings: Settings, max_users: int = 5_000, max_items: int = 5_000
) -> tuple[list[str], list[str], list[str]]:
    """(users with features, of them the users with memories, items) from the offline store."""
    from pipelines import duck, event_store
    from pipelines.batch import USER_FEATURES_FILE, features_dir
    from pipelines.catalog_store import catalog_path

    user_file = features_dir(settings) / USER_FEATURES_FILE
    if not user_file.exists():
        raise InvalidInputError("pool", f"no user features in {settings.engram_home}: ingest first")
    con = duck.connect(settings)
    try:
        users = _column(
            con,
            "SELECT DISTINCT user_id FROM read_parquet(?) ORDER BY user_id LIMIT ?",
            [str(user_file), max_users],
        )
        writers = event_store.scan(con, settings).filter(
            "type IN ('message', 'review') AND coalesce(speaker, 'user') = 'user'"
        )
        known = set(users)
        memory_users = sorted(
            {str(row[0]) for row in writers.aggregate("user_id", "user_id").fetchall()} & known
        )
        items_file = catalog_path(settings)
        items = (
            _column(
                con,
                "SELECT DISTINCT item_id FROM read_parquet(?) ORDER BY item_id LIMIT ?",
                [str(items_file), max_items],
            )
            if items_file.exists()
            else []
        )
    finally:
        con.close()
    if not users:
        raise InvalidInputError("pool", "the user feature snapshot holds no user")
    return users, memory_users, items


def read_queries(path: Path | None) -> list[str]:
    """Distinct query texts of a generated queries.jsonl, else the default questions."""
    if path is None or not path.exists():
        return list(DEFAULT_QUERIES)
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            text = json.loads(line).get("query") if line.strip() else None
            if isinstance(text, str) and text.strip():
                seen.setdefault(text.strip(), None)
    return list(seen) or list(DEFAULT_QUERIES)


def write_pool(pool: Pool, path: Path) -> Path:
    """Write the pool as JSON, readable by its owner only (it holds the API key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(pool), out)
    return path
