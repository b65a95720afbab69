"""A user's memories over HTTP: list as of a time, search, delete one."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Flask

from memory.extract import TextSignal
from tests.conftest import PausableServer
from tests.serving.conftest import AppFactory, bearer

T1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
T2 = datetime(2026, 6, 1, 9, tzinfo=UTC)


def _seed(app: Flask) -> None:
    says = [
        ("m1", T1, "I live in Boston."),
        ("m2", T1, "I am vegetarian."),
        ("m3", T2, "I just moved to Seattle."),
    ]
    app.extensions["engram"].memories.get().remember(
        [
            TextSignal(
                event_id=event_id,
                user_id="ana",
                ts=at,
                type="message",
                text=text,
                speaker="user",
                session_id=f"s-{at.date()}",
            )
            for event_id, at, text in says
        ]
    )


def test_list_search_and_delete(make_app: AppFactory) -> None:
    app = make_app()
    _seed(app)
    client = app.test_client()
    read = bearer("read")

    now = client.get("/v1/users/ana/memories?kind=attribute&kind=life_event", headers=read)
    assert now.status_code == 200 and now.json is not None
    texts = [m["text"] for m in now.json["memories"]]
    assert any("Seattle" in t for t in texts) and not any("Boston" in t for t in texts)
    before = client.get(
        "/v1/users/ana/memories?kind=attribute&kind=life_event&as_of=2026-04-01T00:00:00Z",
        headers=read,
    )
    assert before.json is not None
    assert any("Boston" in m["text"] for m in before.json["memories"])

    found = client.post(
        "/v1/users/ana/memories/search",
        json={"query": "where do they live", "k": 1, "kinds": ["attribute", "life_event"]},
        headers=read,
    )
    assert found.status_code == 200 and found.json is not None
    [hit] = found.json["memories"]
    assert "Seattle" in hit["text"] and hit["score"] > 0

    listed = client.get("/v1/users/ana/memories", headers=read).json
    assert listed is not None
    vegetarian = next(m for m in listed["memories"] if "vegetarian" in m["text"].lower())
    path = f"/v1/users/ana/memories/{vegetarian['memory_id']}"
    assert client.delete(path, headers=read).status_code == 403
    assert client.delete(path, headers=bearer("write")).status_code == 200
    again = client.delete(path, headers=bearer("write"))
    assert again.status_code == 404 and again.json is not None
    assert again.json["field"] == "memory_id"
    # Someone else's memory id is not found for this user.
    assert (
        client.delete(
            f"/v1/users/bob/memories/{listed['memories'][0]['memory_id']}", headers=bearer("write")
        ).status_code
        == 404
    )


def test_memory_errors(make_app: AppFactory) -> None:
    client = make_app().test_client()
    read = bearer("read")
    search = "/v1/users/ana/memories/search"
    cases = [
        ({"query": ""}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "kinds": ["mood"]}, "kinds[0]"),
        ({"query": "   "}, "query"),
        ({"query": "x", "kind": ["attribute"]}, "kind"),  # unknown: the body's field is `kinds`
        ({"query": "x", "as_of": "2026-01-01"}, "as_of"),
        ({"k": 3}, "query"),
    ]
    for body, field in cases:
        answer = client.post(search, json=body, headers=read)
        assert answer.status_code == 400 and answer.json is not None, body
        assert answer.json["field"] == field
    bad_kind = client.get("/v1/users/ana/memories?kind=attribute&kind=mood", headers=read)
    assert bad_kind.status_code == 400 and bad_kind.json is not None
    assert bad_kind.json["field"] == "kind[1]"
    # A query parameter no route takes is ignored, as a proxy's or a cache-buster's would be.
    assert client.get("/v1/users/ana/memories?page=2", headers=read).status_code == 200
    assert client.get("/v1/users/ana/memories?as_of=soon", headers=read).status_code == 400
    assert client.get("/v1/users/ana/memories", headers=read).json == {
        "user_id": "ana",
        "memories": [],
    }


def test_a_hung_milvus_answers_503_after_the_timeout_then_recovers(
    make_app: AppFactory, pausable_milvus: PausableServer
) -> None:
    """A user whose index the worker keeps (unchanged, per their version number in Redis) is
    answered without Milvus; one it must load from Milvus gets 503 after the timeout."""
    app = make_app()
    _seed(app)
    client = app.test_client()
    search = {"query": "where do they live", "k": 1}
    kept, loaded = "/v1/users/ana/memories/search", "/v1/users/bo/memories/search"
    assert client.post(kept, json=search, headers=bearer("read")).status_code == 200
    pausable_milvus.pause()
    assert client.post(kept, json=search, headers=bearer("read")).status_code == 200
    began = time.monotonic()
    hung = client.post(loaded, json=search, headers=bearer("read"))
    assert hung.status_code == 503 and hung.headers.get("Retry-After") == "1"
    assert time.monotonic() - began < 5  # ENGRAM_MILVUS_TIMEOUT_MS (2 s), not the hang
    pausable_milvus.resume()
    deadline = time.monotonic() + 10  # the breaker lets a request through again after 2 s
    while client.post(loaded, json=search, headers=bearer("read")).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
