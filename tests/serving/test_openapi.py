"""/openapi.json is true: every route is described with a readable operationId, a tag and the scope
the server enforces, and fuzzing the real app from the document (schemathesis, positive and
negative cases) finds no 5xx and no answer that breaks its documented status, content type or
schema; nor do the bodies parsers disagree on, sent to every operation that reads one. /docs
works with no internet: the page and every file it loads come from the app."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.conftest import AppFactory, bearer, signal

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
EXAMPLES = 12  # per operation and mode: the whole fuzz stays well under a minute
OPERATIONS = {
    ("post", "/v1/signals"): ("post_signals", "signals", "write"),
    ("get", "/v1/users/{user_id}/features"): ("get_features", "features", "read"),
    ("get", "/v1/users/{user_id}/memories"): ("list_memories", "memories", "read"),
    ("post", "/v1/users/{user_id}/memories/search"): ("search_memories", "memories", "read"),
    ("delete", "/v1/users/{user_id}/memories/{memory_id}"): ("delete_memory", "memories", "write"),
    ("post", "/v1/users/{user_id}/memories"): ("add_memories", "memories", "write"),
    ("get", "/v1/users/{user_id}/memories/{memory_id}"): ("get_memory", "memories", "read"),
    ("patch", "/v1/users/{user_id}/memories/{memory_id}"): ("update_memory", "memories", "write"),
    ("get", "/v1/users/{user_id}/memories/{memory_id}/history"): (
        "memory_history",
        "memories",
        "read",
    ),
    ("post", "/v1/rank"): ("rank", "ranking", "read"),
    ("delete", "/v1/users/{user_id}"): ("forget_user", "users", "admin"),
    ("get", "/healthz"): ("healthz", "service", None),
    ("get", "/readyz"): ("readyz", "service", None),
    ("get", "/metrics"): ("metrics", "service", None),
    ("get", "/openapi.json"): ("openapi", "service", None),
}
# Keys by what they may do: a scope's own key passes, the one below it is refused.
BELOW = {"read": None, "write": "read", "admin": "write"}


def _document(app: Flask) -> dict[str, Any]:
    document = app.test_client().get("/openapi.json").json
    assert document is not None
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def _url(path: str) -> str:
    return path.replace("{user_id}", "u1").replace("{memory_id}", "m1")


def test_every_route_is_an_operation_with_a_readable_id_a_tag_and_its_scope(
    make_app: AppFactory,
) -> None:
    app = make_app()
    document = _document(app)
    assert document["openapi"].startswith("3.1")
    operations = _operations(document)
    assert {
        key: (operation["operationId"], *operation["tags"], operation.get("x-scope"))
        for key, operation in operations.items()
    } == OPERATIONS
    # Every route of the app is described, but for the docs' own pages and files and the
    # inspector's HTML pages (docs/inspector.md).
    routes = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) & METHODS
        if not rule.rule.startswith(("/docs", "/static", "/ui"))
    }
    assert routes == set(operations)
    assert app.test_client().get("/docs/openapi.json").json == document  # the library's own


def _refs(node: Any) -> set[str]:
    """The component names a schema refers to, at any depth."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def test_every_body_model_refuses_unknown_fields(make_app: AppFactory) -> None:
    document = _document(make_app())
    schemas = document["components"]["schemas"]
    bodies = set()
    for operation in _operations(document).values():
        content = operation.get("requestBody", {}).get("content", {})
        bodies |= _refs(content.get("application/json", {}))
    seen: set[str] = set()
    while bodies - seen:
        name = (bodies - seen).pop()
        seen.add(name)
        bodies |= _refs(schemas[name])
    assert seen == {  # signals: the contract's
        "RankRequest",
        "RankContext",
        "SearchRequest",
        "AddMemoriesRequest",
        "NewMemory",
        "MemoryPatch",
    }
    assert all(schemas[name]["additionalProperties"] is False for name in seen)


