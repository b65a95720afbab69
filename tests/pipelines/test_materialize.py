"""The bulk path leaves Redis and the registry exactly as `feast materialize` does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pyarrow as pa
import pytest
import redis
from feast.feature_view import FeatureViewState
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInputError, SourceError
from core.stores.online.layout import redis_keys
from pipelines.materialize import (
    latest_rows,
    materialize_incremental,
    materialize_view,
    read_source,
)
from tests.toy_feature_repo import NOW, PROJECT, ToyRepo, build_toy_repo

VIEWS = ("user_stats", "user_recent", "item_stats")
START = NOW - timedelta(days=30)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def repo(redis_url: str, tmp_path: Path) -> ToyRepo:
    return build_toy_repo(tmp_path / "repo", redis_url)


def snapshot(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    return {key: cast(dict, client.hgetall(key)) for key in client.scan_iter(count=1000)}


def feast_read(repo: ToyRepo, view: str, join_key: str, ids: list[str]) -> dict:
    refs = repo.feature_refs(view)
    response = repo.store.get_online_features(
        features=refs, entity_rows=[{join_key: i} for i in ids]
    )
    return response.to_dict(include_event_timestamps=True)


def test_redis_holds_the_same_bytes_as_after_feast_materialize(
    repo: ToyRepo, client: redis.Redis
) -> None:
    repo.store.materialize(START, NOW)
    by_feast = snapshot(client)
    client.flushdb()
    for view in VIEWS:
        materialize_view(repo.store, client, view, start=START, end=NOW)
    assert snapshot(client) == by_feast
    assert len(by_feast) == 40 + 120  # user views share one hash per user


def test_feast_reads_what_the_bulk_path_wrote(repo: ToyRepo, client: redis.Redis) -> None:
    users = ["u0", "u1", "u7", "nobody"]
    result = materialize_view(repo.store, client, "user_stats", start=START, end=NOW)
    assert (result.rows_read, result.rows_written) == (40, 40)
    got = feast_read(repo, "user_stats", "user_id", users)
    assert got["n_events"] == [-5, None, 16, None]
    assert got["top_genres"][2] == ["g0", "g1", "g2"]
    assert got["n_events__ts"][0] == int(NOW.timestamp())


def test_registry_records_the_interval_so_feast_carries_on(
    repo: ToyRepo, client: redis.Redis
) -> None:
    materialize_view(repo.store, client, "item_stats", start=START, end=NOW - timedelta(hours=1))
    view = repo.store.get_feature_view("item_stats")
    assert view.materialization_intervals == [(START, NOW - timedelta(hours=1))]
    assert view.state == FeatureViewState.AVAILABLE_ONLINE
    # The last hour's items (i0..i59 are stamped NOW - i minutes) are still to come.
    assert feast_read(repo, "item_stats", "item_id", ["i0", "i60"])["n_buyers"] == [None, 660]
    repo.store.materialize_incremental(end_date=NOW, feature_views=["item_stats"])
    assert repo.store.get_feature_view("item_stats").most_recent_end_time == NOW
    assert feast_read(repo, "item_stats", "item_id", ["i0"])["n_buyers"] == [0]


def test_incremental_carries_on_from_feasts_last_run(repo: ToyRepo, client: redis.Redis) -> None:
    repo.store.materialize(START, NOW - timedelta(minutes=30), feature_views=["item_stats"])
    [result] = materialize_incremental(repo.store, client, NOW, ["item_stats"])
    assert result.start == NOW - timedelta(minutes=30)
    assert result.rows_read == 31  # the boundary row again: Feast's interval is closed
    assert result.rows_written == 30  # ... and skipped, being no newer than what is stored
    assert repo.store.get_feature_view("item_stats").most_recent_end_time == NOW


def test_key_ttl_seconds_expires_keys_like_feast(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    repo = build_toy_repo(tmp_path / "repo", redis_url, key_ttl_seconds=600)
    materialize_view(repo.store, client, "user_recent", start=START, end=NOW)
    [key] = redis_keys(PROJECT, "user_id", ["u0"])
    assert 590 < cast(int, client.ttl(key)) <= 600
    client.close()


def test_small_chunks_write_everything(repo: ToyRepo, client: redis.Redis) -> None:
    materialize_view(repo.store, client, "item_stats", start=START, end=NOW, chunk_rows=7)
    got = feast_read(repo, "item_stats", "item_id", [f"i{i}" for i in range(120)])
    assert got["n_buyers"] == [i * 11 for i in range(120)]


def test_a_given_table_and_sources_with_problems(repo: ToyRepo, client: redis.Redis) -> None:
    table = repo.tables["user_recent"].drop_columns(["views_1h"])
    with pytest.raises(InvalidInputError, match="views_1h"):
        materialize_view(repo.store, client, "user_recent", start=START, end=NOW, table=table)
    with pytest.raises(SourceError, match="missing columns"):
        read_source(
            repo.path / "user_recent.parquet", ["nope"], "event_timestamp", start=None, end=None
        )
    with pytest.raises(SourceError):
        read_source(repo.path / "absent.parquet", ["x"], "event_timestamp", start=None, end=None)


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(0, 20),  # event minute
        st.integers(0, 3),  # created minute
        st.integers(-100, 100),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(EVENTS, st.integers(0, 20), st.integers(0, 20))
def test_latest_rows_matches_a_brute_force_reference(
    events: list[tuple[str, int, int, int]], lo: int, hi: int
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "user_id": [e[0] for e in events],
            "ts": pa.array(
                [base + timedelta(minutes=e[1]) for e in events], pa.timestamp("us", tz="UTC")
            ),
            "created": pa.array(
                [base + timedelta(minutes=e[2]) for e in events], pa.timestamp("us", tz="UTC")
            ),
            "value": pa.array([e[3] for e in events], pa.int64()),
        }
    )
    got = latest_rows(
        table,
        "user_id",
        "ts",
        start=base + timedelta(minutes=lo),
        end=base + timedelta(minutes=hi),
        created_field="created",
    )
    expected: dict[str, tuple[int, int]] = {}
    for user, minute, created, _ in events:
        if lo <= minute <= hi:
            expected[user] = max(expected.get(user, (-1, -1)), (minute, created))
    got_rows = {
        row["user_id"]: (
            int((row["ts"] - base).total_seconds() // 60),
            int((row["created"] - base).total_seconds() // 60),
        )
        for row in got.to_pylist()
    }
    assert got_rows == expected
    assert got.num_rows == len(expected)


def test_latest_rows_treats_naive_times_as_utc() -> None:
    table = pa.table(
        {
            "user_id": ["a", "a"],
            "ts": pa.array([datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 12)]),
        }
    )
    got = latest_rows(table, "user_id", "ts", end=datetime(2026, 1, 1, 11, tzinfo=UTC))
    assert got["ts"].to_pylist() == [datetime(2026, 1, 1, 10)]
