"""DELETE /v1/users/{user_id}: the user is gone from every store, others are untouched."""

from __future__ import annotations

import json

import redis

from pipelines import dead_letter, duck, event_store
from serving.wiring import SIGNALS_STREAM, STREAM_FIELD
from tests.serving.conftest import AppFactory, bearer, ingest_batch, signal


def test_forgetting_removes_the_user_everywhere(make_app: AppFactory, redis_url: str) -> None:
    app = make_app()
    client = app.test_client()
    body = [
        signal("e1", "ana", "view", item_id="item-1"),
        signal("e2", "ana", "message", text="I am vegetarian.", context={"speaker": "user"}),
        signal("e3", "bob", "view", item_id="item-1"),
        {
            "event_id": "e4",
            "user_id": "ana",
            "ts": "2026-10-01T09:00:00Z",
            "type": "rate",
            "item_id": "item-1",
            "value": 11,
        },
    ]
    sent = client.post("/v1/signals?sync=true", json=body, headers=bearer("write"))
    assert sent.status_code == 200 and sent.json is not None and sent.json["accepted"] == 3
    ingest_batch(app, body[:3])  # the offline store and its feature snapshots too
    read = bearer("read")
    assert client.get("/v1/users/ana/features", headers=read).status_code == 200
    assert client.get("/v1/users/ana/memories", headers=read).json["memories"]  # type: ignore[index]

    answer = client.delete("/v1/users/ana", headers=bearer("admin"))
    assert answer.status_code == 200, answer.json
    removed = answer.json
    assert removed is not None
    assert removed["user_id"] == "ana"
    assert removed["events"] == 2 and removed["stream"] == 2 and removed["dead_letter"] == 1
    assert removed["memories"] >= 2 and removed["online"] == 1 and removed["feature_rows"] >= 1
    assert removed["stream_state"] >= 3  # window state keys and item-1's user set

    settings = app.extensions["engram"].settings
    assert client.get("/v1/users/ana/features", headers=read).status_code == 404
    assert client.get("/v1/users/ana/memories", headers=read).json["memories"] == []  # type: ignore[index]
    events = event_store.scan(duck.connect(settings), settings).fetchall()
    assert {row[1] for row in events} == {"bob"}
    assert "ana" not in dead_letter.read(settings).column("user_id").to_pylist()
    entries = redis.Redis.from_url(redis_url).xrange(SIGNALS_STREAM)
    assert [json.loads(f[STREAM_FIELD.encode()])["user_id"] for _, f in entries] == ["bob"]
    assert client.get("/v1/users/bob/features", headers=read).status_code == 200
    state = redis.Redis.from_url(redis_url)
    assert not state.keys("engram:{stream}:u*:ana")
    assert state.smembers("engram:{stream}:iu:item-1") == {b"bob"}
    # Forgetting again finds nothing left.
    again = client.delete("/v1/users/ana", headers=bearer("admin")).json
    assert again is not None
    assert all(again[name] == 0 for name in again if name not in ("user_id", "logs"))
    assert set(again["logs"].values()) <= {"done", "not_needed"}
