"""DELETE /v1/users/{user_id}: forget the user in every store."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify

from engram.errors import ServiceUnavailableError
from memory.service import forget_everywhere
from serving.auth import requires
from serving.backends import guarded
from serving.extension import engram
from serving.validation import checked_id
from serving.wiring import forget_in_stream, forget_stream_state

bp = Blueprint("users", __name__)


@bp.delete("/v1/users/<user_id>")
@requires("admin")
def forget_user(user_id: str) -> Response:
    """Delete everything held about the user; answers what each store removed."""
    checked_id(user_id)
    ext = engram()
    stream = guarded(ext.redis_breaker, "redis", lambda: forget_in_stream(ext.redis, user_id))
    state = guarded(ext.redis_breaker, "redis", lambda: forget_stream_state(ext.redis, user_id))
    try:
        removed = forget_everywhere(ext.settings, user_id, collection=ext.memories.collection)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        ext.redis_breaker.failure(str(error))
        raise ServiceUnavailableError("redis", str(error)) from error
    removed["stream"] = stream
    removed["stream_state"] = state
    ext.ranking.forget(user_id)
    return jsonify(removed)
