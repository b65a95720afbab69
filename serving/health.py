"""Liveness, readiness, metrics and the API description; none of them needs a key."""

from __future__ import annotations

from typing import Any, cast

import redis
from flask import Blueprint, Response, jsonify

from core.errors import ServiceUnavailableError
from serving.extension import Engram, engram
from serving.openapi import spec
from serving.wiring import SIGNALS_STREAM

bp = Blueprint("health", __name__)
PROBE_TIMEOUT_S = 0.5  # Milvus's answer to /readyz; Redis's is ENGRAM_STORE_TIMEOUT_MS


@bp.get("/healthz")
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


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when Redis and Milvus answer, each asked with a short timeout (so this answers in
    about a second at worst); 503 naming the stores that do not. The model is reported, not
    required (popularity serves without it). Starts nothing."""
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


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    ext = engram()
    return ext.metrics.exposition(lambda: _stream_lag(ext))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of this API."""
    return jsonify(spec())
