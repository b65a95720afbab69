"""GET /v1/users/{user_id}/features: the `ranking` feature service, read online."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from serving.auth import requires
from serving.extension import engram
from serving.validation import checked_id

bp = Blueprint("features", __name__)


@bp.get("/v1/users/<user_id>/features")
@requires("read")
def get_features(user_id: str) -> Response:
    """The user's online features with each view's event time; 404 for an unknown user."""
    return jsonify(engram().features.user(checked_id(user_id)))
