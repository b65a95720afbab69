"""GET /v1/users/{user_id}/features: the `ranking` feature service, read online."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint

from serving.answers import Features
from serving.bodies import UserPath
from serving.extension import engram
from serving.spec import operation

bp = APIBlueprint("features", __name__)


@bp.get(
    "/v1/users/<user_id>/features",
    **operation(
        "get_features", "features", scope="read", answers={200: Features}, errors=(404, 503)
    ),
)
def get_features(path: UserPath) -> Response:
    """A user's online features of the `ranking` service, with each view's event time."""
    return jsonify(engram().features.user(path.user_id))
