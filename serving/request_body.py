"""Request bodies, for every route in one place: whole and within the limit, or an error.

werkzeug stops reading a body of unknown length (`Transfer-Encoding: chunked`) at
MAX_CONTENT_LENGTH and hands the first part on as if it were the whole, so a signal batch over the
limit lost its tail without a word. `EngramRequest.stream` reads one byte past the limit to know:
any body over it, chunked or with a Content-Length, is a 413 and nothing of it reaches a view.
The rest of an oversize body is read and dropped, up to the limit again, so that a client that
sends all before reading (most do) gets the 413 rather than a reset connection.

A body the server could not read is answered too: 408 when the client stalls past the read
timeout (the socket's, set by serving/worker.py), 400 for a broken chunked encoding or a dropped
connection. JSON bodies are parsed by `pipelines.strict_json` (duplicate keys, lone surrogates
and nesting too deep are 400s naming the field), through the app's JSON provider, and never
quietly: flask-openapi3 reads bodies with `get_json(silent=True)`, which would turn a body that
is not JSON into null (a 400 about the model instead of a 415).
"""

from __future__ import annotations

import io
from typing import IO, Any, cast

from flask import Request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_content_length

from serving.errors import ApiError

_READ_SIZE = 1 << 20


class EngramRequest(Request):
    """Flask's request with a body stream that never cuts a body short, and JSON read loudly."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The JSON body (an object or an array), or an error saying why there is none."""
        value = super().get_json(force=force, silent=False, cache=cache)
        if isinstance(value, str):
            # flask-openapi3 would parse a JSON string a second time, as JSON text, past the
            # strict checks: no body of this API is a string.
            raise ApiError(400, "the body must be a JSON object", field="$", error="invalid_input")
        return value

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """415 for a body sent as another content type (a parse error raises on its own)."""
        if e is None:
            raise ApiError(415, "send a JSON object with Content-Type: application/json")
        return super().on_json_loading_failed(e)

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body, at most `max_content_length` bytes (413 past that)."""
        environ = self.environ
        length = get_content_length(environ)
        if length is None and "wsgi.input_terminated" not in environ:
            # No length and a server that does not end the stream: reading could never stop.
            return io.BytesIO()
        body = _Body(environ["wsgi.input"], length, self.max_content_length)
        return cast(IO[bytes], body)  # a raw binary stream, as werkzeug's own


class _Body(io.RawIOBase):
    """`length` bytes of `source` (None: until it ends), refused past `limit`."""

    def __init__(self, source: IO[bytes], length: int | None, limit: int | None) -> None:
        super().__init__()
        self._source = source
        self._left = length
        self._limit = limit
        self._taken = 0
        if limit is not None and length is not None and length > limit:
            self._refuse()

    def readable(self) -> bool:
        return True

    def readall(self) -> bytes:
        # In large reads: RawIOBase's own reads 8 KiB at a time.
        parts = []
        while part := self.read(_READ_SIZE):
            parts.append(part)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if self._left is not None:
            wanted = min(wanted, self._left)
        if self._limit is not None:
            wanted = min(wanted, self._limit + 1 - self._taken)  # one byte past: over or not
        if wanted <= 0:
            return 0
        data = self._read(wanted)
        if not data:
            if self._left:
                raise BadRequest("the connection closed before the whole body was sent")
            return 0
        self._taken += len(data)
        if self._left is not None:
            self._left -= len(data)
        if self._limit is not None and self._taken > self._limit:
            self._refuse()
        buffer[: len(data)] = data
        return len(data)

    def _read(self, size: int) -> bytes:
        try:
            return self._source.read(size)
        except TimeoutError as error:
            raise RequestTimeout("the body did not arrive in time") from error
        # The server's own errors (a broken chunked encoding, a reset connection) have classes of
        # its own: whatever stops the body from being read is the request's fault, said as 400.
        except Exception as error:
            raise BadRequest(f"the body could not be read ({type(error).__name__})") from error

    def _refuse(self) -> None:
        """Drop what is left of the body, up to the limit again, then answer 413."""
        budget = self._limit or 0
        while budget > 0 and self._left != 0:
            size = min(budget, _READ_SIZE if self._left is None else min(self._left, _READ_SIZE))
            try:
                data = self._source.read(size)
            except Exception:  # a client that stops sending, or sends garbage, gets its 413 now
                break
            if not data:
                break
            budget -= len(data)
            if self._left is not None:
                self._left -= len(data)
        raise RequestEntityTooLarge()
