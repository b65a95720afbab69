"""A small Feast repo with every kind of feature type Engram uses, built in a temp dir for tests.

Users have two views (so one Redis hash holds both), items one; values include nulls, NaN,
empty lists and a user whose every feature is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp
from feast.value_type import ValueType

from core.stores.online.layout import feast_connection_string

PROJECT = "toy"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")

USER_STATS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("event_timestamp", TS),
        ("n_events", pa.int64()),
        ("avg_rating", pa.float64()),
        ("click_rate", pa.float32()),
        ("last_seen", TS),
        ("top_category", pa.string()),
        ("top_genres", pa.list_(pa.string())),
        ("taste", pa.list_(pa.float32())),
        ("is_new", pa.bool_()),
    ]
)
USER_RECENT_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("event_timestamp", TS), ("views_1h", pa.int64())]
)
ITEM_STATS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("event_timestamp", TS),
        ("popularity", pa.float64()),
        ("n_buyers", pa.int64()),
        ("genres", pa.list_(pa.string())),
    ]
)


@dataclass
class ToyRepo:
    """An applied Feast repo on a test Redis, with the rows behind each view."""

    path: Path
    store: FeatureStore
    tables: dict[str, pa.Table]

    def feature_refs(self, view: str) -> list[str]:
        """Every "view:feature" of a view, in schema order."""
        return [f"{view}:{f.name}" for f in self.store.get_feature_view(view).features]


def user_stats_rows(n: int, at: datetime) -> pa.Table:
    """n users with varied values; user 1 is all nulls, every 7th has NaN and empty lists."""
    rows: dict[str, list[object]] = {name: [] for name in USER_STATS_SCHEMA.names}
    for i in range(n):
        blank = i == 1
        rows["user_id"].append(f"u{i}")
        rows["event_timestamp"].append(at - timedelta(minutes=i, microseconds=i))
        rows["n_events"].append(None if blank else i * 3 - 5)
        rows["avg_rating"].append(None if blank else (float("nan") if i % 7 == 0 else i / 7))
        rows["click_rate"].append(None if blank else i / 64)
        rows["last_seen"].append(None if blank else at - timedelta(hours=i, seconds=i))
        rows["top_category"].append(None if blank else ("" if i % 7 == 0 else f"cat{i % 5}"))
        rows["top_genres"].append(None if blank else [f"g{j}" for j in range(i % 4)])
        rows["taste"].append(None if blank else [i / 8, -i / 16, 0.5][: i % 4])
        rows["is_new"].append(None if blank else i % 2 == 0)
    return pa.table(rows, schema=USER_STATS_SCHEMA)


def user_recent_rows(n: int, at: datetime) -> pa.Table:
    """A second user view; only even users have a row."""
    ids = [f"u{i}" for i in range(0, n, 2)]
    return pa.table(
        {
            "user_id": ids,
            "event_timestamp": [at - timedelta(seconds=i) for i in range(len(ids))],
            "views_1h": list(range(len(ids))),
        },
        schema=USER_RECENT_SCHEMA,
    )


def item_stats_rows(n: int, at: datetime) -> pa.Table:
    """n items with popularity, buyer counts and genres."""
    return pa.table(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "event_timestamp": [at - timedelta(minutes=i) for i in range(n)],
            "popularity": [None if i % 9 == 4 else i * 0.25 for i in range(n)],
            "n_buyers": [i * 11 for i in range(n)],
            "genres": [[f"g{i % 3}", f"g{i % 5}"] for i in range(n)],
        },
        schema=ITEM_STATS_SCHEMA,
    )


def build_toy_repo(
    path: Path,
    redis_url: str,
    *,
    n_users: int = 40,
    n_items: int = 120,
    key_ttl_seconds: int | None = None,
    cluster: bool = False,
) -> ToyRepo:
    """Write the Parquet sources and apply the repo; nothing is materialized yet. `cluster`:
    `redis_url` is a node of a Redis Cluster (Feast's redis_type: redis_cluster)."""
    path.mkdir(parents=True, exist_ok=True)
    tables = {
        "user_stats": user_stats_rows(n_users, NOW),
        "user_recent": user_recent_rows(n_users, NOW),
        "item_stats": item_stats_rows(n_items, NOW),
    }
    for name, table in tables.items():
        pq.write_table(table, path / f"{name}.parquet")
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING)

    def source(name: str) -> FileSource:
        return FileSource(
            name=f"{name}_source", path=f"{name}.parquet", timestamp_field="event_timestamp"
        )

    user_stats = FeatureView(
        name="user_stats",
        entities=[user],
        ttl=timedelta(days=2),
        source=source("user_stats"),
        schema=[
            Field(name="n_events", dtype=Int64),
            Field(name="avg_rating", dtype=Float64),
            Field(name="click_rate", dtype=Float32),
            Field(name="last_seen", dtype=UnixTimestamp),
            Field(name="top_category", dtype=String),
            Field(name="top_genres", dtype=Array(String)),
            Field(name="taste", dtype=Array(Float32)),
            Field(name="is_new", dtype=Bool),
        ],
    )
    user_recent = FeatureView(
        name="user_recent",
        entities=[user],
        ttl=timedelta(hours=1),
        source=source("user_recent"),
        schema=[Field(name="views_1h", dtype=Int64)],
    )
    item_stats = FeatureView(
        name="item_stats",
        entities=[item],
        ttl=timedelta(days=7),
        source=source("item_stats"),
        schema=[
            Field(name="popularity", dtype=Float64),
            Field(name="n_buyers", dtype=Int64),
            Field(name="genres", dtype=Array(String)),
        ],
    )
    ranker_v1 = FeatureService(name="ranker_v1", features=[user_stats, user_recent[["views_1h"]]])
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(path / "registry.db"),
        online_store=RedisOnlineStoreConfig(
            redis_type="redis_cluster" if cluster else "redis",
            connection_string=feast_connection_string(redis_url, cluster=cluster),
            key_ttl_seconds=key_ttl_seconds,
        ),
        offline_store={"type": "dask"},
        entity_key_serialization_version=3,
        repo_path=path,
    )
    store = FeatureStore(config=config)
    store.apply([user, item, user_stats, user_recent, item_stats, ranker_v1])
    return ToyRepo(path, store, tables)
