"""The memory API an application writes to: add memories, correct one and read its history,
scopes, supersession of an added fact by an extracted one, and forget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from tests.serving.conftest import AppFactory, bearer, signal

READ, WRITE, ADMIN = bearer("read"), bearer("write"), bearer("admin")
NOW = datetime.now(UTC).replace(microsecond=0)


def _at(delta: timedelta) -> str:
    return (NOW + delta).isoformat().replace("+00:00", "Z")


def _add(client: FlaskClient, user: str, *memories: dict[str, Any]) -> list[str]:
    answer = client.post(f"/v1/users/{user}/memories", json={"memories": memories}, headers=WRITE)
    assert answer.status_code == 201, answer.json
    assert answer.json is not None and answer.json["user_id"] == user
    ids: list[str] = answer.json["memory_ids"]
    return ids


def _listed(client: FlaskClient, path: str) -> list[dict[str, Any]]:
    answer = client.get(path, headers=READ)
    assert answer.status_code == 200, answer.json
    assert answer.json is not None
    memories: list[dict[str, Any]] = answer.json["memories"]
    return memories


def test_added_memories_are_deduplicated_scoped_and_searchable(make_app: AppFactory) -> None:
    client = make_app().test_client()
    boston, vegetarian, again, window = _add(
        client,
        "ana",
        {"text": "Lives in Boston", "valid_from": _at(-timedelta(days=30))},
        {"text": "I am vegetarian", "kind": "attribute"},
        {"text": "lives in  Boston"},  # the same fact again: one memory
        {"text": "Prefers window seats", "scope": "travel-agent"},
    )
    assert again == boston and len({boston, vegetarian, window}) == 3
    memories = {m["memory_id"]: m for m in _listed(client, "/v1/users/ana/memories")}
    assert set(memories) == {boston, vegetarian, window}
    home = memories[boston]
    assert (home["kind"], home["slot"], home["value"]) == ("attribute", "location", "Boston")
    assert home["text"] == "Lives in Boston" and home["scope"] is None
    assert len(home["source_event_ids"]) == 2  # two statements, one memory
    assert all(source.startswith("added:") for source in home["source_event_ids"])
    assert memories[window]["kind"] == "preference" and memories[window]["scope"] == "travel-agent"
    assert memories[vegetarian]["slot"] == "diet"

    scoped = _listed(client, "/v1/users/ana/memories?scope=travel-agent")
    assert [m["memory_id"] for m in scoped] == [window]
    found = client.post(
        "/v1/users/ana/memories/search",
        json={"query": "where does she live", "k": 3, "scope": "travel-agent"},
        headers=READ,
    ).json
    assert found is not None and [hit["memory_id"] for hit in found["memories"]] == [window]
    everywhere = client.post(
        "/v1/users/ana/memories/search", json={"query": "where does she live", "k": 1}, headers=READ
    ).json
    assert everywhere is not None and everywhere["memories"][0]["memory_id"] == boston
    one = client.get(f"/v1/users/ana/memories/{boston}", headers=READ)
    assert one.status_code == 200 and one.json == home
    assert client.get(f"/v1/users/bob/memories/{boston}", headers=READ).status_code == 404

    refused = [
        ({"memories": []}, "memories"),
        ({"memories": [{"text": "  "}]}, "memories[0].text"),
        ({"memories": [{"text": "x", "kind": "mood"}]}, "memories[0].kind"),
        ({"memories": [{"text": "x", "scope": "a b"}]}, "memories[0].scope"),
        ({"memories": [{"text": "x", "valid_from": "yesterday"}]}, "memories[0].valid_from"),
        ({"memories": [{"text": "x", "confidence": 1}]}, "memories[0].confidence"),
    ]
    for body, field in refused:
        answer = client.post("/v1/users/ana/memories", json=body, headers=WRITE)
        assert answer.status_code == 400 and answer.json is not None, body
        assert answer.json["field"] == field
    assert (
        client.post(
            "/v1/users/ana/memories", json={"memories": [{"text": "x"}]}, headers=READ
        ).status_code
        == 403
    )


def test_an_added_fact_is_superseded_by_a_later_extracted_one(make_app: AppFactory) -> None:
    client = make_app().test_client()
    [boston] = _add(client, "ben", {"text": "Lives in Boston", "valid_from": _at(-timedelta(90))})
    moved = signal(
        "ben-e1", "ben", "message", ts=_at(-timedelta(days=1)), text="I just moved to Seattle."
    )
    sent = client.post("/v1/signals?sync=true", json=[moved], headers=WRITE)
    assert sent.status_code == 200, sent.json

    now = _listed(client, "/v1/users/ben/memories?kind=attribute&kind=life_event")
    assert [m["text"] for m in now] == ["Moved to Seattle"]
    old = client.get(f"/v1/users/ben/memories/{boston}", headers=READ).json
    assert old is not None and old["superseded_by"] == now[0]["memory_id"]
    assert old["valid_to"] == now[0]["valid_from"]
    week_ago = _listed(client, f"/v1/users/ben/memories?kind=attribute&as_of={_at(-timedelta(7))}")
    assert week_ago == []  # added today: not known a week ago (two clocks, docs/memory.md)


def test_a_correction_keeps_the_old_version_in_history(make_app: AppFactory) -> None:
    client = make_app().test_client()
    [memory_id] = _add(client, "cy", {"text": "Works at Acme", "valid_from": _at(-timedelta(60))})
    path = f"/v1/users/cy/memories/{memory_id}"

    fixed = client.patch(path, json={"text": "Works at Globex"}, headers=WRITE)
    assert fixed.status_code == 200 and fixed.json is not None
    assert (fixed.json["memory_id"], fixed.json["text"]) == (memory_id, "Works at Globex")
    assert (fixed.json["slot"], fixed.json["value"]) == ("employer", "Globex")
    # The earlier version is history, never a memory of its own: not listed, not searched.
    assert [m["text"] for m in _listed(client, "/v1/users/cy/memories")] == ["Works at Globex"]
    found = client.post("/v1/users/cy/memories/search", json={"query": "Acme"}, headers=READ).json
    assert found is not None and [hit["text"] for hit in found["memories"]] == ["Works at Globex"]
    ended = client.patch(path, json={"valid_to": _at(-timedelta(days=1))}, headers=WRITE).json
    assert ended is not None and ended["valid_to"] == _at(-timedelta(days=1))
    assert _listed(client, "/v1/users/cy/memories") == []  # no longer holds

    history = client.get(f"{path}/history", headers=READ)
    assert history.status_code == 200 and history.json is not None
    versions = history.json["versions"]
    assert [(v["version"], v["text"], v["valid_to"]) for v in versions] == [
        (1, "Works at Acme", None),
        (2, "Works at Globex", None),
        (3, "Works at Globex", _at(-timedelta(days=1))),
    ]
    assert versions[0]["replaced_at"] is not None and versions[-1]["replaced_at"] is None
    assert all(v["memory_id"] == memory_id for v in versions)

    cases = [
        ({}, "$"),
        ({"text": None}, "text"),
        ({"valid_from": _at(timedelta(days=1)), "valid_to": _at(-timedelta(days=3))}, "valid_to"),
        ({"kind": "preference"}, "kind"),
    ]
    for body, field in cases:
        answer = client.patch(path, json=body, headers=WRITE)
        assert answer.status_code == 400 and answer.json is not None, body
        assert answer.json["field"] == field
    missing = client.patch("/v1/users/cy/memories/m-none", json={"text": "x"}, headers=WRITE)
    assert missing.status_code == 404
    assert client.get("/v1/users/cy/memories/m-none/history", headers=READ).status_code == 404

    reopened = client.patch(path, json={"valid_to": None}, headers=WRITE).json
    assert reopened is not None and reopened["valid_to"] is None
    assert client.delete(path, headers=WRITE).status_code == 200
    assert client.get(f"{path}/history", headers=READ).status_code == 404


def test_forget_removes_added_memories_and_their_history(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    ids = _add(
        client, "dee", {"text": "Has a dog named Rex"}, {"text": "Likes opera", "scope": "s1"}
    )
    client.patch(f"/v1/users/dee/memories/{ids[0]}", json={"text": "Has a cat"}, headers=WRITE)
    store = app.extensions["engram"].memories.get().store
    assert store.count("dee") == 3  # two memories and one earlier version

    forgotten = client.delete("/v1/users/dee", headers=ADMIN)
    assert forgotten.status_code == 200 and forgotten.json is not None
    assert forgotten.json["memories"] == 3
    assert store.count("dee") == 0
    assert _listed(client, "/v1/users/dee/memories") == []
    assert client.get(f"/v1/users/dee/memories/{ids[0]}/history", headers=READ).status_code == 404
