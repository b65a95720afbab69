"""Malformed lines for the JSONL form: each has exactly one defect, named by kind and field.

A malformed record starts as a valid event of a real user and breaks one thing, so the field a
validator should blame is never ambiguous.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson

from core.contract import TEXT_MAX_CHARS

# kind -> field a validator should name ("$": the line as a whole)
MALFORMED_FIELDS: dict[str, str] = {
    "invalid_json": "$",
    "not_an_object": "$",
    "missing_event_id": "event_id",
    "missing_user_id": "user_id",
    "bad_user_id": "user_id",
    "missing_ts": "ts",
    "bad_ts": "ts",
    "ts_without_offset": "ts",
    "ts_milliseconds": "ts",
    "unknown_type": "type",
    "missing_item_id": "item_id",
    "bad_value": "value",
    "missing_text": "text",
    "bad_context": "context",
    "text_too_long": "text",
}
MALFORMED_KINDS: tuple[str, ...] = tuple(MALFORMED_FIELDS)

_BAD_USER_IDS = (
    'x" || user_id != "x',
    "john doe",
    "u1'; DROP TABLE users; --",
    "a" * 129,
    "usr/../../etc",
)
_BAD_TS = ("2026-13-45T99:00:00Z", "not a date", "31/12/2026 10:00", "2026-02-30T10:00:00+01:00")
_UNKNOWN_TYPES = ("like", "share", "wishlist", "bookmark", "follow")
_BAD_VALUES: tuple[object, ...] = ("five", 7.5, -1.0, "4 stars")
_NOT_OBJECTS = ('["view", "u000001"]', "42", '"view"', "null", "[]")
# Defects that need a certain type of event to exist at all.
_TYPE_FOR = {
    "missing_item_id": "view",
    "bad_value": "rate",
    "missing_text": "message",
    "text_too_long": "message",
}
_LONG_SENTENCE = "This is a very long message that keeps going and going without saying much. "


@dataclass(frozen=True)
class Malformed:
    """One malformed line (without its newline) and what is wrong with it."""

    kind: str
    field: str
    line: str


def _rfc3339(ms: int, offset_min: int) -> str:
    zone = timezone(timedelta(minutes=offset_min))
    return datetime.fromtimestamp(ms // 1000, tz=zone).isoformat().replace("+00:00", "Z")


def _valid(
    rng: random.Random, kind: str, event_id: str, user_id: str, item_id: str, ms: int
) -> dict[str, object]:
    """A valid event whose type suits the defect `kind` will get."""
    signal_type = _TYPE_FOR.get(kind) or rng.choice(
        ("view", "click", "purchase", "message", "search")
    )
    record: dict[str, object] = {
        "event_id": event_id,
        "user_id": user_id,
        "ts": _rfc3339(ms, rng.choice((0, 120, -300))),
        "type": signal_type,
    }
    if signal_type in ("view", "click", "purchase", "rate"):
        record["item_id"] = item_id
    if signal_type == "rate":
        record["value"] = 4.0
    if signal_type == "message":
        record["text"] = "can you show me something similar?"
        record["context"] = {"session_id": "chat-x", "speaker": "user", "device": "mobile"}
    if signal_type == "search":
        record["text"] = "gift ideas"
    return record


def malformed_record(
    rng: random.Random, kind: str, event_id: str, user_id: str, item_id: str, ms: int
) -> Malformed:
    """A line of `kind`: a valid event of this user with one defect."""
    record = _valid(rng, kind, event_id, user_id, item_id, ms)
    if kind == "invalid_json":
        good = orjson.dumps(record).decode()
        # unclosed, trailing comma, unquoted key, single quotes
        broken = (
            good[:-1],
            good[:-1] + ",}",
            good.replace('"type"', "type", 1),
            good.replace('"', "'"),
        )
        return Malformed(kind, "$", rng.choice(broken))
    if kind == "not_an_object":
        return Malformed(kind, "$", rng.choice(_NOT_OBJECTS))
    if kind.startswith("missing_"):
        del record[kind.removeprefix("missing_")]
    elif kind == "bad_user_id":
        record["user_id"] = rng.choice(_BAD_USER_IDS)
    elif kind == "bad_ts":
        record["ts"] = rng.choice(_BAD_TS)
    elif kind == "ts_without_offset":
        record["ts"] = datetime.fromtimestamp(ms // 1000, tz=UTC).replace(tzinfo=None).isoformat()
    elif kind == "ts_milliseconds":
        record["ts"] = ms
    elif kind == "unknown_type":
        record["type"] = rng.choice(_UNKNOWN_TYPES)
    elif kind == "bad_value":
        record["value"] = rng.choice(_BAD_VALUES)
    elif kind == "bad_context":
        record["context"] = rng.choice(("mobile", "session=abc;device=tablet"))
    elif kind == "text_too_long":
        repeats = TEXT_MAX_CHARS // len(_LONG_SENTENCE) + rng.randint(1, 5)
        record["text"] = (_LONG_SENTENCE * repeats).strip()
    return Malformed(kind, MALFORMED_FIELDS[kind], orjson.dumps(record).decode())
