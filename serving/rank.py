"""POST /v1/rank: the k best items for a user, from the model or, degraded, from popularity."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint

from serving.answers import RankAnswer
from serving.bodies import RankRequest
from serving.extension import engram
from serving.spec import operation

bp = APIBlueprint("rank", __name__)


@bp.post(
    "/v1/rank",
    **operation(
        "rank",
        "ranking",
        scope="read",
        answers={200: RankAnswer},
        errors=(413, 415),
        description="The model's ranking, each item with its reasons (its candidate sources; "
        "with `explain`, the top feature contributions too). When there is no model or a store "
        "is down, popularity answers and `degraded` says so: never a 503.",
    ),
)
def rank(body: RankRequest) -> Response:
    """Rank items for a user."""
    context = body.context
    ext = engram()
    ranked, reason = ext.ranking.rank(
        body.user_id,
        body.k,
        body.candidates,
        context.query if context else None,
        context.time if context else None,
        body.explain,
    )
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
            "user_id": body.user_id,
            "items": items,
            "model_version": ranked.model_version,
            "degraded": reason is not None,
            "degraded_reason": reason,
        }
    )
