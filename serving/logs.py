"""The server's logs: one JSON object a line, with the request's id, and nothing a request held.

Each request has an id: the caller's `X-Request-ID` when it is a plain token (1-128 letters,
digits, `.`, `_`, `-`), else a new one; the answer carries it back in `X-Request-ID`, and every
line logged while the request runs, the access line included, names it (`request_id`).

The access line holds the client address, the method, the route template the request matched
(such as `/v1/users/<user_id>/features`; `<unmatched>` for none; `-` for a request gunicorn
refused before the app saw it), the status, the bytes answered and the duration. Never the URL,
its query string, headers or body: keys sent as `?api_key=` and the ids in paths stay out, and
no memory text is ever logged. Levels follow ENGRAM_LOG_LEVEL.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, has_request_context, request
from gunicorn import glogging

ROUTE_KEY = "engram.route"  # WSGI environ keys the app writes and the access line reads
REQUEST_ID_KEY = "engram.request_id"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
APP_LOGGERS = ("engram", "core")  # the project's own loggers, written beside gunicorn's


def request_id() -> str:
    """The current request's id, chosen on first use."""
    known = request.environ.get(REQUEST_ID_KEY)
    if known is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        known = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.environ[REQUEST_ID_KEY] = known
    return str(known)


def init_app(app: Flask) -> None:
    """Give each answer its request id and record the route template for the access line."""

    @app.after_request
    def mark(response: Response) -> Response:
        rule = request.url_rule
        request.environ[ROUTE_KEY] = rule.rule if rule is not None else "<unmatched>"
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: time, level, logger, message, its fields, and the request id
    when logged inside a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = request_id()
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class GunicornLogger(glogging.Logger):
    """gunicorn's logger writing JSON lines: its error log, the access line above, and the
    project's own loggers through the error log's handler."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        for name in APP_LOGGERS:
            log = logging.getLogger(name)
            log.handlers = list(self.error_log.handlers)
            log.setLevel(self.loglevel)
            log.propagate = False

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        fields = {
            "request_id": environ.get(REQUEST_ID_KEY, "-"),
            "client": environ.get("REMOTE_ADDR", "-"),
            "method": environ.get("REQUEST_METHOD", "-"),
            "route": environ.get(ROUTE_KEY, "-"),
            "status": int(status),
            "bytes": getattr(resp, "sent", None) or 0,
            "ms": round(request_time.total_seconds() * 1000, 1),
        }
        for field in ("key_id", "tenant"):  # of an issued key (serving/keys.py); never the key
            if environ.get(f"engram.{field}"):
                fields[field] = environ[f"engram.{field}"]
        self.access_log.info("request", extra={"fields": fields})
