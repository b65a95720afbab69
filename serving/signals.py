"""POST /v1/signals: validate a batch of signals and hand the accepted ones to the stream."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint

from serving.answers import SignalsAnswer
from serving.backends import guarded
from serving.bodies import Signal, SignalsQuery
from serving.extension import engram
from serving.intake import MAX_RECORDS, as_text, check_records, parse_body
from serving.spec import operation

bp = APIBlueprint("signals", __name__)

# The batch is read by the signal contract, record by record (serving/intake.py), not by a model:
# its schema is stated here.
_ARRAY = {"type": "array", "maxItems": MAX_RECORDS, "items": Signal.model_json_schema()}
_BATCH = {
    "required": True,
    "content": {
        "application/json": {"schema": _ARRAY},
        "application/x-ndjson": {"schema": {"type": "string", "description": "One per line."}},
    },
}


@bp.post(
    "/v1/signals",
    **operation(
        "post_signals",
        "signals",
        scope="write",
        answers={202: SignalsAnswer, 200: SignalsAnswer},
        errors=(413, 415, 503),
        description=f"A JSON array or NDJSON of at most {MAX_RECORDS} signals. Each is checked "
        "like a batch record: valid ones go to the stream (202), invalid ones are answered and "
        "kept in the dead-letter store. With ?sync=true they are processed first (200).",
        request_body=_BATCH,
    ),
)
def post_signals(query: SignalsQuery) -> tuple[Response, int]:
    """Send signals."""
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
    if not query.sync:
        return jsonify(body), 202
    body["processed"] = ext.sync(accepted, entry_ids) if accepted else {}
    if accepted:
        ext.features.reload()  # the first sync may have applied the feature repo
    return jsonify(body), 200
