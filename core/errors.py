"""Errors raised inside Engram; the CLI and HTTP layers alone map them to exit codes and 4xx/5xx.

Each error builds its own message from its fields, so a caller never formats one by hand.
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class of every error Engram raises on purpose."""

    status_code = 500


class ConfigError(EngramError):
    """A setting is missing or invalid."""

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"setting {setting}: {reason}")


class InvalidSignalError(EngramError):
    """A signal breaks the contract; `field` names the offending field."""

    status_code = 400

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidInputError(EngramError):
    """A request or command argument is invalid (not a signal)."""

    status_code = 400

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class UnknownUserError(EngramError):
    """No data is held for this user."""

    status_code = 404

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"unknown user: {user_id!r}")


class SourceError(EngramError):
    """An input file or directory cannot be read as the format asked for."""

    status_code = 400

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ServiceUnavailableError(EngramError):
    """A backing service (Redis, Milvus) cannot be reached or started."""

    status_code = 503

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"{service} unavailable: {reason}")


class ModelReplyError(EngramError):
    """A remote model answered, but not with what was asked: not JSON, not the requested
    schema, or the request refused as it stands (HTTP 400, 413, 422)."""

    status_code = 502

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"{service} reply unusable: {reason}")


class ModelNotFoundError(EngramError):
    """No trained ranking model, or no such version, in the registry."""

    status_code = 404

    def __init__(self, version: str | None) -> None:
        self.version = version
        wanted = "no trained model" if version is None else f"no model version {version!r}"
        super().__init__(f"{wanted}: run `engram train`")
