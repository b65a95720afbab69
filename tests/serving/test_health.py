"""Liveness, readiness and metrics."""

from __future__ import annotations

import time
from pathlib import Path

from core.settings import Settings
from memory import embed
from serving.app import create_app
from tests.serving.conftest import AppFactory, bearer, signal


def test_healthz_and_readyz(make_app: AppFactory) -> None:
    client = make_app().test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json is not None
    assert ready.json["ready"] is True
    assert ready.json["checks"]["redis"] == {"ok": True}
    assert ready.json["checks"]["milvus"] == {"ok": True}
    assert ready.json["checks"]["model"]["ok"] is False  # no model yet: popularity serves
    assert "down" not in ready.json


def test_metrics_by_route_template_with_stream_lag(make_app: AppFactory) -> None:
    client = make_app().test_client()
    client.get("/v1/users/ana/features", headers=bearer("read"))
    client.get("/v1/users/bob/features")
    client.post(
        "/v1/signals", json=[signal("e1", "ana"), signal("e2", "ana")], headers=bearer("write")
    )
    text = client.get("/metrics").get_data(as_text=True)
    route = 'route="/v1/users/<user_id>/features"'
    assert f'engram_http_request_duration_seconds_count{{method="GET",{route}}} 2.0' in text
    assert f'engram_http_errors_total{{{route},status="401"}} 1.0' in text
    assert f'engram_http_errors_total{{{route},status="404"}} 1.0' in text
    assert "ana" not in text and "bob" not in text  # ids never become labels
    assert "engram_stream_lag 2.0" in text  # no consumer group yet: the stream's length


def test_each_app_has_its_own_registry(make_app: AppFactory) -> None:
    first, second = make_app().test_client(), make_app().test_client()
    first.get("/healthz")
    assert 'route="/healthz"' not in second.get("/metrics").get_data(as_text=True)


def test_readiness_names_a_store_that_is_not_there_and_starts_nothing(
    tmp_path: Path, redis_url: str, minilm: embed.Embedder
) -> None:
    settings = Settings(engram_home=tmp_path / "home", redis_url=redis_url, milvus_uri=None)
    app = create_app(settings, {"ENGRAM_AUTH": False, "ENGRAM_EMBEDDER": minilm})
    client = app.test_client()
    began = time.monotonic()
    ready = client.get("/readyz")
    assert time.monotonic() - began < 1.5
    assert ready.status_code == 503 and ready.json is not None
    assert ready.json["down"] == ["milvus"] and ready.json["checks"]["redis"] == {"ok": True}
    memories = client.get("/v1/users/ana/memories")
    assert memories.status_code == 503 and memories.headers.get("Retry-After") == "1"
    assert not settings.services_dir.exists()  # no Milvus started by the probe or the request
    app.extensions["engram"].close()
