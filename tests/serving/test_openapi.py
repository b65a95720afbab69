"""/openapi.json is true: every route is described with its scope, and fuzzing the real app from
the document (schemathesis, positive and negative cases) finds no 5xx and no answer that breaks
its documented status, content type or schema; nor do the bodies parsers disagree on, sent to
every operation that reads one."""

from __future__ import annotations

from typing import Any

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

from serving.openapi import spec
from tests.serving.conftest import AppFactory, bearer, signal

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
EXAMPLES = 12  # per operation and mode: the whole fuzz stays well under a minute


def _routes(app: Flask) -> dict[tuple[str, str], Any]:
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) & METHODS:
            routes[(path, method.lower())] = app.view_functions[rule.endpoint]
    return routes


def test_every_route_is_in_the_document_with_its_scope(make_app: AppFactory) -> None:
    app = make_app()
    document = app.test_client().get("/openapi.json").json
    assert document == spec()
    described = {
        (path, method): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    routes = _routes(app)
    assert set(routes) == set(described)
    for key, view in routes.items():
        scope = getattr(view, "required_scope", None)
        assert described[key].get("x-scope") == scope, key
        assert bool(described[key]["security"]) == (scope is not None), key


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


def _no_sync(case: Any) -> None:
    """?sync=true would rebuild the features on every example: the fixture covers it once."""
    if isinstance(case.query, dict) and "sync" in case.query:
        case.query["sync"] = "false"


@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.value)
def test_fuzzing_finds_no_server_error(fuzzed_app: Flask, mode: Any) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9: operations are driven here.
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    described = {f"{m.upper()} {p}" for p, ops in spec()["paths"].items() for m in ops}
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
    for path, operations in spec()["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            url = path.replace("{user_id}", "u1").replace("{memory_id}", "m1")
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
    for path, operations in spec()["paths"].items():
        for method in operations:
            url = path.replace("{user_id}", "u1").replace("{memory_id}", "m1")
            answer = client.open(
                url, method=method.upper(), query_string={"api_key": "k" * 24}, json={}
            )
            assert answer.status_code == 401, (method, path)
