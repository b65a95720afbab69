"""Cached item rows read like the live path, honour ttl at request time and refresh on age."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from core.stores.online.cache import EntityCache
from core.stores.online.encode import encode_values
from core.stores.online.layout import feature_field, redis_keys
from core.stores.online.read_service import ServiceReader
from pipelines.catalog_store import catalog_path
from tests.feature_home import AS_OF, FeatureHome


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def catalog(home: FeatureHome) -> tuple[list[str], list[str | None]]:
    frame = pd.read_parquet(catalog_path(home.settings))
    return list(frame["item_id"]), list(frame["category"])


def test_cached_item_rows_read_like_the_live_path(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    items, categories = catalog(home)
    cache = EntityCache(ranking.stored_reader, "item_id", items, max_age_s=60)
    user = home.snapshots("user").sort_values("events_all")["user_id"].iloc[-1]
    # A request's candidates in any order, a repeat and an id outside the cached population.
    asked = [*items[::-7][:60], items[3], "no-such-item"]
    request = {"item_category": [categories[items.index(i)] if i in items else None for i in asked]}
    entities = {"user_id": [user], "item_id": asked}
    for enforce_ttl, now in (
        (False, None),
        (True, AS_OF + timedelta(hours=1)),
        (True, AS_OF + timedelta(days=3)),
    ):
        live = ranking.read(entities, request, enforce_ttl=enforce_ttl, now=now, event_times=True)
        cached = ranking.read(
            entities, request, enforce_ttl=enforce_ttl, now=now, cached={"item_id": cache}
        )
        assert cached.to_dict() == live.to_dict()
        np.testing.assert_array_equal(cached.matrix(), live.matrix())
        assert cached.stored["item_id"].event_times == live.stored["item_id"].event_times
    assert cache.refreshes == 1 and cache.size == len(items)  # the unknown id was read live
    # Three days on, the 1-day item window is past its ttl and missing; the 30-day one is not.
    late = ranking.read(
        entities,
        request,
        enforce_ttl=True,
        now=AS_OF + timedelta(days=3),
        cached={"item_id": cache},
    ).to_dict()
    assert set(late["item_events_1d"]) == {None} and set(late["item_events_30d"]) != {None}


def test_rows_are_read_again_once_older_than_max_age(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    items, _ = catalog(home)
    clock = Clock()
    cache = EntityCache(ranking.stored_reader, "item_id", items[:50], max_age_s=30, clock=clock)
    item = items[0]
    before = cache.rows([item]).numeric("item_events_all")[0]
    (ref,) = [
        r
        for v in ranking.stored_reader.views("item_id")
        for r in v.features
        if r.name == "item_events_all"
    ]
    key = redis_keys(home.store.project, "item_id", [item])[0]
    field = feature_field(ref.view, ref.name)
    client = home.client()
    original = client.hget(key, field)
    try:
        client.hset(key, field, encode_values(pa.array([int(before) + 5]), ref.kind)[0])
        clock.now = 29.0
        assert cache.rows([item]).numeric("item_events_all")[0] == before  # still the old read
        clock.now = 31.0
        assert cache.rows([item]).numeric("item_events_all")[0] == before + 5.0
        assert cache.refreshes == 2
    finally:
        client.hset(key, field, original or b"")
        client.close()


def test_threads_share_one_cache_through_refreshes(
    home: FeatureHome, ranking: ServiceReader
) -> None:
    items, _ = catalog(home)
    clock = Clock()
    cache = EntityCache(ranking.stored_reader, "item_id", items[:200], max_age_s=1, clock=clock)
    expected = cache.rows(items[:200]).matrix()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for step in range(30):
                clock.now += 0.4  # a refresh every few calls, on whichever thread sees it
                picked = rng.choice(200, size=50)
                unknown = [f"unknown-{seed}-{step}"]
                got = cache.rows([items[i] for i in picked] + unknown).matrix()
                np.testing.assert_array_equal(got[:-1], expected[picked])
                assert np.isnan(got[-1]).all()
        except BaseException as e:  # reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert cache.refreshes > 5
