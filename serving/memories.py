"""A user's memories: add, list (as of a time), search, read one, correct one, read its history,
and delete one."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint

from memory.added import KEEP, Keep
from memory.added import NewMemory as Statement
from memory.service import hit_dict, memory_dict, version_dict
from serving.answers import (
    MemoriesAdded,
    Memory,
    MemoryDeleted,
    MemoryHistory,
    MemoryList,
    SearchAnswer,
)
from serving.bodies import (
    AddMemoriesRequest,
    MemoriesQuery,
    MemoryPatch,
    MemoryPath,
    SearchRequest,
    UserPath,
)
from serving.errors import ApiError
from serving.extension import engram
from serving.spec import operation

bp = APIBlueprint("memories", __name__)
_NO_SUCH_MEMORY = "the user holds no memory with this id"


@bp.post(
    "/v1/users/<user_id>/memories",
    **operation(
        "add_memories",
        "memories",
        scope="write",
        answers={201: MemoriesAdded},
        errors=(409, 413, 415, 503),
        description="Each memory joins the user's as an extracted one would: merged with what "
        "is known, superseding an earlier value of the same slot (docs/memory.md). The answer "
        "has the id of the memory holding each one, in order.",
    ),
)
def add_memories(path: UserPath, body: AddMemoriesRequest) -> tuple[Response, int]:
    """Add memories."""
    user_id = path.user_id
    statements = [
        Statement(text=item.text, kind=item.kind, valid_from=item.valid_from, scope=item.scope)
        for item in body.memories
    ]
    ids = engram().memories.call(lambda service: service.add_memories(user_id, statements))
    return jsonify({"user_id": user_id, "memory_ids": ids}), 201


@bp.get(
    "/v1/users/<user_id>/memories",
    **operation(
        "list_memories",
        "memories",
        scope="read",
        answers={200: MemoryList},
        errors=(409, 503),
    ),
)
def list_memories(path: UserPath, query: MemoriesQuery) -> Response:
    """A user's memories true at ?as_of= (default now), oldest first; ?kind= repeatable,
    ?scope= one scope only."""
    user_id = path.user_id
    at = query.as_of or datetime.now(UTC)
    kinds = query.kind or None
    found = engram().memories.call(
        lambda service: (
            service.list(user_id, as_of=at, kinds=kinds, scope=query.scope)
            if service.store.exists()
            else []
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
        errors=(409, 413, 415, 503),
    ),
)
def search_memories(path: UserPath, body: SearchRequest) -> Response:
    """A user's k best memories for a query, true at `as_of` (default now), best first."""
    user_id = path.user_id
    hits = engram().memories.call(
        lambda service: service.search(
            user_id, body.query, body.k, body.kinds, body.as_of, scope=body.scope
        )
    )
    return jsonify(
        {"user_id": user_id, "query": body.query, "memories": [hit_dict(h) for h in hits]}
    )


@bp.get(
    "/v1/users/<user_id>/memories/<memory_id>",
    **operation("get_memory", "memories", scope="read", answers={200: Memory}, errors=(404, 503)),
)
def get_memory(path: MemoryPath) -> Response:
    """One memory as it is now, superseded or expired ones too."""
    found = engram().memories.call(lambda service: service.get_memory(path.user_id, path.memory_id))
    if found is None:
        raise ApiError(404, _NO_SUCH_MEMORY, field="memory_id")
    return jsonify(memory_dict(found))


@bp.patch(
    "/v1/users/<user_id>/memories/<memory_id>",
    **operation(
        "update_memory",
        "memories",
        scope="write",
        answers={200: Memory},
        errors=(404, 409, 413, 415, 503),
        description="Correct a memory's text (its slot and value are read again) or when it "
        "holds; the rest stays. The version it replaces is kept in its history.",
    ),
)
def update_memory(path: MemoryPath, body: MemoryPatch) -> Response:
    """Correct a memory."""
    given = body.model_fields_set
    if not given:
        raise ApiError(400, "give text, valid_from or valid_to", field="$", error="invalid_input")
    if "text" in given and body.text is None:
        raise ApiError(400, "must be a string, not null", field="text", error="invalid_input")
    if "valid_from" in given and body.valid_from is None:
        raise ApiError(400, "must be a time, not null", field="valid_from", error="invalid_input")
    valid_to: datetime | Keep | None = body.valid_to if "valid_to" in given else KEEP
    updated = engram().memories.call(
        lambda service: service.update_memory(
            path.user_id,
            path.memory_id,
            text=body.text,
            valid_from=body.valid_from,
            valid_to=valid_to,
        )
    )
    if updated is None:
        raise ApiError(404, _NO_SUCH_MEMORY, field="memory_id")
    return jsonify(memory_dict(updated))


@bp.get(
    "/v1/users/<user_id>/memories/<memory_id>/history",
    **operation(
        "memory_history",
        "memories",
        scope="read",
        answers={200: MemoryHistory},
        errors=(404, 409, 503),
    ),
)
def memory_history(path: MemoryPath) -> Response:
    """A memory's versions, oldest first, the current one last."""
    versions = engram().memories.call(lambda service: service.history(path.user_id, path.memory_id))
    if not versions:
        raise ApiError(404, _NO_SUCH_MEMORY, field="memory_id")
    return jsonify(
        {
            "user_id": path.user_id,
            "memory_id": path.memory_id,
            "versions": [version_dict(v, number) for number, v in enumerate(versions, 1)],
        }
    )


@bp.delete(
    "/v1/users/<user_id>/memories/<memory_id>",
    **operation(
        "delete_memory", "memories", scope="write", answers={200: MemoryDeleted}, errors=(404, 503)
    ),
)
def delete_memory(path: MemoryPath) -> Response:
    """Delete one memory of the user, and its history; 404 when the user holds no such
    memory."""
    user_id, memory_id = path.user_id, path.memory_id
    deleted = engram().memories.call(lambda service: service.forget_memory(user_id, memory_id))
    if not deleted:
        raise ApiError(404, _NO_SUCH_MEMORY, field="memory_id")
    return jsonify({"user_id": user_id, "memory_id": memory_id, "deleted": True})
