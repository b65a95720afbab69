"""Every error is JSON {"error", "field"?, "detail"} and no trace reaches a client."""

from __future__ import annotations

from tests.serving.conftest import AppFactory, bearer


def test_unknown_route_and_method_are_json(make_app: AppFactory) -> None:
    client = make_app().test_client()
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json is not None
    assert set(missing.json) == {"error", "detail"}
    wrong = client.put("/v1/rank", headers=bearer("read"))
    assert wrong.status_code == 405 and wrong.json is not None
    assert wrong.json["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_bodies_are_size_limited(make_app: AppFactory) -> None:
    app = make_app()
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = b"[" + b" " * limit + b"]"
    answer = app.test_client().post(
        "/v1/signals", data=big, content_type="application/json", headers=bearer("write")
    )
    assert answer.status_code == 413 and answer.json is not None
    assert answer.json["error"] == "payload_too_large"


def test_bad_bodies_name_the_field(make_app: AppFactory) -> None:
    client = make_app().test_client()
    read = bearer("read")
    not_json = client.post("/v1/rank", data="{", content_type="application/json", headers=read)
    assert not_json.status_code == 400 and not_json.json is not None
    assert not_json.json["field"] == "$"
    text = client.post("/v1/rank", data="x", content_type="text/plain", headers=read)
    assert text.status_code == 415
    bad_k = client.post("/v1/rank", json={"user_id": "u1", "k": 0}, headers=read)
    assert bad_k.status_code == 400 and bad_k.json is not None and bad_k.json["field"] == "k"
    bad_time = client.post(
        "/v1/rank", json={"user_id": "u1", "context": {"time": "yesterday"}}, headers=read
    )
    assert bad_time.json is not None and bad_time.json["field"] == "context.time"


def test_user_ids_follow_the_documented_pattern(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for bad in ["a b", "x" * 129, "é", "a'b"]:
        answer = client.get(f"/v1/users/{bad}/features", headers=bearer("read"))
        assert answer.status_code == 400, bad
        assert answer.json is not None and answer.json["field"] == "user_id"


def test_unexpected_errors_give_no_trace(make_app: AppFactory) -> None:
    app = make_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals at /srv/engram/app.py line 42")

    answer = app.test_client().get("/boom")
    assert answer.status_code == 500
    assert answer.json == {"error": "internal", "detail": "internal error"}
    assert b"secret" not in answer.data and b"Traceback" not in answer.data
