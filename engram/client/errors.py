"""What the client raises: one base class, the API's errors by status (each carrying the API's
error body), and no answer at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EngramClientError(Exception):
    """Base class of every error the client raises."""


class EngramConnectionError(EngramClientError):
    """No answer: the connection was refused or dropped, or the answer took too long, on every
    attempt."""

    def __init__(self, method: str, url: str, attempts: int, cause: Exception) -> None:
        self.method = method
        self.url = url
        self.attempts = attempts
        self.cause = cause
        tries = "attempt" if attempts == 1 else "attempts"
        super().__init__(f"{method} {url}: no answer after {attempts} {tries} ({cause})")


class EngramAPIError(EngramClientError):
    """The API answered with an error: its status and its error body."""

    status_code = 0

    def __init__(self, status_code: int, body: Mapping[str, Any], retry_after: float | None = None):
        self.status_code = status_code
        self.body = dict(body)
        self.error: str = str(body.get("error", "error"))
        self.field: str | None = body.get("field")
        self.detail: str = str(body.get("detail", ""))
        self.retry_after = retry_after
        where = f" ({self.field})" if self.field else ""
        super().__init__(f"{status_code} {self.error}{where}: {self.detail}")


class InvalidRequest(EngramAPIError):
    """400: the request is invalid; `field` names what to fix."""


class Unauthorized(EngramAPIError):
    """401: no API key, or an unknown one."""


class Forbidden(EngramAPIError):
    """403: the key lacks the scope the operation needs."""


class NotFound(EngramAPIError):
    """404: no such user or memory."""


class Conflict(EngramAPIError):
    """409: the server's memory collection predates scopes and history
    (`engram memories migrate`)."""


class PayloadTooLarge(EngramAPIError):
    """413: the body or batch is too large."""


class ServiceUnavailable(EngramAPIError):
    """503 (or 502, 504): a store the operation needs is down; the retries ran out."""


ERRORS: dict[int, type[EngramAPIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}
