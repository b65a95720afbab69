"""Appending signals to the Redis stream, and the trimming policy that keeps it bounded.

Policy (docs/streaming.md): entries are appended without MAXLEN, because a length cap trims the
oldest entries whether or not a consumer has processed them. Instead `trim_processed` removes
only entries every consumer group is done with: below the oldest entry still pending (delivered,
not acknowledged) in any group, and never past any group's last delivered entry. The stream is
then bounded by the unprocessed backlog; when that backlog reaches `max_len`, `produce` refuses
the records (ServiceUnavailableError, HTTP 503) rather than drop any: backpressure, not loss.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import redis

from core.errors import ServiceUnavailableError
from core.stores.cluster import RedisClient

STREAM = "engram:{signals}"  # serving.wiring.SIGNALS_STREAM: one name for producers and consumers
FIELD = "signal"  # each entry holds one record's JSON text under this field
DEFAULT_MAX_LEN = 10_000_000
_SCAN_CHUNK = 1_000  # entries read per XRANGE when forgetting a user


def _payload(record: Mapping[str, Any] | str | bytes) -> bytes | str:
    if isinstance(record, str | bytes):
        return record
    return json.dumps(record, ensure_ascii=False, default=str)


def produce(
    client: RedisClient,
    records: Sequence[Mapping[str, Any] | str | bytes],
    *,
    stream: str = STREAM,
    max_len: int | None = DEFAULT_MAX_LEN,
) -> list[str]:
    """Append records (mappings, JSON text or bytes, sent as is) in one round trip; their ids.

    Validation is the consumer's (a malformed record goes to the dead-letter store from there).
    Raises ServiceUnavailableError when the unprocessed backlog has reached `max_len`.
    """
    if not records:
        return []
    if max_len is not None and _length(client, stream) + len(records) > max_len:
        trim_processed(client, stream, approximate=False)
        length = _length(client, stream)
        if length + len(records) > max_len:
            raise ServiceUnavailableError(
                "stream", f"{stream} holds {length} unprocessed entries (cap {max_len})"
            )
    pipe = client.pipeline(transaction=False)
    for record in records:
        pipe.xadd(stream, {FIELD: _payload(record)})
    return [i.decode() if isinstance(i, bytes) else str(i) for i in pipe.execute()]


def _length(client: RedisClient, stream: str) -> int:
    length: Any = client.xlen(stream)
    return int(length)


def _next_id(entry_id: str) -> str:
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def _smaller(a: str, b: str) -> str:
    return a if tuple(map(int, a.split("-"))) <= tuple(map(int, b.split("-"))) else b


def safe_trim_id(client: RedisClient, stream: str = STREAM) -> str | None:
    """The lowest id any group still needs (None: no group, so nothing is known processed)."""
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream
    floor: str | None = None
    for group in groups:
        name = _text(group["name"])
        need = _next_id(_text(group["last-delivered-id"]))
        pending: Any = client.xpending(stream, name)
        if pending["pending"]:
            need = _smaller(need, _text(pending["min"]))
        floor = need if floor is None else _smaller(floor, need)
    return floor


def trim_processed(client: RedisClient, stream: str = STREAM, *, approximate: bool = True) -> int:
    """Remove entries every group has acknowledged; returns how many were removed."""
    floor = safe_trim_id(client, stream)
    if floor is None:
        return 0
    # Approximate MINID trims whole macro nodes only (cheap), so it may keep a few processed
    # entries; neither form removes one at or above the floor.
    removed: Any = client.xtrim(stream, minid=floor, approximate=approximate)
    return int(removed)


def forget_entries(
    client: RedisClient, user_id: str, stream: str = STREAM, *, up_to: str = "+"
) -> int:
    """Delete the user's entries up to the id `up_to` from a stream (a scan of it: an admin
    operation); how many.

    Works on the signals stream and on its dead-letter stream alike: every field of an entry is
    read as a JSON record, and an entry goes when one of them names the user (under any of its
    `user_id` keys, should a foreign producer have written the key twice)."""
    removed = 0
    start = "-"
    while True:
        entries: Any = client.xrange(stream, min=start, max=up_to, count=_SCAN_CHUNK)
        mine = [entry_id for entry_id, fields in entries if _names_user(fields, user_id)]
        if mine:
            removed += int(cast(int, client.xdel(stream, *mine)))
        if len(entries) < _SCAN_CHUNK:
            return removed
        start = "(" + _text(entries[-1][0])


def _names_user(fields: Mapping[Any, Any], user_id: str) -> bool:
    return any(user_id in _user_ids(value) for value in fields.values())


def _user_ids(value: Any) -> list[str]:
    """Every `user_id` of a JSON record's top level (a raw record may name the key twice)."""
    named: list[str] = []

    def keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        named.extend(str(v) for k, v in pairs if k == "user_id")
        return dict(pairs)

    try:
        json.loads(value, object_pairs_hook=keys)
    except (ValueError, TypeError, RecursionError):
        return []
    return named


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
