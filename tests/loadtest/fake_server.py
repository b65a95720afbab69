"""A stand-in for the API with the same routes and auth, to test the load tooling by itself.

Run as a script: `python fake_server.py` listens on 127.0.0.1:$PORT and accepts the Bearer keys
of ENGRAM_API_KEYS ('key:scopes'). It answers at once; FAKE_FAIL_RANK=1 makes /v1/rank fail.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, request


def create_app() -> Flask:
    """Routes shaped like serving's, answering fixed bodies."""
    app = Flask(__name__)
    keys = {entry.rpartition(":")[0] for entry in os.environ.get("ENGRAM_API_KEYS", "").split(";")}
    fail_rank = os.environ.get("FAKE_FAIL_RANK") == "1"

    @app.before_request
    def _auth() -> None:
        if request.path in ("/healthz", "/readyz"):
            return
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        if kind != "Bearer" or token not in keys:
            abort(401)

    @app.get("/readyz")
    def readyz() -> Any:
        return jsonify(ready=True)

    @app.post("/v1/rank")
    def rank() -> Any:
        if fail_rank:
            abort(500)
        body = request.get_json()
        return jsonify(user_id=body["user_id"], items=[])

    @app.get("/v1/users/<user_id>/features")
    def features(user_id: str) -> Any:
        return jsonify(user_id=user_id, features={})

    @app.post("/v1/users/<user_id>/memories/search")
    def search(user_id: str) -> Any:
        return jsonify(user_id=user_id, memories=[])

    @app.post("/v1/signals")
    def signals() -> Any:
        return jsonify(accepted=len(request.get_json())), 202

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(os.environ["PORT"]), threaded=True)
