"""Bulk writes leave Feast's hashes as Feast leaves them: a row never replaces a newer one, per
view, and views written together keep each view's own newest row."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import redis

from core.errors import InvalidInputError
from core.stores.online.layout import FeatureRef, ValueKind, ViewRef
from core.stores.online.write import encode_hsets, write_rows, write_view_rows
from tests.toy_feature_repo import NOW, PROJECT, ToyRepo, build_toy_repo


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def repo(redis_url: str, tmp_path: Path) -> ToyRepo:
    return build_toy_repo(tmp_path / "repo", redis_url)


def feast_read(repo: ToyRepo, view: str, join_key: str, ids: list[str]) -> dict:
    refs = repo.feature_refs(view)
    response = repo.store.get_online_features(
        features=refs, entity_rows=[{join_key: i} for i in ids]
    )
    return response.to_dict(include_event_timestamps=True)


def test_older_rows_never_overwrite_newer_ones(repo: ToyRepo, client: redis.Redis) -> None:
    view = ViewRef(
        "user_recent", "user_id", (FeatureRef("user_recent", "views_1h", ValueKind.INT64),)
    )
    ts = pa.timestamp("us", tz="UTC")

    def rows(value: int, at: datetime) -> pa.Table:
        return pa.table(
            {"user_id": ["u0"], "event_timestamp": pa.array([at], ts), "views_1h": [value]}
        )

    assert write_rows(client, PROJECT, view, rows(1, NOW)) == 1
    assert write_rows(client, PROJECT, view, rows(2, NOW - timedelta(seconds=1))) == 0
    assert write_rows(client, PROJECT, view, rows(3, NOW)) == 0  # same instant: kept, as Feast
    assert write_rows(client, PROJECT, view, rows(4, NOW), skip_older=False) == 1
    assert write_rows(client, PROJECT, view, rows(5, NOW + timedelta(microseconds=1))) == 1
    assert feast_read(repo, "user_recent", "user_id", ["u0"])["views_1h"] == [5]


def test_views_written_together_keep_each_views_newest_row(
    repo: ToyRepo, client: redis.Redis
) -> None:
    recent = ViewRef(
        "user_recent", "user_id", (FeatureRef("user_recent", "views_1h", ValueKind.INT64),)
    )
    stats = ViewRef(
        "user_stats", "user_id", (FeatureRef("user_stats", "n_events", ValueKind.INT64),)
    )
    ts = pa.timestamp("us", tz="UTC")

    def rows(value: int, at: datetime, users: tuple[str, ...] = ("u0", "u1")) -> pa.Table:
        return pa.table(
            {
                "user_id": list(users),
                "event_timestamp": pa.array([at] * len(users), ts),
                "views_1h": [value] * len(users),
                "n_events": [value * 10] * len(users),
            }
        )

    both = [recent, stats]
    assert write_view_rows(client, PROJECT, both, rows(1, NOW)) == {
        "user_recent": 2,
        "user_stats": 2,
    }
    # A push made u0's user_recent newer than what the next batch brings.
    assert write_rows(client, PROJECT, recent, rows(2, NOW + timedelta(seconds=1), ("u0",))) == 1
    half = NOW + timedelta(milliseconds=500)
    assert write_view_rows(client, PROJECT, both, rows(3, half), chunk_rows=1) == {
        "user_recent": 1,
        "user_stats": 2,
    }
    assert feast_read(repo, "user_recent", "user_id", ["u0", "u1"])["views_1h"] == [2, 3]
    got = repo.store.get_online_features(
        features=["user_stats:n_events"], entity_rows=[{"user_id": u} for u in ("u0", "u1")]
    ).to_dict()
    assert got["n_events"] == [30, 30]


def test_rows_of_views_with_other_join_keys_or_missing_columns_are_refused() -> None:
    recent = ViewRef(
        "user_recent", "user_id", (FeatureRef("user_recent", "views_1h", ValueKind.INT64),)
    )
    items = ViewRef("item_stats", "item_id", (FeatureRef("item_stats", "n", ValueKind.INT64),))
    table = pa.table(
        {"user_id": ["u0"], "event_timestamp": pa.array([NOW], pa.timestamp("us", tz="UTC"))}
    )
    with pytest.raises(InvalidInputError, match="one join key"):
        encode_hsets(table, PROJECT, [recent, items], "event_timestamp")
    with pytest.raises(InvalidInputError, match="views_1h"):
        encode_hsets(table, PROJECT, recent, "event_timestamp")
