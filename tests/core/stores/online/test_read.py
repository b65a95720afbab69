"""The fast read returns what Feast's get_online_features returns, from the same Redis keys."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import InvalidInputError, ServiceUnavailableError
from core.stores.online.layout import FeatureRef, ValueKind, ViewRef
from core.stores.online.plan import views_from_store
from core.stores.online.read import OnlineFeatureReader
from tests.toy_feature_repo import NOW, PROJECT, ToyRepo, build_toy_repo

USERS = [f"u{i}" for i in range(40)] + ["nobody", "u3"]  # a missing user and a repeat
ITEMS = [f"i{i}" for i in range(100)] + ["no-such-item"]


@pytest.fixture(scope="module")
def repo(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToyRepo]:
    """The toy repo, materialized into the session's Redis by Feast itself."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    toy = build_toy_repo(tmp_path_factory.mktemp("feature_repo"), redis_server)
    toy.store.materialize(NOW - timedelta(days=30), NOW)
    yield toy
    client.flushdb()
    client.close()


@pytest.fixture
def client(repo: ToyRepo, redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server)
    yield client
    client.close()


def feast_dict(repo: ToyRepo, refs: list[str], join_key: str, ids: list[str]) -> dict:
    response = repo.store.get_online_features(
        features=refs, entity_rows=[{join_key: i} for i in ids]
    )
    return response.to_dict(include_event_timestamps=True)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def test_user_features_equal_feasts_for_every_type(repo: ToyRepo, client: redis.Redis) -> None:
    refs = repo.feature_refs("user_stats") + repo.feature_refs("user_recent")
    reader = OnlineFeatureReader(client, PROJECT, views_from_store(repo.store, refs))
    got = reader.read("user_id", USERS)
    expected = feast_dict(repo, refs, "user_id", USERS)
    for name, values in got.to_dict().items():
        assert same(values, expected[name]), name
    # Feast reports a missing row as event time 0; here it is None.
    for view, feature in (("user_stats", "n_events"), ("user_recent", "views_1h")):
        stamps = [0 if t is None else int(t.timestamp()) for t in got.event_times[view]]
        assert stamps == expected[f"{feature}__ts"]
    assert got.event_times["user_recent"][1] is None  # odd users have no user_recent row
    assert got.values("top_genres")[USERS.index("nobody")] is None


def test_item_features_equal_feasts(repo: ToyRepo, client: redis.Redis) -> None:
    refs = repo.feature_refs("item_stats")
    reader = OnlineFeatureReader(client, PROJECT, views_from_store(repo.store, refs))
    got = reader.read("item_id", ITEMS).to_dict()
    expected = feast_dict(repo, refs, "item_id", ITEMS)
    assert all(same(got[k], expected[k]) for k in got)


def test_a_feature_service_reads_like_feast(repo: ToyRepo, client: redis.Redis) -> None:
    service = repo.store.get_feature_service("ranker_v1")
    reader = OnlineFeatureReader(
        client, PROJECT, views_from_store(repo.store, "ranker_v1"), full_feature_names=True
    )
    got = reader.read("user_id", USERS).to_dict()
    response = repo.store.get_online_features(
        features=service, entity_rows=[{"user_id": u} for u in USERS], full_feature_names=True
    )
    expected = response.to_dict()
    assert set(got) == set(expected)
    assert all(same(got[k], expected[k]) for k in got)


def test_user_and_items_in_one_round_trip(repo: ToyRepo, client: redis.Redis) -> None:
    refs = repo.feature_refs("user_stats") + repo.feature_refs("item_stats")
    reader = OnlineFeatureReader(client, PROJECT, views_from_store(repo.store, refs))
    client.config_resetstat()
    both = reader.read_many({"user_id": ["u5"], "item_id": ITEMS[:100]})
    calls = {
        name: stats["calls"] for name, stats in cast(dict, client.info("commandstats")).items()
    }
    # One EVAL per join key, sent together; the 101 HMGETs run inside Redis.
    assert calls == {"cmdstat_config|resetstat": 1, "cmdstat_eval": 2, "cmdstat_hmget": 101}
    assert both["user_id"].values("n_events") == [10]
    assert both["item_id"].values("n_buyers")[:3] == [0, 11, 22]


