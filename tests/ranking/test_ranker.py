"""The served ranker: trained, saved, loaded by version, and fed the same features as training."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import redis

from core.settings import Settings
from core.stores import feature_store
from memory.embed import Embedder
from pipelines.batch import run_ingest
from pipelines.generate import GenerateConfig, write_dataset
from pipelines.materialize import materialize_incremental
from pipelines.stream.consumer import Consumer, ConsumerConfig
from pipelines.stream.context import open_context
from pipelines.stream.producer import produce
from pipelines.stream.views import load_layout
from ranking import registry
from ranking.candidate_store import CandidateStore
from ranking.candidates import generate, generate_user
from ranking.fit import train_and_save
from ranking.follow import FollowConfig, Follower, followed_of
from ranking.ranker import Ranker, load_ranker
from ranking.train import training_matrix
from serving.wiring import load_model
from tests.conftest import PausableServer
from tests.feature_home import AS_OF

REDIS_DB = 9
AT = AS_OF + timedelta(hours=1)


@pytest.fixture(scope="module")
def ranker(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, milvus_uri: str, minilm: Embedder
) -> Ranker:
    """A home with the small generated data: ingested, trained, materialized, ranker loaded."""
    root = tmp_path_factory.mktemp("ranker")
    paths = write_dataset(root / "data", GenerateConfig.small())
    url = redis_server.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    settings = Settings(engram_home=root / "home", redis_url=url, milvus_uri=milvus_uri)
    run_ingest(settings, paths.signals, catalog=paths.catalog, as_of=AS_OF)
    train_and_save(settings, embedder=minilm, collection=f"items_{uuid.uuid4().hex[:8]}")
    store = feature_store.open_store(settings, url)
    feature_store.apply_repo(store, settings)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
        materialize_incremental(store, client, AS_OF)
    return load_ranker(settings, embedder=minilm)


def active_user(ranker: Ranker) -> str:
    history = ranker.inputs.context.history
    return max(history.users, key=lambda u: len(history.before(u, 2**62).items))


def test_training_and_serving_build_the_same_features(ranker: Ranker) -> None:
    user = active_user(ranker)
    at = pd.DatetimeIndex([pd.Timestamp(AT)])
    frame = generate(ranker.inputs.sources, [user], at, ranker.inputs.items).frame.head(60)
    served = ranker.features(frame, AT)
    trained = training_matrix(ranker.settings, ranker.inputs, frame)
    assert list(served.columns) == list(trained.columns) == ranker.model.features
    service = ranker.inputs.service_features
    assert served[service].notna().to_numpy().any()  # features were read, not all missing
    assert np.allclose(served.to_numpy(), trained.to_numpy(), rtol=1e-6, equal_nan=True)


def test_rank_gives_k_unseen_items_best_first_with_reasons(ranker: Ranker) -> None:
    user = active_user(ranker)
    result = ranker.rank(user, k=5, at=AT)
    assert len(result.items) == 5 and result.model_version == ranker.version
    scores = [score for _, score in result.items]
    assert scores == sorted(scores, reverse=True)
    seen = set(ranker.inputs.context.history.before(user, 2**62).items)
    assert not {item for item, _ in result.items} & seen
    reason = result.reasons[result.items[0][0]]
    assert reason["sources"] and len(reason["top_features"]) == 3
    plain = ranker.rank(user, k=5, at=AT, explain=False)  # the same ranking, sources only
    assert plain.items == result.items
    assert all(set(why) == {"sources"} for why in plain.reasons.values())


def test_rank_within_given_candidates_and_with_a_query(ranker: Ranker) -> None:
    user = active_user(ranker)
    some = list(ranker.inputs.items[:3])
    chosen = ranker.rank(user, k=2, candidates=some, at=AT)
    assert {item for item, _ in chosen.items} <= set(some) and len(chosen.items) == 2
    assert len(ranker.rank(user, k=3, query="something to read", at=AT).items) == 3


def test_the_served_ranker_degrades_within_the_redis_timeout(
    ranker: Ranker, minilm: Embedder
) -> None:
    from serving.app import create_app

    settings = ranker.settings
    served = load_ranker(settings, embedder=minilm, redis_timeout_s=0.25, milvus_timeout_s=2.0)
    app = create_app(
        settings,
        {
            "ENGRAM_AUTH": False,
            "ENGRAM_RANKER": served,
            "ENGRAM_REFRESH": False,
            "ENGRAM_WARM": False,
            "ENGRAM_EMBEDDER": minilm,
        },
    )
    client = app.test_client()
    body = {"user_id": active_user(ranker), "k": 5, "context": {"time": AT.isoformat()}}
    assert client.post("/v1/rank", json=body).json["degraded"] is False  # type: ignore[index]
    with redis.Redis.from_url(settings.redis_url or "") as admin:
        pid = int(admin.info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)  # Redis hangs
    try:
        began = time.monotonic()
        answer = client.post("/v1/rank", json=body)
        took = time.monotonic() - began
    finally:
        os.kill(pid, signal.SIGCONT)
    assert answer.status_code == 200 and answer.json is not None
    assert answer.json["degraded_reason"] == "redis unavailable"
    assert took < 0.25 + 0.75  # the ranker's Redis timeout, not the hang
    time.sleep(2.1)  # the breaker's cool-down
    assert client.post("/v1/rank", json=body).json["degraded"] is False  # type: ignore[index]
    app.extensions["engram"].close()


def test_serving_follows_a_pin_and_goes_back_to_the_latest(ranker: Ranker) -> None:
    settings = ranker.settings
    trained = registry.load(settings)
    meta = {k: v for k, v in trained.meta.items() if k not in ("version", "created_at")}
    newer = registry.save(settings, trained.booster, trained.sources, meta)
    registry.pin(settings, trained.version)
    served = load_model(settings)
    assert served is not None and served.version == trained.version
    registry.unpin(settings)
    served = load_model(settings, served)
    assert served is not None and served.version == newer


def test_a_request_without_candidates_or_time_ranks_the_candidates_from_training(
    ranker: Ranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = active_user(ranker)
    stored = ranker.model.candidates
    assert stored is not None and user in stored
    kept = ranker.stored(user)
    assert kept is not None
    seen = ranker.inputs.context.history.before(user, int(stored.at.value // 1000)).items
    live = generate_user(ranker.inputs.sources, user, stored.at, ranker.inputs.items, seen)
    assert kept.item_ids.tolist() == live.item_ids.tolist()
    # Stored ones were scored with many users at once: float32 rounds in another last bit.
    np.testing.assert_allclose(kept.scores, live.scores, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(kept.ranks, live.ranks)
    # Without a time the sources are not asked: the stored rows are ranked.
    monkeypatch.setattr(ranker.inputs, "sources", [])
    now = ranker.rank(user, k=5, explain=False)
    assert len(now.items) == 5 and {i for i, _ in now.items} <= set(kept.item_ids)
    assert ranker.rank(user, k=5, at=AT).items == []  # with one, they are
    # The model scores only the shortlist (at least 2k rows): the best by fused rank.
    shortlisted = ranker.settings.model_copy(update={"engram_rank_shortlist": 1})
    monkeypatch.setattr(ranker, "settings", shortlisted)
    short = ranker.rank(user, k=3, explain=False)
    assert {i for i, _ in short.items} <= set(kept.shortlist(6).item_ids)


def test_given_candidates_are_scored_alone_and_ranked_in_the_kept_lists(ranker: Ranker) -> None:
    """With 100 given candidates no source ranks the catalog: each scores those items, and their
    ranks come from the user's lists kept in Redis; the same as generating them with `only`."""
    user = active_user(ranker)
    stored = ranker.model.candidates
    assert stored is not None
    items = ranker.inputs.items
    given = [str(items[i]) for i in np.random.default_rng(0).choice(len(items), 100, False)]
    got = ranker._given(user, stored.at, given)
    assert got is not None
    seen = ranker.inputs.context.history.before(user, int(stored.at.value // 1000)).items
    live = generate_user(ranker.inputs.sources, user, stored.at, items, seen, only=given)
    assert got.item_ids.tolist() == live.item_ids.tolist() == given
    np.testing.assert_allclose(got.scores, live.scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.ranks, live.ranks)
    np.testing.assert_array_equal(got.inside, live.inside)


def test_given_candidates_scored_alone_leave_out_unknown_ids_and_keep_repeats(
    ranker: Ranker,
) -> None:
    user = active_user(ranker)
    stored = ranker.model.candidates
    assert stored is not None
    items = [str(item) for item in ranker.inputs.items[:2]]
    got = ranker._given(user, stored.at, [items[1], "not in the catalog", items[0], items[1]])
    alone = [ranker._given(user, stored.at, [item]) for item in items]
    assert got is not None and all(one is not None for one in alone)
    assert got.item_ids.tolist() == [items[1], items[0], items[1]]
    for row, one in enumerate((alone[1], alone[0], alone[1])):
        assert one is not None
        # float32 cosines of 3 items or 1 may round apart (BLAS): tolerance for the scores
        np.testing.assert_allclose(got.scores[row], one.scores[0], rtol=1e-6)
        np.testing.assert_array_equal(got.ranks[row], one.ranks[0])
        np.testing.assert_array_equal(got.inside[row], one.inside[0])


def test_requests_never_read_the_item_rows_a_refresh_swaps_them(ranker: Ranker) -> None:
    user = active_user(ranker)
    cache = ranker._cached["item_id"]
    for _ in range(3):
        ranker.rank(user, k=3, at=AT, explain=False)
    assert ranker._cached["item_id"] is cache and cache.refreshes == 1  # read when built
    ranker.refresh_items()
    fresh = ranker._cached["item_id"]
    assert fresh is not cache and fresh.refreshes == 1 and fresh.size == cache.size


def test_one_thread_predicts_what_the_default_thread_pool_predicts(ranker: Ranker) -> None:
    user = active_user(ranker)
    at = pd.DatetimeIndex([pd.Timestamp(AT)])
    frame = generate(ranker.inputs.sources, [user], at, ranker.inputs.items).frame
    matrix = ranker.matrix(frame, AT)
    np.testing.assert_array_equal(ranker.score(matrix), ranker.model.booster.predict(matrix))


def test_a_contact_sent_to_the_stream_reaches_the_served_candidates_within_two_seconds(
    ranker: Ranker,
) -> None:
    """The features consumer and the candidates follower both run on the stream; a purchase of
    the user's best candidate leaves their candidates (as a request reads them) in under 2 s."""
    settings = ranker.settings
    client = redis.Redis.from_url(settings.redis_url)
    consumer = Consumer(
        open_context(settings, client, load_layout(settings, settings.redis_url)),
        ConsumerConfig(consumer="test", offline=False, block_ms=20),
    )
    follower = Follower(
        client,
        CandidateStore(client, 2**30),
        lambda _: followed_of(ranker),
        FollowConfig(consumer="test", block_ms=20, version_every_s=3600),
    )
    stop = threading.Event()
    threads = [
        threading.Thread(target=runner.run, args=(stop.is_set,), daemon=True)
        for runner in (consumer, follower)
    ]
    for thread in threads:
        thread.start()
    user = active_user(ranker)
    before = ranker.stored(user)
    assert before is not None  # from training, published when the ranker loaded
    target = str(before.item_ids[np.argmin(np.nan_to_num(before.ranks[:, 0], nan=1e9))])
    now = pd.Timestamp.now(tz="UTC")
    signal_ = {"event_id": f"fresh-{uuid.uuid4().hex}", "user_id": user, "item_id": target}
    signal_ |= {"type": "purchase", "ts": now.isoformat().replace("+00:00", "Z")}
    try:
        sent = time.monotonic()
        produce(client, [signal_])
        after = before
        while time.monotonic() - sent < 2.0:
            after = ranker.stored(user)
            if after is not None and target not in set(after.item_ids):
                break
            time.sleep(0.01)
        waited = time.monotonic() - sent
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        consumer.close()
        client.close()
    assert after is not None and target not in set(after.item_ids), (
        f"unchanged after {waited:.2f} s"
    )
    print(f"candidates changed {waited:.3f} s after the send")
    assert ranker.rank(user, k=5, explain=False).items  # and a request ranks the new ones


def test_a_hung_milvus_while_a_model_loads_keeps_the_one_in_use(
    ranker: Ranker, pausable_milvus: PausableServer
) -> None:
    """A worker booting or swapping models while Milvus hangs keeps what it serves (nothing
    here) after the timeout, instead of dying on the gRPC deadline."""
    pausable_milvus.pause()
    began = time.monotonic()
    assert load_model(ranker.settings, None) is None
    assert time.monotonic() - began < 30
