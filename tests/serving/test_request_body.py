"""Bodies, for every route: whole and within the limit or refused whole; JSON read strictly, so
no body holds a duplicate key, a lone surrogate or nesting too deep; times within range.

Chunked bodies meet the app here as a WSGI server hands them on (a stream it ends itself,
`wsgi.input_terminated`); tests/serving/test_worker.py sends them to real gunicorn.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from pipelines import dead_letter
from serving.wiring import SIGNALS_STREAM
from tests.serving.conftest import AppFactory, bearer, signal

LIMIT = 64 * 1024


def chunked(app: Flask, path: str, body: bytes, content_type: str) -> TestResponse:
    """POST a body of no stated length, as gunicorn passes on Transfer-Encoding: chunked."""
    return app.test_client().post(
        path,
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers=bearer("admin"),
        environ_overrides={"wsgi.input_terminated": True},
    )


def ndjson(records: list[Any]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def error(answer: TestResponse) -> tuple[int, str | None, str]:
    assert answer.json is not None, answer.data
    return answer.status_code, answer.json.get("field"), answer.json["error"]


def test_a_body_of_no_stated_length_is_read_whole_or_refused_whole(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app(MAX_CONTENT_LENGTH=LIMIT)
    records = [signal(f"e{i}", "u1", "search", text="x" * 500) for i in range(200)]
    body = ndjson(records)
    assert len(body) > LIMIT
    over = chunked(app, "/v1/signals", body, "application/x-ndjson")
    assert error(over) == (413, None, "payload_too_large")
    fits = len(ndjson(records[:100]))
    whole = chunked(app, "/v1/signals", body[:fits], "application/x-ndjson")
    assert whole.status_code == 202 and whole.json is not None
    assert (whole.json["accepted"], whole.json["rejected"]) == (100, 0)
    # Nothing of the refused body went anywhere.
    assert redis.Redis.from_url(redis_url).xlen(SIGNALS_STREAM) == 100
    assert dead_letter.read(app.extensions["engram"].settings).num_rows == 0


@pytest.mark.parametrize("extra", [0, 1])
def test_the_limit_is_exact(make_app: AppFactory, extra: int) -> None:
    app = make_app(MAX_CONTENT_LENGTH=LIMIT)
    body = b"[" + b" " * (LIMIT - 2 + extra) + b"]"
    answer = chunked(app, "/v1/signals", body, "application/json")
    assert answer.status_code == (202 if extra == 0 else 413)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/rank", '{"user_id": "a", "k": 3, "user_id": "b"}', "user_id"),
        ("/v1/rank", '{"user_id": "a", "context": {"query": "x", "query": "y"}}', "context.query"),
        ("/v1/users/a/memories/search", '{"query": "x", "query": "y"}', "query"),
        ("/v1/signals", '[{"event_id": "e1"}, {"user_id": "a", "user_id": "b"}]', "$[1].user_id"),
    ],
)
def test_a_key_named_twice_is_a_400_naming_it(
    make_app: AppFactory, redis_url: str, path: str, body: str, field: str
) -> None:
    answer = (
        make_app()
        .test_client()
        .post(path, data=body, content_type="application/json", headers=bearer("admin"))
    )
    assert error(answer) == (400, field, "invalid_input")
    assert answer.json is not None and "duplicate key" in answer.json["detail"]
    assert redis.Redis.from_url(redis_url).xlen(SIGNALS_STREAM) == 0


def test_an_ndjson_signal_naming_a_key_twice_is_rejected_and_credited_to_no_one(
    make_app: AppFactory, redis_url: str
) -> None:
    app = make_app()
    twice = json.dumps(signal("e2", "ana"))[:-1] + ', "user_id": "bob"}'
    body = "\n".join([json.dumps(signal("e1", "ana")), twice])
    answer = app.test_client().post(
        "/v1/signals", data=body, content_type="application/x-ndjson", headers=bearer("write")
    )
    assert answer.status_code == 202 and answer.json is not None
    assert answer.json["rejections"] == [
        {
            "index": 1,
            "event_id": None,
            "field": "$",
            "reason": "duplicate key 'user_id': a JSON object names each key once",
        }
    ]
    assert redis.Redis.from_url(redis_url).xlen(SIGNALS_STREAM) == 1
    settings = app.extensions["engram"].settings
    assert dead_letter.read(settings).column("user_id").to_pylist() == [None]
    assert dead_letter.forget_user(settings, "bob") == 1  # found by either id


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/rank", '{"user_id": "a", "context": {"query": "\\ud800"}}', "context.query"),
        ("/v1/users/a/memories/search", '{"query": "x\\udfff"}', "query"),
        ("/v1/signals", json.dumps([signal("e1", "a", "search", text="\ud800")]), "$[0].text"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(
    make_app: AppFactory, path: str, body: str, field: str
) -> None:
    answer = (
        make_app()
        .test_client()
        .post(path, data=body, content_type="application/json", headers=bearer("admin"))
    )
    assert error(answer) == (400, field, "invalid_input")


@pytest.mark.parametrize("path", ["/v1/rank", "/v1/users/a/memories/search", "/v1/signals"])
def test_a_body_nested_ten_thousand_deep_is_a_400(make_app: AppFactory, path: str) -> None:
    body = '{"user_id": "a", "query": "x", "deep": ' + "[" * 10_000 + "]" * 10_000 + "}"
    if path == "/v1/signals":
        body = f"[{body}]"
    answer = (
        make_app()
        .test_client()
        .post(path, data=body, content_type="application/json", headers=bearer("admin"))
    )
    assert error(answer) == (400, "$", "invalid_input")


def test_an_ndjson_signal_nested_too_deep_is_rejected(make_app: AppFactory) -> None:
    def nested(event_id: str, levels: int) -> str:
        record = json.dumps(signal(event_id, "a"))[:-1]
        return record + ', "context": ' + '{"a": ' * levels + "1" + "}" * (levels + 1)

    lines = [nested("e1", 10_000), nested("e2", 40)]
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
    assert [(r["field"], r["reason"]) for r in answer.json["rejections"]] == [
        ("$", "record is nested too deeply"),
        ("context", "context is nested deeper than 32 levels"),
    ]


@pytest.mark.parametrize(
    "time",
    [
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "1677-09-21T00:00:00Z",  # before pandas' first nanosecond timestamp
        "2262-04-12T00:00:00Z",  # after its last
        "2100-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ],
)
def test_times_outside_the_contract_range_are_a_400_naming_the_field(
    make_app: AppFactory, time: str
) -> None:
    client = make_app().test_client()
    read = bearer("read")
    ranked = client.post("/v1/rank", json={"user_id": "a", "context": {"time": time}}, headers=read)
    assert error(ranked) == (400, "context.time", "invalid_input")
    searched = client.post(
        "/v1/users/a/memories/search", json={"query": "x", "as_of": time}, headers=read
    )
    assert error(searched) == (400, "as_of", "invalid_input")
    listed = client.get("/v1/users/a/memories", query_string={"as_of": time}, headers=read)
    assert error(listed) == (400, "as_of", "invalid_input")


def test_times_at_the_ends_of_the_range_are_taken(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for time in ("1970-01-01T00:00:00Z", "2099-12-31T23:59:59+00:00"):
        body = {"user_id": "a", "context": {"time": time}}
        assert client.post("/v1/rank", json=body, headers=bearer("read")).status_code == 200
