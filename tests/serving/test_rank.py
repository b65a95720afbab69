"""POST /v1/rank: the model when it can, popularity when it cannot, and back by itself."""

from __future__ import annotations

import time
from datetime import datetime

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import UnknownUserError
from pipelines.stream.tombstones import mark_forgotten
from serving.breaker import COOLDOWN_S
from serving.ports import RankResult
from tests.serving.conftest import AppFactory, RedisProcess, bearer, ingest_batch, signal

SIGNALS = [
    signal("e1", "ana", "view", item_id="item-1"),
    signal("e2", "bob", "purchase", item_id="item-2"),
    signal("e3", "bob", "view", item_id="item-3"),
    signal("e4", "cy", "purchase", item_id="item-2"),
]


class RedisScoreRanker:
    """A stand-in for the LightGBM model that, like it, needs Redis: scores from a hash."""

    model_version = "redis-scores-1"

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )

    def rank(
        self,
        user_id: str,
        k: int,
        candidates: list[str] | None = None,
        query: str | None = None,
        at: datetime | None = None,
        explain: bool = True,
    ) -> RankResult:
        if user_id == "stranger":
            raise UnknownUserError(user_id)  # as the model does for a user with no history
        scores = {key.decode(): float(v) for key, v in self.client.hgetall("scores").items()}
        items = candidates if candidates is not None else list(scores)
        ranked = sorted(items, key=lambda item: -scores.get(item, 0.0))[:k]
        return RankResult([(item, scores.get(item, 0.0)) for item in ranked], self.model_version)


def test_no_model_ranks_by_popularity(make_app: AppFactory) -> None:
    client = make_app().test_client()
    read = bearer("read")
    empty = client.post("/v1/rank", json={"user_id": "ana", "k": 3}, headers=read).json
    assert empty == {
        "user_id": "ana",
        "items": [],
        "model_version": "popularity",
        "degraded": True,
        "degraded_reason": "no model",
    }
    ingest_batch(client.application, SIGNALS)
    ranked = client.post("/v1/rank", json={"user_id": "ana", "k": 2}, headers=read).json
    assert ranked is not None
    # item-2 (two purchases) before item-3; item-1 left out: ana has seen it.
    assert [item["item_id"] for item in ranked["items"]] == ["item-2", "item-3"]
    chosen = client.post(
        "/v1/rank",
        json={"user_id": "ana", "k": 5, "candidates": ["item-9", "item-3", "item-2"]},
        headers=read,
    ).json
    assert chosen is not None
    assert [item["item_id"] for item in chosen["items"]] == ["item-2", "item-3", "item-9"]


def test_unknown_users_get_popularity(make_app: AppFactory, redis_url: str) -> None:
    app = make_app(ENGRAM_RANKER=RedisScoreRanker(redis_url))
    ingest_batch(app, SIGNALS)
    client = app.test_client()
    answer = client.post("/v1/rank", json={"user_id": "stranger", "k": 1}, headers=bearer("read"))
    assert answer.json == {
        "user_id": "stranger",
        "items": [{"item_id": "item-2", "score": 1.0}],
        "model_version": "popularity",
        "degraded": True,
        "degraded_reason": "unknown user",
    }


