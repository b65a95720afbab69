"""DELETE /v1/users/{user_id}: forget the user in every store."""

from __future__ import annotations

from typing import Any

import redis
from flask import Response, jsonify
from flask_openapi3 import APIBlueprint
from pymilvus.exceptions import MilvusException

from core.errors import ServiceUnavailableError
from forget.everywhere import forget_everywhere
from serving.answers import Forgotten
from serving.bodies import UserPath
from serving.extension import Engram, engram
from serving.spec import operation

bp = APIBlueprint("users", __name__)
# Each store call of a forget: longer than a read's (a flush, a stream scan in chunks), bounded
# so that a hung store answers 503 instead of holding the worker.
FORGET_TIMEOUT_S = 10.0


@bp.delete(
    "/v1/users/<user_id>",
    **operation("forget_user", "users", scope="admin", answers={200: Forgotten}, errors=(503,)),
)
def forget_user(path: UserPath) -> Response:
    """Forget a user in every store; answers what each store removed."""
    return jsonify(forget(engram(), path.user_id))


def forget(ext: Engram, user_id: str) -> dict[str, Any]:
    """Forget the user in every store (forget/everywhere.py) with the API's bounded store
    calls; what each store removed. A store that fails is a ServiceUnavailableError (503) and
    opens its breaker. The API's DELETE and the inspector's form both call this."""
    try:
        return forget_everywhere(
            ext.settings,
            user_id,
            collection=ext.memories.collection,
            timeout_s=FORGET_TIMEOUT_S,
        )
    except (redis.ConnectionError, redis.TimeoutError) as error:
        ext.redis_breaker.failure(str(error))
        raise ServiceUnavailableError("redis", str(error)) from error
    except MilvusException as error:
        ext.memories.breaker.failure(error.message)
        raise ServiceUnavailableError("milvus", error.message) from error
