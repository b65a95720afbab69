"""A user's memories: list (as of a time), search, and delete one."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint

from memory.service import hit_dict, memory_dict
from serving.answers import MemoryDeleted, MemoryList, SearchAnswer
from serving.bodies import MemoriesQuery, MemoryPath, SearchRequest, UserPath
from serving.errors import ApiError
from serving.extension import engram
from serving.spec import operation

bp = APIBlueprint("memories", __name__)


@bp.get(
    "/v1/users/<user_id>/memories",
    **operation(
        "list_memories", "memories", scope="read", answers={200: MemoryList}, errors=(503,)
    ),
)
def list_memories(path: UserPath, query: MemoriesQuery) -> Response:
    """A user's memories true at ?as_of= (default now), oldest first; ?kind= repeatable."""
    user_id = path.user_id
    at = query.as_of or datetime.now(UTC)
    kinds = query.kind or None
    found = engram().memories.call(
        lambda service: (
            service.list(user_id, as_of=at, kinds=kinds) if service.store.exists() else []
        )
    )
    return jsonify({"user_id": user_id, "memories": [memory_dict(m) for m in found]})


@bp.post(
    "/v1/users/<user_id>/memories/search",
    **operation(
        "search_memories",
        "memories",
        scope="read",
        answers={200: SearchAnswer},
        errors=(413, 415, 503),
    ),
)
def search_memories(path: UserPath, body: SearchRequest) -> Response:
    """A user's k best memories for a query, true at `as_of` (default now), best first."""
    user_id = path.user_id
    hits = engram().memories.call(
        lambda service: service.search(user_id, body.query, body.k, body.kinds, body.as_of)
    )
    return jsonify(
        {"user_id": user_id, "query": body.query, "memories": [hit_dict(h) for h in hits]}
    )


@bp.delete(
    "/v1/users/<user_id>/memories/<memory_id>",
    **operation(
        "delete_memory", "memories", scope="write", answers={200: MemoryDeleted}, errors=(404, 503)
    ),
)
def delete_memory(path: MemoryPath) -> Response:
    """Delete one memory of the user; 404 when the user holds no such memory."""
    user_id, memory_id = path.user_id, path.memory_id
    deleted = engram().memories.call(lambda service: service.forget_memory(user_id, memory_id))
    if not deleted:
        raise ApiError(404, "the user holds no memory with this id", field="memory_id")
    return jsonify({"user_id": user_id, "memory_id": memory_id, "deleted": True})
