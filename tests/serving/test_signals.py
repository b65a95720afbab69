"""POST /v1/signals: per-record rejections with the batch rules, the stream, and ?sync=true."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from pipelines import dead_letter
from serving.intake import MAX_RECORDS
from serving.wiring import SIGNALS_STREAM, STREAM_FIELD
from tests.serving.conftest import AppFactory, bearer, signal


def test_accepted_records_go_to_the_stream_and_rejections_are_answered(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app()
    body = [
        signal("e1", "u1"),
        {"event_id": "e2", "user_id": "u 1", "ts": "2026-10-01T09:00:00Z", "type": "view"},
        signal("e3", "u1", "rate", value=9),
        "not an object",
        signal("e4", "u2", "search", text="running shoes"),
    ]
    answer = app.test_client().post("/v1/signals", json=body, headers=bearer("write"))
    assert answer.status_code == 202
    assert answer.json is not None
    assert answer.json["accepted"] == 2 and answer.json["rejected"] == 3
    assert [(r["index"], r["field"]) for r in answer.json["rejections"]] == [
        (1, "user_id"),
        (2, "value"),
        (3, "$"),
    ]
    assert answer.json["rejections"][1]["event_id"] == "e3"
    assert "between 0 and 5" in answer.json["rejections"][1]["reason"]
    entries = redis.Redis.from_url(redis_url).xrange(SIGNALS_STREAM)
    sent = [json.loads(fields[STREAM_FIELD.encode()]) for _, fields in entries]
    assert [record["event_id"] for record in sent] == ["e1", "e4"]
    stored = dead_letter.read(app.extensions["engram"].settings)
    assert sorted(stored.column("position").to_pylist()) == [1, 2, 3]
    assert set(stored.column("source").to_pylist()) == {"api"}


def test_ndjson_indices_are_line_numbers(make_app: AppFactory) -> None:
    lines = [json.dumps(signal("e1", "u1")), "", "{broken", json.dumps(signal("e2", "u1"))]
    answer = (
        make_app()
        .test_client()
        .post(
            "/v1/signals",
            data="\n".join(lines),
            content_type="application/x-ndjson",
            headers=bearer("write"),
        )
    )
    assert answer.status_code == 202 and answer.json is not None
    assert answer.json["accepted"] == 2
    assert answer.json["rejections"] == [
        {"index": 2, "event_id": None, "field": "$", "reason": "record is not valid JSON"}
    ]


def test_batch_and_shape_limits(make_app: AppFactory) -> None:
    client = make_app().test_client()
    write = bearer("write")
    too_many = [signal(f"e{i}", "u1") for i in range(MAX_RECORDS + 1)]
    assert client.post("/v1/signals", json=too_many, headers=write).status_code == 413
    not_array = client.post("/v1/signals", json={"event_id": "e1"}, headers=write)
    assert not_array.status_code == 400
    assert client.post("/v1/signals?sync=maybe", json=[], headers=write).status_code == 400
    assert (
        client.post("/v1/signals", data="x", content_type="text/csv", headers=write).status_code
        == 415
    )


def test_sync_makes_features_and_memories_visible_on_return(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    body = [
        signal("e1", "ana", "view", item_id="item-1"),
        signal("e2", "ana", "purchase", item_id="item-2", ts="2026-10-01T09:05:00Z"),
        signal("e3", "bob", "view", item_id="item-2"),
        signal(
            "e4",
            "ana",
            "message",
            text="I am vegetarian.",
            ts="2026-10-01T09:06:00Z",
            context={"speaker": "user", "session_id": "s1"},
        ),
    ]
    answer = client.post("/v1/signals?sync=true", json=body, headers=bearer("write"))
    assert answer.status_code == 200, answer.json
    assert answer.json is not None and answer.json["accepted"] == 4
    assert answer.json["processed"]["new"] == 4
    read = bearer("read")
    features = client.get("/v1/users/ana/features", headers=read)
    assert features.status_code == 200, features.json
    assert features.json is not None and features.json["features"]["events_all"] == 3
    assert features.json["feature_service"] == "ranking"
    memories = client.get("/v1/users/ana/memories", headers=read)
    assert memories.status_code == 200
    assert memories.json is not None
    assert any("vegetarian" in m["text"].lower() for m in memories.json["memories"])
    # Sending them again changes nothing: the stream step knows the event ids.
    again = client.post("/v1/signals?sync=true", json=body, headers=bearer("write")).json
    assert again is not None and again["processed"]["new"] == 0
    assert client.get("/v1/users/nobody/features", headers=read).status_code == 404


def test_the_stream_and_the_aof_hold_signal_text_redacted(
    make_app: AppFactory, redis_url: str
) -> None:
    secrets = ("zed.quux.4472@example.org", "+44 20 7946 0959", "4111 1111 1111 1112")
    text = f"mail {secrets[0]} or call {secrets[1]}, card {secrets[2]}"
    body = [signal("p1", "u1", "search", text=text), signal("p2", "u1", "click", text=text)]
    answer = make_app().test_client().post("/v1/signals", json=body, headers=bearer("write"))
    assert answer.status_code == 202 and answer.json is not None and answer.json["accepted"] == 2
    client = redis.Redis.from_url(redis_url)
    sent = [
        json.loads(fields[STREAM_FIELD.encode()]) for _, fields in client.xrange(SIGNALS_STREAM)
    ]
    assert [record["text"] for record in sent] == ["mail [EMAIL] or call [PHONE], card [CARD]"] * 2
    directory = (
        Path(client.config_get("dir")["dir"]) / client.config_get("appenddirname")["appenddirname"]
    )
    aof = b"".join(path.read_bytes() for path in directory.iterdir() if path.is_file())
    assert b"[EMAIL] or call [PHONE]" in aof
    assert not any(secret.encode() in aof for secret in secrets)
