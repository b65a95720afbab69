"""Request checks shared by the blueprints: ids, JSON bodies, numbers, times.

User ids follow the signal contract's id rule (core/contract.py, docs/api.md), so any id a
signal can carry can be read back, and nothing else reaches a store key or a filter expression.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import request

from core.contract import ID_PATTERN
from core.times import parse_contract_time
from serving.errors import ApiError

USER_ID_PATTERN = ID_PATTERN
_ID = re.compile(ID_PATTERN)
MAX_K = 1_000
MAX_CANDIDATES = 1_000
MAX_QUERY_CHARS = 1_000


def checked_id(value: str, field: str = "user_id") -> str:
    """`value` when it is a valid id, else a 400 naming `field`."""
    if not _ID.fullmatch(value):
        raise ApiError(400, f"must match {ID_PATTERN}", field=field, error="invalid_input")
    return value


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 / 415 saying why it is not one."""
    if not request.is_json:
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    # Through the app's JSON provider: pipelines.strict_json, whose errors name the field.
    body = request.get_json()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", field="$", error="invalid_input")
    return body


def integer(value: Any, field: str, low: int, high: int) -> int:
    """An integer between low and high inclusive (booleans are not integers)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(
            400, f"must be an integer between {low} and {high}", field=field, error="invalid_input"
        )
    return value


def query_integer(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    return integer(value, name, low, high)


def time_value(value: Any, field: str = "as_of") -> datetime | None:
    """An RFC 3339 time with an offset in the signal contract's range, or None."""
    return parse_contract_time(value, field)


def string_list(value: Any, field: str, *, max_items: int = 100) -> list[str] | None:
    """A list of non-empty strings, or None."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > max_items
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ApiError(
            400,
            f"must be a list of at most {max_items} non-empty strings",
            field=field,
            error="invalid_input",
        )
    return value


def query_flag(name: str) -> bool:
    """A boolean query parameter: true/false, 1/0 (absent: false)."""
    raw = request.args.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ApiError(400, "must be true or false", field=name, error="invalid_input")
