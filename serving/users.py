"""DELETE /v1/users/{user_id}: forget the user in every store."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from pymilvus.exceptions import MilvusException

from core.errors import ServiceUnavailableError
from forget.everywhere import forget_everywhere
from serving.auth import requires
from serving.extension import engram
from serving.validation import checked_id

bp = Blueprint("users", __name__)
# Each store call of a forget: longer than a read's (a flush, a stream scan in chunks), bounded
# so that a hung store answers 503 instead of holding the worker.
FORGET_TIMEOUT_S = 10.0


@bp.delete("/v1/users/<user_id>")
@requires("admin")
def forget_user(user_id: str) -> Response:
    """Delete everything held about the user; answers what each store removed."""
    checked_id(user_id)
    ext = engram()
    try:
        removed = forget_everywhere(
            ext.settings, user_id, collection=ext.memories.collection, timeout_s=FORGET_TIMEOUT_S
        )
    except (redis.ConnectionError, redis.TimeoutError) as error:
        ext.redis_breaker.failure(str(error))
        raise ServiceUnavailableError("redis", str(error)) from error
    except MilvusException as error:
        ext.memories.breaker.failure(error.message)
        raise ServiceUnavailableError("milvus", error.message) from error
    return jsonify(removed)