def test_numeric_matrix_holds_floats_with_nan_for_missing(
    repo: ToyRepo, client: redis.Redis
) -> None:
    names = ["n_events", "avg_rating", "click_rate", "last_seen", "is_new"]
    reader = OnlineFeatureReader(
        client, PROJECT, views_from_store(repo.store, [f"user_stats:{n}" for n in names])
    )
    got = reader.read("user_id", USERS)
    matrix = got.matrix()
    assert matrix.shape == (len(USERS), len(names))
    for j, name in enumerate(names):
        expected = []
        for value in got.values(name):
            if isinstance(value, datetime):
                value = value.timestamp()
            expected.append(np.nan if value is None else float(value))
        np.testing.assert_array_equal(matrix[:, j], np.array(expected), err_msg=name)
    assert np.isnan(matrix[USERS.index("nobody")]).all()


def test_ttl_is_not_enforced_by_feast_but_can_be_here(repo: ToyRepo, client: redis.Redis) -> None:
    refs = ["user_recent:views_1h"]  # ttl one hour; u0 written at NOW, u10 at NOW - 5 s
    reader = OnlineFeatureReader(client, PROJECT, views_from_store(repo.store, refs))
    later = NOW + timedelta(hours=1, seconds=-2)
    # Feast 0.67 serves these months after NOW: its read path never looks at the ttl.
    assert feast_dict(repo, refs, "user_id", ["u0", "u10"])["views_1h"] == [0, 5]
    assert reader.read("user_id", ["u0", "u10"], now=later).values("views_1h") == [0, 5]
    fresh = reader.read("user_id", ["u0", "u10"], now=later, enforce_ttl=True)
    assert fresh.values("views_1h") == [0, None]
    assert fresh.event_times["user_recent"][1] == NOW - timedelta(seconds=5)


def test_hand_built_views_need_no_feature_store(repo: ToyRepo, client: redis.Redis) -> None:
    view = ViewRef(
        "item_stats", "item_id", (FeatureRef("item_stats", "n_buyers", ValueKind.INT64),)
    )
    got = OnlineFeatureReader(client, PROJECT, [view]).read("item_id", ["i2", "i3", "i404"])
    assert got.values("n_buyers") == [22, 33, None]


def test_bad_requests_are_refused(repo: ToyRepo, client: redis.Redis) -> None:
    with pytest.raises(InvalidInputError, match="view:feature"):
        views_from_store(repo.store, ["user_stats"])
    with pytest.raises(InvalidInputError, match="no such features"):
        views_from_store(repo.store, ["user_stats:nope"])
    both = views_from_store(repo.store, ["user_recent:views_1h", "user_stats:n_events"])
    other = ViewRef("other", "user_id", (FeatureRef("other", "n_events", ValueKind.INT64),))
    with pytest.raises(InvalidInputError, match="two views"):
        OnlineFeatureReader(client, PROJECT, [*both, other])
    with pytest.raises(InvalidInputError, match="join key"):
        OnlineFeatureReader(client, PROJECT, both).read("item_id", ["i1"])


def test_an_unreachable_redis_is_reported() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    view = ViewRef("v", "user_id", ())
    with pytest.raises(ServiceUnavailableError):
        OnlineFeatureReader(dead, PROJECT, [view]).read("user_id", ["u1"])


def test_now_defaults_to_the_clock(repo: ToyRepo, client: redis.Redis) -> None:
    reader = OnlineFeatureReader(
        client, PROJECT, views_from_store(repo.store, ["user_recent:views_1h"])
    )
    assert datetime.now(UTC) - NOW > timedelta(hours=1)
    assert reader.read("user_id", ["u0"], enforce_ttl=True).values("views_1h") == [None]
