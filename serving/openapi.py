"""The OpenAPI 3 description of the API, as data; tests/serving/test_openapi.py keeps it true
(every route is described, and fuzzed answers match their documented schemas)."""

from __future__ import annotations

from functools import cache
from typing import Any

from core.contract import ID_PATTERN, SIGNAL_TYPES
from memory.records import MEMORY_KINDS
from serving.intake import MAX_RECORDS
from serving.validation import MAX_CANDIDATES, MAX_K, MAX_QUERY_CHARS

VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "Invalid request: `field` names what to fix.",
        401: "No API key, or an unknown one.",
        403: "The key lacks the scope this operation needs.",
        404: "Not found.",
        405: "Method not allowed.",
        413: "Body or batch too large.",
        415: "Unsupported content type.",
        503: "A store the operation needs is unavailable; retry later.",
    }
    return {str(status): _json(_ref("Error"), meaning[status]) for status in statuses}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_ID = {"type": "string", "pattern": ID_PATTERN}
_USER_PARAMETER = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": f"A user id ({ID_PATTERN}).",
    "schema": _ID,
}

# What DELETE /v1/users/{user_id} counts, per store.
_FORGOTTEN = (
    "memories",
    "events",
    "dead_letter",
    "feature_rows",
    "online",
    "stream",
    "stream_state",
)

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "A short code, e.g. invalid_input."},
            "field": {"type": "string", "description": "The field at fault, when one is."},
            "detail": {"type": "string"},
        },
    },
    "Signal": {
        "type": "object",
        "description": "A signal of contract v1 (docs/signals.md); checked per record.",
        "properties": {
            "event_id": {"type": ["string", "integer"]},
            "user_id": {"type": ["string", "integer"]},
            "ts": {"type": ["string", "number"], "description": "RFC 3339 or epoch seconds."},
            "type": {"type": "string", "enum": list(SIGNAL_TYPES)},
            "item_id": {"type": ["string", "integer"]},
            "value": {"type": "number"},
            "text": {"type": "string"},
            "context": {"type": "object"},
        },
    },
    "Rejection": {
        "type": "object",
        "required": ["index", "event_id", "field", "reason"],
        "properties": {
            "index": {"type": "integer", "description": "Array index, or 0-based NDJSON line."},
            "event_id": {"type": ["string", "null"]},
            "field": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "SignalsAnswer": {
        "type": "object",
        "required": ["accepted", "rejected", "rejections"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "rejections": {"type": "array", "items": _ref("Rejection")},
            "processed": {"type": "object", "description": "With ?sync=true: what was done."},
        },
    },
    "Features": {
        "type": "object",
        "required": ["user_id", "feature_service", "event_timestamps", "features"],
        "properties": {
            "user_id": {"type": "string"},
            "feature_service": {"type": "string"},
            "event_timestamps": {"type": "object", "additionalProperties": _NULLABLE_TIME},
            "features": {"type": "object"},
        },
    },
    "Memory": {
        "type": "object",
        "required": ["memory_id", "user_id", "kind", "text", "confidence", "valid_from"],
        "properties": {
            "memory_id": {"type": "string"},
            "user_id": {"type": "string"},
            "kind": {"type": "string", "enum": list(MEMORY_KINDS)},
            "text": {"type": "string"},
            "confidence": {"type": "number"},
            "slot": {"type": ["string", "null"]},
            "value": {"type": ["string", "null"]},
            "valid_from": {"type": "string", "format": "date-time"},
            "valid_to": _NULLABLE_TIME,
            "expires_at": _NULLABLE_TIME,
            "superseded_by": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "source_event_ids": {"type": "array", "items": {"type": "string"}},
            "score": {"type": "number", "description": "Search hits only."},
            "parts": {"type": "object", "description": "Search hits only: the score's parts."},
        },
    },
    "MemoryList": {
        "type": "object",
        "required": ["user_id", "memories"],
        "properties": {
            "user_id": {"type": "string"},
            "query": {"type": "string"},
            "memories": {"type": "array", "items": _ref("Memory")},
        },
    },
    "SearchRequest": {
        "type": "object",
        "required": ["query"],
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
            "kinds": {"type": "array", "items": {"type": "string", "enum": list(MEMORY_KINDS)}},
            "as_of": {"type": "string", "format": "date-time"},
        },
    },
    "RankRequest": {
        "type": "object",
        "required": ["user_id"],
        "properties": {
            "user_id": _ID,
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
            "candidates": {"type": "array", "maxItems": MAX_CANDIDATES, "items": _ID},
            "context": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "maxLength": MAX_QUERY_CHARS},
                    "time": {"type": "string", "format": "date-time"},
                },
            },
            "explain": {
                "type": "boolean",
                "default": False,
                "description": "Also give each item's top feature contributions (~1 ms per 10).",
            },
        },
    },
    "RankAnswer": {
        "type": "object",
        "required": ["user_id", "items", "model_version", "degraded", "degraded_reason"],
        "properties": {
            "user_id": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["item_id", "score"],
                    "properties": {
                        "item_id": {"type": "string"},
                        "score": {"type": "number"},
                        "reasons": {},
                    },
                },
            },
            "model_version": {"type": "string"},
            "degraded": {"type": "boolean"},
            "degraded_reason": {
                "type": ["string", "null"],
                "description": "Why popularity answered: no model, redis unavailable, ...",
            },
        },
    },
    "Forgotten": {
        "type": "object",
        "required": ["user_id", *_FORGOTTEN],
        "properties": {
            "user_id": {"type": "string"},
            **{name: {"type": "integer", "minimum": 0} for name in _FORGOTTEN},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["ready", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {"type": "object"},
            "down": {"type": "array", "items": {"type": "string", "enum": ["redis", "milvus"]}},
        },
    },
}

