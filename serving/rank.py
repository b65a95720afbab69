"""POST /v1/rank: the k best items for a user, from the model or, degraded, from popularity."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from serving.auth import requires
from serving.errors import ApiError
from serving.extension import engram
from serving.validation import (
    MAX_CANDIDATES,
    MAX_K,
    MAX_QUERY_CHARS,
    checked_id,
    integer,
    json_object,
    time_value,
)

bp = Blueprint("rank", __name__)


def _candidates(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_CANDIDATES:
        raise ApiError(
            400,
            f"must be a list of at most {MAX_CANDIDATES} item ids",
            field="candidates",
            error="invalid_input",
        )
    for item in value:
        if not isinstance(item, str):
            raise ApiError(
                400, "item ids must be strings", field="candidates", error="invalid_input"
            )
        checked_id(item, "candidates")
    return value


@bp.post("/v1/rank")
@requires("read")
def rank() -> Response:
    """{"user_id", "k", "candidates"?, "context"?: {"query"?, "time"?}, "explain"?} -> ranked
    items with their reasons (sources; with explain, the top feature contributions too)."""
    body = json_object()
    user_id = body.get("user_id")
    if not isinstance(user_id, str):
        raise ApiError(400, "must be a string", field="user_id", error="invalid_input")
    checked_id(user_id)
    k = integer(body.get("k", 10), "k", 1, MAX_K)
    candidates = _candidates(body.get("candidates"))
    context = body.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise ApiError(400, "must be an object", field="context", error="invalid_input")
    query = context.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY_CHARS):
        raise ApiError(
            400,
            f"must be a string of at most {MAX_QUERY_CHARS} characters",
            field="context.query",
            error="invalid_input",
        )
    at = time_value(context.get("time"), "context.time")
    explain = body.get("explain", False)
    if not isinstance(explain, bool):
        raise ApiError(400, "must be true or false", field="explain", error="invalid_input")
    ext = engram()
    ranked, reason = ext.ranking.rank(user_id, k, candidates, query, at, explain)
    if reason is not None:
        ext.metrics.degraded.labels(reason).inc()
    reasons = getattr(ranked, "reasons", None) or {}  # item_id -> why (the model's)
    items = []
    for item_id, score in ranked.items:
        item: dict[str, Any] = {"item_id": item_id, "score": float(score)}
        if item_id in reasons:
            item["reasons"] = reasons[item_id]
        items.append(item)
    return jsonify(
        {
            "user_id": user_id,
            "items": items,
            "model_version": ranked.model_version,
            "degraded": reason is not None,
            "degraded_reason": reason,
        }
    )
