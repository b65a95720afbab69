"""Every error leaves the API as JSON `{"error", "field"?, "detail"}`; no trace ever does.

Inner code raises the classes of core/errors.py; this module alone maps them to HTTP status
codes, together with Flask's own HTTP errors (404, 405, 408, 413) and anything unexpected (500,
logged with its trace on the server, answered with a fixed message). gunicorn's own answers
(414, 431, ...) take the same shape in serving/worker.py.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from core.errors import (
    EngramError,
    InvalidInputError,
    InvalidSignalError,
    ServiceUnavailableError,
    UnknownUserError,
)

log = logging.getLogger("engram.serving")

# Short machine-readable codes per status, for errors that carry none of their own.
_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "unprocessable",
    431: "headers_too_large",
    500: "internal",
    501: "not_implemented",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API answers as is: status, short code, optional field and a detail."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        field: str | None = None,
        error: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.field = field
        self.error = error or error_code(status_code)
        self.headers = headers or {}


def error_code(status: int) -> str:
    """The short code of an HTTP status, for errors that carry none of their own."""
    return _CODES.get(status, "error")


def error_body(error: str, detail: str, field: str | None = None) -> dict[str, Any]:
    """The one JSON shape of an error."""
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    body["detail"] = detail
    return body


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_engram_error(error: EngramError) -> ApiError:
    """The API error for an error raised inside Engram."""
    if isinstance(error, InvalidInputError | InvalidSignalError):
        return ApiError(400, error.reason, field=error.field, error="invalid_input")
    if isinstance(error, UnknownUserError):
        return ApiError(404, str(error), field="user_id", error="unknown_user")
    if isinstance(error, ServiceUnavailableError):
        # The reason may hold an internal address: the client learns which store, not where.
        return ApiError(
            503,
            f"{error.service} is unavailable",
            error="service_unavailable",
            headers={"Retry-After": "1"},
        )
    status = error.status_code if 400 <= error.status_code < 600 else 500
    if status >= 500:
        log.error("engram error: %s", error)
        return ApiError(status, "internal error")
    return ApiError(status, str(error))


def register_error_handlers(app: Flask) -> None:
    """JSON for every error the app can raise, Flask's own included."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return _answer(
            error.status_code, error_body(error.error, error.detail, error.field), error.headers
        )

    @app.errorhandler(EngramError)
    def engram_error(error: EngramError) -> Response:
        return api_error(from_engram_error(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = error.description or error.name
        if status == 413:
            detail = f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        headers = {}
        if status == 405 and error.response is None:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return _answer(status, error_body(error_code(status), detail), headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return _answer(500, error_body("internal", "internal error"))
