"""Liveness, readiness, metrics, the API description and its docs; none of them needs a key."""

from __future__ import annotations

from typing import Any, cast

import redis
from flask import Response, current_app, jsonify, redirect
from flask_openapi3 import APIBlueprint, OpenAPI
from werkzeug.wrappers import Response as WerkzeugResponse

from core.errors import ServiceUnavailableError
from serving.answers import Health, Ready
from serving.extension import Engram, engram
from serving.spec import DOCS_PREFIX, SWAGGER_PAGE, operation
from serving.wiring import SIGNALS_STREAM

bp = APIBlueprint("health", __name__)
PROBE_TIMEOUT_S = 0.5  # Milvus's answer to /readyz; Redis's is ENGRAM_STORE_TIMEOUT_MS
_TEXT = {"description": "Text exposition format.", "content": {"text/plain": {}}}
_DOCUMENT = {"description": "OpenAPI 3.1.", "content": {"application/json": {}}}


@bp.get("/healthz", **operation("healthz", "service", answers={200: Health}))
def healthz() -> Response:
    """The process answers."""
    return jsonify({"status": "ok"})


def _redis(ext: Engram) -> dict[str, Any]:
    try:
        ext.redis.ping()
    except redis.RedisError as error:
        ext.redis_breaker.failure(str(error))
        return {"ok": False, "detail": "no answer"}
    ext.redis_breaker.success()
    return {"ok": True}


def _milvus(ext: Engram) -> dict[str, Any]:
    timeout_s = min(PROBE_TIMEOUT_S, ext.settings.engram_milvus_timeout_ms / 1000)
    try:
        ext.memories.ping(timeout_s)
    except ServiceUnavailableError:
        return {"ok": False, "detail": "no answer"}
    return {"ok": True}


def _model(ext: Engram) -> dict[str, Any]:
    model = ext.ranking.model
    if model is None:
        return {"ok": False, "detail": "no model: ranking by popularity"}
    return {"ok": True, "version": getattr(model, "version", None)}


@bp.get(
    "/readyz",
    **operation(
        "readyz",
        "service",
        answers={200: Ready, 503: Ready},
        description="200 when Redis and Milvus answer, each asked with a short timeout (so this "
        "answers in about a second at worst); 503 naming the stores that do not. The model is "
        "reported, not required (popularity serves without it). Starts nothing.",
    ),
)
def readyz() -> tuple[Response, int]:
    """Readiness: Redis, Milvus, the model."""
    ext = engram()
    checks = {"redis": _redis(ext), "milvus": _milvus(ext), "model": _model(ext)}
    down = [store for store in ("redis", "milvus") if not checks[store]["ok"]]
    answer: dict[str, Any] = {"ready": not down, "checks": checks}
    if down:
        answer["down"] = down
    return jsonify(answer), 503 if down else 200


def _stream_lag(ext: Engram) -> int | None:
    """Entries no consumer group has read yet; the stream's length when there is no group."""
    if not ext.redis_breaker.closed:
        return None
    try:
        groups = cast(list[dict[str, Any]], ext.redis.xinfo_groups(SIGNALS_STREAM))
        if not groups:
            return cast(int, ext.redis.xlen(SIGNALS_STREAM))
        return max(int(group.get("lag") or 0) for group in groups)
    except redis.ResponseError:
        return 0  # no stream yet
    except (redis.ConnectionError, redis.TimeoutError):
        return None


@bp.get("/metrics", **operation("metrics", "service", answers={200: _TEXT}))
def metrics() -> Response:
    """Prometheus metrics, in the text format."""
    ext = engram()
    return ext.metrics.exposition(lambda: _stream_lag(ext))


@bp.get("/openapi.json", **operation("openapi", "service", answers={200: _DOCUMENT}))
def openapi() -> Response:
    """This document: the OpenAPI 3.1 description of the API."""
    return jsonify(cast(OpenAPI, current_app).api_doc)


@bp.get(DOCS_PREFIX, doc_ui=False)
def docs() -> WerkzeugResponse:
    """Interactive docs (Swagger UI), served by the app with all its files."""
    return redirect(SWAGGER_PAGE)
