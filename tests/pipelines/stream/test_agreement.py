"""Batch and stream agree: the same events give the same online features, read through Feast."""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import redis
from feast import FeatureStore

from pipelines.batch import ITEM_FEATURES_FILE, USER_FEATURES_FILE, features_dir
from pipelines.stream.process import open_context, process_batch
from pipelines.stream.rows import user_rows
from tests.pipelines.stream.conftest import StreamHome

USER_VIEWS = ("user_1d", "user_7d", "user_30d", "user_profile")
ITEM_VIEWS = ("item_1d", "item_7d", "item_30d", "item_profile")
# Rating mean and std come from running sums in the stream and prefix sums in batch.
INEXACT = {"rating_mean", "rating_std", "item_rating_mean", "item_rating_std"}


def online(store: FeatureStore, key: str, ids: list[str], views: tuple[str, ...]) -> dict:
    features = [
        f"{view.name}:{field.name}"
        for view in store.list_feature_views()
        if view.name in views
        for field in view.features
    ]
    rows = [{key: i} for i in ids]
    return store.get_online_features(features=features, entity_rows=rows).to_dict(
        include_event_timestamps=True
    )


def same(name: str, a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or (name in INEXACT and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
    return bool(a == b)


def differences(home: StreamHome) -> list[tuple[str, str, Any, Any]]:
    found = []
    snapshots = features_dir(home.settings)
    for key, views, file in (
        ("user_id", USER_VIEWS, USER_FEATURES_FILE),
        ("item_id", ITEM_VIEWS, ITEM_FEATURES_FILE),
    ):
        ids = sorted(pd.read_parquet(snapshots / file, columns=[key])[key].unique())
        batch = online(home.batch_store, key, ids, views)
        stream = online(home.stream_store, key, ids, views)
        assert set(batch) == set(stream)
        for name, values in batch.items():
            for entity, a, b in zip(ids, values, stream[name], strict=True):
                if not same(name, a, b):
                    found.append((name, entity, a, b))
    return found


def test_replaying_the_events_gives_the_batch_features(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    lines = stream_home.paths.signals.read_bytes().splitlines()
    ctx = open_context(stream_home.settings, stream_client, stream_home.layout)
    for start in range(0, len(lines), 700):
        process_batch(ctx, lines[start : start + 700], keep_rejected=False)
    assert differences(stream_home) == []
    # Not vacuous: every user has a row, with signals in it.
    users = online(stream_home.stream_store, "user_id", ["u000001"], ("user_profile",))
    assert users["events_all"][0] > 0


def test_any_order_and_redelivery_give_the_same_features(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    lines = stream_home.paths.signals.read_bytes().splitlines()
    random.Random(6).shuffle(lines)
    ctx = open_context(stream_home.settings, stream_client, stream_home.layout)
    for k, start in enumerate(range(0, len(lines), 1000)):
        batch = lines[start : start + 1000]
        first = process_batch(ctx, batch, keep_rejected=False)
        if k % 2:
            again = process_batch(ctx, batch, keep_rejected=False)  # a redelivered batch
            assert again.new == 0 and again.duplicates == first.accepted
    assert differences(stream_home) == []


def test_the_online_write_is_what_a_feast_push_writes(
    stream_home: StreamHome, stream_client: redis.Redis
) -> None:
    lines = stream_home.paths.signals.read_bytes().splitlines()[:400]
    ctx = open_context(stream_home.settings, stream_client, stream_home.layout)
    process_batch(ctx, lines, keep_rejected=False)
    users = sorted({k.decode().split(":", 3)[3] for k in stream_client.keys("engram:{stream}:u:*")})
    states, _ = ctx.state.read(users, [])
    table = user_rows(states, pd.Timestamp.now(tz="UTC").to_pydatetime())
    ours = {key: stream_client.hgetall(key) for key in _feast_keys(stream_client)}
    for key in ours:
        stream_client.delete(key)
    stream_home.stream_store.push("user_stats_push_source", table.to_pandas())
    theirs = {key: stream_client.hgetall(key) for key in _feast_keys(stream_client)}
    assert theirs
    assert {k: v for k, v in ours.items() if k in theirs} == theirs


def _feast_keys(client: redis.Redis) -> list[bytes]:
    return [k for k in client.keys("*") if not k.startswith(b"engram:") and k.endswith(b"engram")]