def test_a_forget_elsewhere_drops_the_user_here_before_answering(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app()
    ingest_batch(app, SIGNALS)  # popularity, and what each user saw
    client = app.test_client()

    def ranked(user: str) -> list[str]:
        answer = client.post("/v1/rank", json={"user_id": user, "k": 3}, headers=bearer("read"))
        assert answer.json is not None
        return [item["item_id"] for item in answer.json["items"]]

    assert ranked("ana") == ["item-2", "item-3"]  # item-1 left out: ana saw it
    # Another worker forgets ana after this one loaded its table: no message comes here.
    mark_forgotten(redis.Redis.from_url(redis_url), "ana")
    assert ranked("ana") == ranked("stranger") == ["item-2", "item-1", "item-3"]
    ranking = app.extensions["engram"].ranking
    assert not ranking.popularity.knows("ana")
    # A table loaded after the forget is kept as read (here ana's events are still stored, as
    # for a user who came back after the forget).
    ranking.refresh()
    assert ranked("ana") == ["item-2", "item-3"]


def test_rank_errors(make_app: AppFactory) -> None:
    client = make_app().test_client()
    read = bearer("read")
    for body, field in [
        ({}, "user_id"),
        ({"user_id": "bad id"}, "user_id"),
        ({"user_id": "u", "k": True}, "k"),
        ({"user_id": "u", "candidates": "item-1"}, "candidates"),
        ({"user_id": "u", "candidates": ["ok", "not ok"]}, "candidates[1]"),
        ({"user_id": "u", "context": []}, "context"),
        ({"user_id": "u", "context": {"query": 3}}, "context.query"),
        ({"user_id": "u", "explain": "yes"}, "explain"),
        ({"user_id": "u", "kk": 3}, "kk"),
        ({"kk": 3}, "kk"),  # an unknown field is named first: most often a misspelt known one
        ({"user_id": "u", "context": {"time": "2026-01-01", "place": "x"}}, "context.place"),
        ([], "$"),
    ]:
        answer = client.post("/v1/rank", json=body, headers=read)
        assert answer.status_code == 400 and answer.json is not None, body
        assert answer.json["field"] == field


def test_degraded_while_redis_is_down_and_recovery(
    make_app: AppFactory, stoppable_redis: RedisProcess
) -> None:
    url = stoppable_redis.url
    app = make_app(redis_at=url, ENGRAM_RANKER=RedisScoreRanker(url))
    client = app.test_client()
    read = bearer("read")
    ingest_batch(app, SIGNALS)  # popularity, from the batch snapshot
    sent = client.post("/v1/signals?sync=true", json=SIGNALS, headers=bearer("write"))
    assert sent.status_code == 200  # online features, through the stream step
    redis.Redis.from_url(url).hset("scores", mapping={"item-1": 0.9, "item-3": 0.5})
    body = {"user_id": "ana", "k": 2}

    healthy = client.post("/v1/rank", json=body, headers=read).json
    assert healthy is not None and healthy["degraded"] is False
    assert healthy["model_version"] == "redis-scores-1"
    assert [item["item_id"] for item in healthy["items"]] == ["item-1", "item-3"]

    stoppable_redis.stop()
    started = time.perf_counter()
    degraded = client.post("/v1/rank", json=body, headers=read)
    again = client.post("/v1/rank", json=body, headers=read)  # breaker open: no wait at all
    elapsed = time.perf_counter() - started
    assert degraded.status_code == 200 and again.status_code == 200
    assert degraded.json is not None
    assert degraded.json["degraded"] is True
    assert degraded.json["degraded_reason"] == "redis unavailable"
    assert degraded.json["model_version"] == "popularity"
    assert [item["item_id"] for item in degraded.json["items"]] == ["item-2", "item-3"]
    assert elapsed < 1.0
    features = client.get("/v1/users/ana/features", headers=read)
    assert features.status_code == 503 and features.json is not None
    assert features.json == {"error": "service_unavailable", "detail": "redis is unavailable"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json is not None
    assert ready.json["checks"]["redis"]["ok"] is False
    sent = client.post("/v1/signals", json=[signal("e9", "ana")], headers=bearer("write"))
    assert sent.status_code == 503
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'engram_rank_degraded_total{reason="redis unavailable"} 2.0' in metrics
    assert "engram_stream_lag -1.0" in metrics

    stoppable_redis.start()
    time.sleep(COOLDOWN_S + 0.1)
    recovered = client.post("/v1/rank", json=body, headers=read).json
    assert recovered is not None and recovered["degraded"] is False
    assert recovered["model_version"] == "redis-scores-1"
    assert client.get("/v1/users/ana/features", headers=read).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_slow_redis_degrades_quickly(make_app: AppFactory, stoppable_redis: RedisProcess) -> None:
    url = stoppable_redis.url
    app = make_app(redis_at=url, ENGRAM_RANKER=RedisScoreRanker(url))
    ingest_batch(app, SIGNALS)
    redis.Redis.from_url(url).hset("scores", mapping={"item-1": 0.9})
    client = app.test_client()
    read = bearer("read")
    client.post("/v1/signals?sync=true", json=SIGNALS, headers=bearer("write"))
    assert client.get("/v1/users/ana/features", headers=read).status_code == 200
    body = {"user_id": "ana", "k": 2}
    assert client.post("/v1/rank", json=body, headers=read).json["degraded"] is False  # type: ignore[index]

    redis.Redis.from_url(url).execute_command("CLIENT", "PAUSE", 1500, "ALL")  # Redis stalls
    started = time.perf_counter()
    slow = client.post("/v1/rank", json=body, headers=read).json
    features = client.get("/v1/users/ana/features", headers=read)
    elapsed = time.perf_counter() - started
    assert slow is not None and slow["degraded_reason"] == "redis unavailable"
    assert features.status_code == 503
    assert elapsed < 1.0  # short timeouts, then the open breaker: no waiting on the stall

    time.sleep(1.5 + COOLDOWN_S)
    assert client.post("/v1/rank", json=body, headers=read).json["degraded"] is False  # type: ignore[index]


class RefreshingRanker(RedisScoreRanker):
    """The stand-in with item rows to re-read, as the LightGBM ranker has."""

    item_refresh_seconds = 0.05

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.refreshed: list[str] = []

    def refresh_items(self) -> None:
        import threading

        self.refreshed.append(threading.current_thread().name)


def test_item_rows_are_refreshed_by_the_background_thread_only(
    make_app: AppFactory, redis_url: str
) -> None:
    model = RefreshingRanker(redis_url)
    app = make_app(ENGRAM_RANKER=model)
    client = app.test_client()
    for _ in range(5):
        answer = client.post("/v1/rank", json={"user_id": "ana", "k": 1}, headers=bearer("read"))
        assert answer.status_code == 200
    assert model.refreshed == []  # requests never refresh
    ranking = app.extensions["engram"].ranking
    ranking.start_refresh(every=60.0)
    try:
        deadline = time.monotonic() + 5.0
        while len(model.refreshed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        ranking.stop()
    assert len(model.refreshed) >= 3 and set(model.refreshed) == {"engram-refresh"}
