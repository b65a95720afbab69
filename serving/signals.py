"""POST /v1/signals: validate a batch of signals and hand the accepted ones to the stream."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from serving.auth import requires
from serving.backends import guarded
from serving.extension import engram
from serving.intake import as_text, check_records, parse_body
from serving.validation import query_flag

bp = Blueprint("signals", __name__)


@bp.post("/v1/signals")
@requires("write")
def post_signals() -> tuple[Response, int]:
    """202 with the accepted count and each rejection; ?sync=true: processed before the answer."""
    sync = query_flag("sync")
    ext = engram()
    parsed = parse_body(request.get_data(cache=False), request.mimetype)
    checked = check_records(ext.settings, ext.normalizer, parsed)
    accepted = as_text(checked.accepted)
    entry_ids = guarded(ext.redis_breaker, "redis", lambda: ext.produce(ext.redis, accepted))
    body: dict[str, object] = {
        "accepted": len(accepted),
        "rejected": len(checked.rejections),
        "rejections": checked.rejections,
    }
    if not sync:
        return jsonify(body), 202
    body["processed"] = ext.sync(accepted, entry_ids) if accepted else {}
    if accepted:
        ext.features.reload()  # the first sync may have applied the feature repo
    return jsonify(body), 200