_V1: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _paths() -> dict[str, Any]:
    return {
        "/v1/signals": {
            "post": {
                "summary": "Send signals",
                "description": f"A JSON array or NDJSON of at most {MAX_RECORDS} signals. Each "
                "is checked like a batch record: valid ones go to the stream, invalid ones are "
                "answered (and kept in the dead-letter store). Scope: write.",
                "security": _V1,
                "x-scope": "write",
                "parameters": [
                    {
                        "name": "sync",
                        "in": "query",
                        "required": False,
                        "description": "Process before answering: features and memories visible "
                        "on return.",
                        "schema": {"type": "boolean", "default": False},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "array",
                                "maxItems": MAX_RECORDS,
                                "items": _ref("Signal"),
                            }
                        },
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "202": _json(_ref("SignalsAnswer"), "Accepted for processing."),
                    "200": _json(_ref("SignalsAnswer"), "With ?sync=true: processed."),
                    **_errors(400, 401, 403, 413, 415, 503),
                },
            }
        },
        "/v1/users/{user_id}/features": {
            "get": {
                "summary": "A user's online features (the `ranking` feature service)",
                "security": _V1,
                "x-scope": "read",
                "parameters": [_USER_PARAMETER],
                "responses": {
                    "200": _json(_ref("Features"), "The features."),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/v1/users/{user_id}/memories": {
            "get": {
                "summary": "A user's memories true at a time, oldest first",
                "security": _V1,
                "x-scope": "read",
                "parameters": [
                    _USER_PARAMETER,
                    {
                        "name": "kind",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(MEMORY_KINDS)},
                        },
                        "style": "form",
                        "explode": True,
                    },
                    {
                        "name": "as_of",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date-time"},
                    },
                ],
                "responses": {
                    "200": _json(_ref("MemoryList"), "The memories."),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/v1/users/{user_id}/memories/search": {
            "post": {
                "summary": "Search a user's memories",
                "security": _V1,
                "x-scope": "read",
                "parameters": [_USER_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SearchRequest")}},
                },
                "responses": {
                    "200": _json(_ref("MemoryList"), "The best memories, best first."),
                    **_errors(400, 401, 403, 415, 503),
                },
            }
        },
        "/v1/users/{user_id}/memories/{memory_id}": {
            "delete": {
                "summary": "Delete one memory",
                "security": _V1,
                "x-scope": "write",
                "parameters": [
                    _USER_PARAMETER,
                    {"name": "memory_id", "in": "path", "required": True, "schema": _ID},
                ],
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["user_id", "memory_id", "deleted"]},
                        "Deleted.",
                    ),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/v1/rank": {
            "post": {
                "summary": "Rank items for a user",
                "description": "The model's ranking; when there is no model or a store is "
                "down, popularity answers and `degraded` says so.",
                "security": _V1,
                "x-scope": "read",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RankRequest")}},
                },
                "responses": {
                    "200": _json(_ref("RankAnswer"), "The ranking."),
                    **_errors(400, 401, 403, 415),
                },
            }
        },
        "/v1/users/{user_id}": {
            "delete": {
                "summary": "Forget a user in every store",
                "security": _V1,
                "x-scope": "admin",
                "parameters": [_USER_PARAMETER],
                "responses": {
                    "200": _json(_ref("Forgotten"), "What each store removed."),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The process answers.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis, Milvus, model",
                "security": [],
                "responses": {
                    "200": _json(_ref("Ready"), "Ready."),
                    "503": _json(_ref("Ready"), "A store does not answer."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
    }


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Engram API",
            "version": VERSION,
            "description": "Signals in; features, memories and rankings out. See docs/api.md.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key with scopes read, write or admin.",
                }
            },
        },
        "paths": _paths(),
    }
