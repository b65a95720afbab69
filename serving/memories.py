"""A user's memories: list (as of a time), search, and delete one."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request

from memory.records import MEMORY_KINDS
from memory.service import hit_dict, memory_dict
from serving.auth import requires
from serving.errors import ApiError
from serving.extension import engram
from serving.validation import (
    MAX_K,
    MAX_QUERY_CHARS,
    checked_id,
    integer,
    json_object,
    string_list,
    time_value,
)

bp = Blueprint("memories", __name__)


def _kinds(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(MEMORY_KINDS))
    if unknown:
        raise ApiError(
            400,
            f"unknown kinds {unknown}; known: {', '.join(sorted(MEMORY_KINDS))}",
            field="kinds",
            error="invalid_input",
        )
    return value


@bp.get("/v1/users/<user_id>/memories")
@requires("read")
def list_memories(user_id: str) -> Response:
    """The user's memories true at ?as_of= (default now), oldest first; ?kind= repeatable."""
    checked_id(user_id)
    kinds = _kinds(request.args.getlist("kind") or None)
    at = time_value(request.args.get("as_of")) or datetime.now(UTC)
    ext = engram()

    found = ext.memories.call(
        lambda service: (
            service.list(user_id, as_of=at, kinds=kinds) if service.store.exists() else []
        )
    )
    return jsonify({"user_id": user_id, "memories": [memory_dict(m) for m in found]})


@bp.post("/v1/users/<user_id>/memories/search")
@requires("read")
def search_memories(user_id: str) -> Response:
    """The user's k best memories for {"query"}, true at "as_of" (default now)."""
    checked_id(user_id)
    body = json_object()
    query = body.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise ApiError(
            400,
            f"must be a non-empty string of at most {MAX_QUERY_CHARS} characters",
            field="query",
            error="invalid_input",
        )
    k = integer(body.get("k", 10), "k", 1, MAX_K)
    kinds = _kinds(string_list(body.get("kinds"), "kinds"))
    at = time_value(body.get("as_of"))
    hits = engram().memories.call(lambda service: service.search(user_id, query, k, kinds, at))
    return jsonify({"user_id": user_id, "query": query, "memories": [hit_dict(h) for h in hits]})


@bp.delete("/v1/users/<user_id>/memories/<memory_id>")
@requires("write")
def delete_memory(user_id: str, memory_id: str) -> Response:
    """Delete one memory of the user; 404 when the user holds no such memory."""
    checked_id(user_id)
    checked_id(memory_id, "memory_id")
    deleted = engram().memories.call(lambda service: service.forget_memory(user_id, memory_id))
    if not deleted:
        raise ApiError(404, "the user holds no memory with this id", field="memory_id")
    return jsonify({"user_id": user_id, "memory_id": memory_id, "deleted": True})