def test_the_server_enforces_the_scope_the_document_states(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for (method, path), operation in _operations(_document(client.application)).items():
        scope = operation.get("x-scope")
        if scope is None:
            assert "security" not in operation
            continue
        assert operation["security"] == [{"bearerAuth": []}]
        # Refused before the body is read: no body at all is sent.
        assert client.open(_url(path), method=method).status_code == 401, path
        below = BELOW[scope]
        if below is not None:
            answer = client.open(_url(path), method=method, headers=bearer(below))
            assert answer.status_code == 403, path
        answer = client.open(_url(path), method=method, headers=bearer(scope))
        assert answer.status_code not in (401, 403), path


@pytest.fixture
def fuzzed_app(make_app: AppFactory) -> Flask:
    """An app holding a little data, so reads find something as well as nothing."""
    app = make_app()
    body = [
        signal("e1", "ana", "view", item_id="item-1"),
        signal("e2", "ana", "message", text="I am vegetarian.", context={"speaker": "user"}),
    ]
    assert (
        app.test_client()
        .post("/v1/signals?sync=true", json=body, headers=bearer("write"))
        .status_code
        == 200
    )
    return app


MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


ADDED_BY_FUZZ = "fuzz-added"


def _no_sync(case: Any) -> None:
    """?sync=true would rebuild the features on every example: the fixture covers it once.
    Memories are added to one user the forget examples never draw: hypothesis draws the same
    simple ids for every operation, and each forget that finds memories compacts the
    collection (seconds), which made the forget examples 35 s instead of a few."""
    if isinstance(case.query, dict) and "sync" in case.query:
        case.query["sync"] = "false"
    adds = case.method == "POST" and case.path == "/v1/users/{user_id}/memories"
    if adds and isinstance(case.path_parameters, dict):
        case.path_parameters["user_id"] = ADDED_BY_FUZZ


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.value)
def test_fuzzing_finds_no_server_error(fuzzed_app: Flask, mode: Any) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9: operations are driven here.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {f"{m.upper()} {p}" for m, p in _operations(_document(fuzzed_app))}
    # schemathesis leaves out the document's own path.
    assert {operation.label for operation in operations} == described - {"GET /openapi.json"}
    if mode is schemathesis.GenerationMode.NEGATIVE:
        # Only /v1 has parameters and bodies: elsewhere there is nothing to make invalid.
        operations = [operation for operation in operations if operation.path.startswith("/v1")]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: Any) -> None:
            _no_sync(case)
            case.call_and_validate(headers=bearer("admin"), checks=CHECKS)

        fuzz()
    # Every fuzzed operation was answered (the app's own metrics count the requests).
    answered = {
        sample.labels["route"].replace("<", "{").replace(">", "}")
        for sample in fuzzed_app.extensions["engram"].metrics.responses.collect()[0].samples
    }
    assert {operation.path for operation in operations} <= answered


# Bodies that once gave 500s, or that parsers read differently: each a 4xx wherever a body is read
# (or, a signal with a wrong field in a valid body, a rejected record).
HOSTILE_BODIES = {
    "duplicate key": b'{"user_id": "a", "query": "q", "user_id": "b"}',
    "lone surrogate": b'{"user_id": "a", "query": "\\ud800"}',
    "nested 10,000 deep": b'{"user_id": "a", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "NaN": b'{"user_id": "a", "query": "q", "k": NaN}',
    "not UTF-8": b'{"user_id": "\xff"}',
    "huge integer": b'{"user_id": "a", "query": "q", "k": 1' + b"0" * 5000 + b"}",
    "time past pandas": b'{"user_id": "a", "query": "q", "as_of": "9999-12-31T23:59:59-01:00", '
    b'"context": {"time": "9999-12-31T23:59:59-01:00"}}',
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_bodies_are_refused_by_every_operation(make_app: AppFactory, name: str) -> None:
    client = make_app().test_client()
    for (method, path), operation in _operations(_document(client.application)).items():
        if "requestBody" in operation:
            url = _url(path)
            body = HOSTILE_BODIES[name]
            if path == "/v1/signals" and body:
                body = b"[" + body + b"]"  # a batch of one
            answer = client.open(
                url,
                method=method.upper(),
                data=body,
                content_type="application/json",
                headers=bearer("admin"),
            )
            assert str(answer.status_code) in operation["responses"], (method, path)
            assert answer.json is not None
            if answer.status_code == 202:  # signals: a record the body holds is rejected
                assert (answer.json["accepted"], answer.json["rejected"]) == (0, 1), path
            else:
                assert 400 <= answer.status_code < 500, (method, path, answer.data)
                assert {"error", "detail"} <= set(answer.json)


def test_a_key_in_the_query_string_is_a_401_on_every_operation(make_app: AppFactory) -> None:
    client = make_app().test_client()
    for method, path in _operations(_document(client.application)):
        answer = client.open(
            _url(path), method=method.upper(), query_string={"api_key": "k" * 24}, json={}
        )
        assert answer.status_code == 401, (method, path)
        assert "401" in _operations(_document(client.application))[(method, path)]["responses"]


def test_docs_load_from_the_app_alone(make_app: AppFactory) -> None:
    client = make_app().test_client()
    page = client.get("/docs", follow_redirects=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "swagger-ui" in html
    # Every file the page loads is the app's own, and answers.
    assets = re.findall(r'<(?:script|link)[^>]*\b(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3 and not any("//" in asset for asset in assets), assets
    base = page.request.path
    for asset in assets:
        answer = client.get(urljoin(base, asset))
        assert answer.status_code == 200 and len(answer.data) > 1000, asset
    # The page reads the document from the app, and sends it to no online validator.
    assert "validatorUrl" in html and client.get(urljoin(base, "openapi.json")).json
