"""gunicorn workers for `engram serve`: bounded against slow clients, errors in the API's shape.

- Read timeout (sync workers): gunicorn's sync worker reads a request with a blocking socket and
  no timeout, so a client that connects and never finishes its headers holds the worker until
  the master kills it as silent (`timeout`, 60 s) and starts another (seconds of model loading);
  two such clients stop both workers of the default server. Here a request's headers must
  arrive within `read_timeout` seconds of the connection, and its body within `read_timeout`
  seconds after them: else 408 and the connection is closed.
- gunicorn's own answers (400 for a bad request line, 414, 431, 501, ...) were HTML; they are
  the API's JSON error shape (serving/errors.py) here.
- gunicorn's error log quoted the request line and headers of a bad request, and so any key
  sent in a query string and any user id in the path: it names the client and the kind of
  error only here. The log lines are serving/logs.py's.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from ssl import SSLError
from typing import Any, NoReturn

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from serving.errors import error_body, error_code

_BAD_REQUEST = (
    errors.InvalidRequestLine,
    errors.InvalidRequestMethod,
    errors.InvalidHTTPVersion,
    errors.InvalidHeader,
    errors.InvalidHeaderName,
    errors.ObsoleteFolding,
    errors.InvalidProxyLine,
    errors.InvalidSchemeHeaders,
    errors.InvalidChunkSize,
    errors.ChunkMissingTerminator,
    errors.InvalidChunkExtension,
    errors.InvalidH2CPreface,
)
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class HeadersTimeout(Exception):
    """The request headers did not arrive within the read timeout (answered 408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no request headers within {seconds:g} s")
        self.seconds = seconds


class JsonErrors:
    """gunicorn's `handle_error`, answering JSON and logging no part of the request."""

    cfg: Any
    log: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        started = datetime.now()
        address = addr or ("", -1)  # a unix socket has no address
        status, detail = self._status(exc)
        if status >= 500:
            self.log.exception("error handling a request", exc_info=exc)
        else:
            # The kind only: the request line and headers may hold keys and user ids.
            self.log.warning(
                "request from %s refused: %s (%d)", address[0], type(exc).__name__, status
            )
        if req is None and isinstance(exc, errors.InvalidHeader | errors.InvalidHeaderName):
            req = getattr(exc, "req", None)  # for the access log
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"] = address[0]
            environ["REMOTE_PORT"] = str(address[1])
            response = Response(req, client, self.cfg)
            response.status = f"{status} {_REASONS.get(status, 'Error')}"
            self.log.access(response, req, environ, datetime.now() - started)
        if isinstance(exc, HeadersTimeout):
            client.closing()
        try:
            util.write_nonblock(client, _answer(status, detail))
        except OSError:
            self.log.debug("could not send the error answer")

    def _status(self, exc: BaseException) -> tuple[int, str]:
        cfg = self.cfg
        if isinstance(exc, HeadersTimeout):
            return 408, f"the request headers did not arrive within {exc.seconds:g} s"
        if isinstance(exc, errors.LimitRequestLine):
            return 414, f"the request line is longer than {cfg.limit_request_line} bytes"
        if isinstance(exc, errors.LimitRequestHeaders):
            return 431, (
                f"the request headers exceed the limits: {cfg.limit_request_fields} fields "
                f"of at most {cfg.limit_request_field_size} bytes"
            )
        if isinstance(exc, errors.UnsupportedTransferCoding):
            return 501, "unsupported transfer coding"
        if isinstance(exc, errors.ExpectationFailed):
            return 417, "unsupported expectation"
        if isinstance(exc, errors.ForbiddenProxyRequest | SSLError):
            return 403, "forbidden"
        if isinstance(exc, _BAD_REQUEST):
            return 400, "the request is not valid HTTP/1.1"
        return 500, "internal error"


def _answer(status: int, detail: str) -> bytes:
    body = json.dumps(error_body(error_code(status), detail), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _TimedSocket:
    """A client socket whose reads must finish by a deadline: the headers' (from accept), then
    the body's (from the end of the headers), until gunicorn closes the connection."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self._deadline: float | None = time.monotonic() + seconds
        self._in_headers = True
        self._closed = False

    def recv(self, size: int, *flags: int) -> bytes:
        if self._closed:
            return b""  # after a 408 nothing more is read: the close does not wait
        if self._deadline is None:
            return self._sock.recv(size, *flags)
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._expired()
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            self._expired()
        finally:
            self._sock.settimeout(None)

    def _expired(self) -> NoReturn:
        self._deadline = None
        if self._in_headers:
            raise HeadersTimeout(self._seconds)
        raise TimeoutError("the body did not arrive in time")  # the app answers 408

    def start_body(self) -> None:
        """The headers are in: the body gets its own deadline."""
        self._in_headers = False
        if self._deadline is not None:
            self._deadline = time.monotonic() + self._seconds

    def shutdown(self, how: int) -> None:
        """gunicorn's close begins: its own linger bounds the reads from here."""
        self._deadline = None
        self._sock.shutdown(how)

    def closing(self) -> None:
        """A 408 ends the connection: read nothing more (a stalled client sends nothing)."""
        self._closed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class EngramSyncWorker(JsonErrors, SyncWorker):
    """gunicorn's sync worker with the read timeout and JSON errors."""

    read_timeout = 5.0  # seconds; `worker_class` sets ENGRAM_READ_TIMEOUT_SECONDS

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        super().handle(listener, _TimedSocket(client, self.read_timeout), addr)

    def handle_request(self, listener: Any, req: Any, client: Any, addr: Any) -> None:
        client.start_body()
        super().handle_request(listener, req, client, addr)


class EngramThreadWorker(JsonErrors, ThreadWorker):
    """gunicorn's gthread worker with JSON errors (it waits for readable sockets itself)."""


def worker_class(threads: int, read_timeout: float) -> type[JsonErrors]:
    """The worker class for `engram serve`: sync for one thread (with this read timeout), else
    gthread."""
    if threads > 1:
        return EngramThreadWorker
    return type("EngramSyncWorker", (EngramSyncWorker,), {"read_timeout": read_timeout})
